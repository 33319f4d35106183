"""Autosaved CNN runs: a killed server loses at most a few steps of anyone's work.

Every CNN job saves a checkpoint into its own folder of the runs folder
every ``CAPS.autosave_steps`` steps, between two steps (where a session is
whole), each file written atomically::

    <runs folder>/<run id>/checkpoint.pt   TrainingSession.state_dict()
    <runs folder>/<run id>/run.json        what a page lists: optimizers, step,
                                           data source, state, server

The checkpoint is written before ``run.json``, so a ``run.json`` always
names a complete checkpoint. A run that finishes, fails or is stopped by its
user is deleted. A run is *interrupted* when its server died under it
(``run.json`` says running, on a server process that is not this one) or
when its job ended without its user (nobody watched it, or it hit the time
limit): such runs stay, the newest ``CAPS.saved_runs`` of them, and a page
can resume one exactly (`checkpoint.resume` restores weights, optimizer and
scheduler state, data order and RNG states).

The folder is ``$OPTLAB_RUNS_DIR``, else ``runs`` in the data cache folder.
Nothing here imports Streamlit.
"""

from __future__ import annotations

import json
import logging
import os
import re
import secrets
import shutil
import threading
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path

from optlab.caps import CAPS
from optlab.files import write_atomic
from optlab.train.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from optlab.train.data import default_cache_dir
from optlab.train.run import TrainingSession

RUNS_DIR_ENV = "OPTLAB_RUNS_DIR"
CHECKPOINT, META = "checkpoint.pt", "run.json"
#: This server process: a run saved as running by another one was interrupted.
SERVER_ID = uuid.uuid4().hex
RUNNING, PAUSED = "running", "paused"
_ID = re.compile(r"^\d{8}-\d{6}-[0-9a-f]{6}$")
log = logging.getLogger(__name__)


class RunError(ValueError):
    """A saved run cannot be used; the message says why, in one line."""


def default_runs_dir() -> Path:
    """``$OPTLAB_RUNS_DIR`` if set, else ``runs`` in the data cache folder."""
    env = os.environ.get(RUNS_DIR_ENV)
    return Path(env).expanduser() if env else default_cache_dir() / "runs"


def valid_id(text: str) -> bool:
    """Whether ``text`` has the shape of a run id (a link's ``run`` is user input)."""
    return bool(_ID.match(text))


@dataclass(frozen=True)
class SavedRun:
    """What ``run.json`` says of one saved run.

    Attributes:
        id: The folder's name.
        labels: The optimizers, as the page names them.
        step: The step of the saved checkpoint.
        total_steps: The run's length.
        data: Where its images come from: ``{"source": ..., "dir": ...}``
            as the page chose them, so a resume loads the same ones.
        state: ``running`` (saved by a live job) or ``paused`` (its job
            ended without its user).
        reason: Why a paused run stopped.
        saved_at: When the checkpoint was written (seconds since the epoch).
        server: The server process that saved it.
    """

    id: str
    labels: tuple[str, ...]
    step: int
    total_steps: int
    data: dict
    state: str
    reason: str
    saved_at: float
    server: str

    def interrupted(self, server: str = SERVER_ID) -> bool:
        """Whether nobody is training this run now (``server`` is the asking one)."""
        return self.state == PAUSED or self.server != server

    def why(self, server: str = SERVER_ID) -> str:
        """Why it stopped, in words."""
        if self.state == PAUSED:
            return self.reason
        return "the server stopped" if self.server != server else "training"

    @classmethod
    def from_json(cls, text: str) -> SavedRun:
        """Parses a ``run.json``; raises RunError when it is not one."""
        try:
            raw = json.loads(text)
            run = cls(
                id=str(raw["id"]),
                labels=tuple(str(label) for label in raw["labels"]),
                step=int(raw["step"]),
                total_steps=int(raw["total_steps"]),
                data={str(k): str(v) for k, v in dict(raw["data"]).items()},
                state=str(raw["state"]),
                reason=str(raw["reason"]),
                saved_at=float(raw["saved_at"]),
                server=str(raw["server"]),
            )
        except (ValueError, KeyError, TypeError) as err:
            raise RunError(f"run.json: not a saved run ({err})") from None
        if run.state not in (RUNNING, PAUSED) or not valid_id(run.id):
            raise RunError("run.json: not a saved run (bad state or id)")
        return run


class RunStore:
    """The runs folder of one server process; thread-safe.

    Args:
        root: The runs folder (made when the first run is saved).
        server: This process's id (tests pass another to act as a restart).
        keep: Interrupted runs kept; older ones are deleted.
    """

    def __init__(
        self, root: str | os.PathLike[str], server: str = SERVER_ID, keep: int | None = None
    ) -> None:
        self.root = Path(root)
        self.server = server
        self.keep = CAPS.saved_runs if keep is None else keep
        self._lock = threading.Lock()
        #: Runs this process is training: never listed, never claimed twice.
        self._live: set[str] = set()

    def new_id(self) -> str:
        """A fresh run id: the time it started, and random digits."""
        return f"{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(3)}"

    def _dir(self, run_id: str) -> Path:
        if not valid_id(run_id):
            raise RunError(f"run: {run_id[:40]!r} is not a run id")
        return self.root / run_id

    def save(
        self,
        run_id: str,
        session: TrainingSession,
        data: dict,
        state: str = RUNNING,
        reason: str = "",
    ) -> None:
        """Writes the session's checkpoint, then its ``run.json`` (each atomically).

        Raises:
            OSError: the folder cannot be written (the caller decides).
        """
        folder = self._dir(run_id)
        new = not folder.exists()
        folder.mkdir(parents=True, exist_ok=True)
        save_checkpoint(session, folder / CHECKPOINT)
        run = SavedRun(
            id=run_id,
            labels=tuple(slot.label for slot in session.cfg.slots),
            step=session.step,
            total_steps=session.total_steps,
            data=dict(data),
            state=state,
            reason=reason,
            saved_at=time.time(),
            server=self.server,
        )
        write_atomic(folder / META, json.dumps(asdict(run)).encode())
        with self._lock:
            if state == RUNNING:
                self._live.add(run_id)
            else:
                self._live.discard(run_id)
        if new:
            self.prune()

    def remove(self, run_id: str) -> None:
        """Deletes a run's folder (nothing when it is not there)."""
        with self._lock:
            self._live.discard(run_id)
        shutil.rmtree(self._dir(run_id), ignore_errors=True)

    def _read(self, run_id: str) -> SavedRun:
        try:
            text = (self._dir(run_id) / META).read_text(encoding="utf-8")
        except OSError:
            raise RunError("run: it is no longer saved on this server") from None
        return SavedRun.from_json(text)

    def interrupted(self) -> list[SavedRun]:
        """The runs nobody is training, newest first (unreadable folders skipped)."""
        runs = []
        try:
            folders = [p for p in self.root.iterdir() if valid_id(p.name)]
        except OSError:
            return []
        with self._lock:
            live = set(self._live)
        for folder in folders:
            if folder.name in live:
                continue
            try:
                run = self._read(folder.name)
            except RunError:
                continue
            if run.interrupted(self.server) and (folder / CHECKPOINT).is_file():
                runs.append(run)
        return sorted(runs, key=lambda r: r.saved_at, reverse=True)

    def load(self, run_id: str) -> tuple[SavedRun, dict]:
        """An interrupted run and its checked checkpoint (to resume it).

        Raises:
            RunError: no such run, it is being trained, or it is damaged.
        """
        with self._lock:
            if run_id in self._live:
                raise RunError("run: it is being trained already")
        run = self._read(run_id)
        if not run.interrupted(self.server):
            raise RunError("run: it is being trained already")
        try:
            state = load_checkpoint(self._dir(run_id) / CHECKPOINT)
        except CheckpointError as err:
            raise RunError(f"run {run_id}: {err}") from None
        return run, state

    def claim(self, run_id: str) -> None:
        """Marks an interrupted run as trained here, once.

        Raises:
            RunError: another browser claimed it first, or it is gone.
        """
        with self._lock:
            if run_id in self._live or not (self._dir(run_id) / META).is_file():
                raise RunError("run: another browser resumed it first, or it was discarded")
            self._live.add(run_id)

    def prune(self) -> None:
        """Deletes the oldest interrupted runs beyond ``keep``."""
        for run in self.interrupted()[self.keep :]:
            log.info("optlab: deleting the old interrupted run %s", run.id)
            self.remove(run.id)


class Autosave:
    """A job's autosaving: every ``every`` steps, and where its job ends.

    Errors writing the folder never stop training: the job goes on and
    `error` says what failed (the page shows it).
    """

    def __init__(self, store: RunStore, run_id: str, data: dict, every: int | None = None) -> None:
        self.store = store
        self.run_id = run_id
        self.data = dict(data)
        self.every = CAPS.autosave_steps if every is None else every
        self.error = ""

    def _save(self, session: TrainingSession, state: str = RUNNING, reason: str = "") -> None:
        try:
            self.store.save(self.run_id, session, self.data, state, reason)
        except OSError as err:
            self.error = f"autosave failed: {err.strerror or err}"
            log.warning("optlab: %s (run %s)", self.error, self.run_id)
        else:
            self.error = ""

    def after_step(self, session: TrainingSession) -> None:
        """Saves when the step is a multiple of ``every`` (and not the last)."""
        if session.step % self.every == 0 and not session.finished:
            self._save(session)

    def ended(self, session: TrainingSession | None, resumable: bool, reason: str) -> None:
        """The job ended: keep a resumable run (saved at its last step), else delete it."""
        if resumable and session is not None and not session.finished and session.step > 0:
            self._save(session, PAUSED, reason)
        else:
            self.store.remove(self.run_id)
