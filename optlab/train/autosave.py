"""Autosaved CNN runs: a killed server loses at most a few steps of anyone's work.

Every CNN job saves a checkpoint into its own folder of the runs folder
every ``CAPS.autosave_steps`` steps, between two steps (where a session is
whole), each file written atomically::

    <runs folder>/<run id>/checkpoint.pt   TrainingSession.state_dict()
    <runs folder>/<run id>/run.json        what a page lists: optimizers, step,
                                           data source, state, server

The checkpoint is written before ``run.json``, so a ``run.json`` always
names a complete checkpoint. A run that finishes, fails or is stopped by its
user is deleted. A run is *interrupted* when its server died under it or
when its job ended without its user (nobody watched it, or it hit the time
limit): such runs stay, the newest ``CAPS.saved_runs`` of them, and a page
can resume one exactly (`checkpoint.resume` restores weights, optimizer and
scheduler state, data order and RNG states).

Several server processes may share one runs folder (a workshop's replicas
behind HAProxy), so "its server died" is decided from the folder itself: a
process training runs keeps a heartbeat file fresh::

    <runs folder>/.servers/<server id>.json   {"host", "pid", "at"}

A run saved as running by another process is interrupted once that
process's heartbeat is older than ``LEASE_S`` seconds (or missing), or at
once when the heartbeat names a process on this machine that no longer
exists, or this very process under an older id (a killed replica's
attendees need not wait for the lease). Claiming an interrupted run
rewrites its ``run.json`` under an inter-process lock, so two replicas never
resume the same run.

The folder is ``$OPTLAB_RUNS_DIR``, else ``runs`` in the data cache folder.
Nothing here imports Streamlit.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import secrets
import shutil
import socket
import threading
import time
import uuid
from collections.abc import Iterator, Set
from dataclasses import asdict, dataclass, replace
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
#: The heartbeat folder inside the runs folder (never a run id, so never listed).
SERVERS = ".servers"
#: Seconds after its last heartbeat when another process's running runs count as
#: interrupted. Beats come every ``LEASE_S / 6`` seconds while a process trains.
LEASE_S = 30.0
#: The lock file that makes claims exclusive between processes.
CLAIM_LOCK = ".claim.lock"
#: The shape of a server id a heartbeat file may be named after (run.json is
#: shared-folder input: its ``server`` never becomes a path unchecked).
_SERVER = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
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


def this_host() -> str:
    """Where this process's pid means something: the host name, plus the pid
    namespace on Linux (containers on one machine may share a host name, never
    a pid namespace)."""
    try:
        namespace = os.readlink("/proc/self/ns/pid")
    except OSError:
        namespace = ""
    return f"{socket.gethostname()}/{namespace}"


def process_gone(pid: int) -> bool:
    """Whether no process ``pid`` exists here (False when that cannot be told)."""
    if os.name != "posix" or pid <= 0:
        # On Windows os.kill(pid, 0) would terminate the process, not probe it.
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:
        return False  # it exists, owned by someone else
    return False


@contextlib.contextmanager
def exclusive(path: Path) -> Iterator[None]:
    """Holds an exclusive lock on ``path`` between processes (made if missing).

    ``fcntl.flock`` where there is one (Linux, macOS, shared Docker volumes);
    elsewhere one process serves the folder and the caller's thread lock suffices.
    """
    try:
        import fcntl
    except ImportError:
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+b") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


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

    def interrupted(self, server: str = SERVER_ID, live: Set[str] = frozenset()) -> bool:
        """Whether nobody is training this run now.

        Args:
            server: The asking process.
            live: Other processes known to be alive (fresh heartbeats): a run
                they saved as running is theirs, not interrupted.
        """
        return self.state == PAUSED or (self.server != server and self.server not in live)

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
        lease_s: Seconds a heartbeat vouches for its process's running runs.
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        server: str = SERVER_ID,
        keep: int | None = None,
        lease_s: float = LEASE_S,
    ) -> None:
        if not _SERVER.match(server):
            raise ValueError(f"server: {server[:70]!r} is not a server id (letters, digits, _ -)")
        if not lease_s > 0:
            raise ValueError(f"lease_s: {lease_s!r} is not a positive number of seconds")
        self.root = Path(root)
        self.server = server
        self.keep = CAPS.saved_runs if keep is None else keep
        self.lease_s = lease_s
        self._lock = threading.Lock()
        #: Runs this process is training: never listed, never claimed twice.
        self._live: set[str] = set()
        #: The thread keeping this process's heartbeat fresh while ``_live`` has runs.
        self._beating: threading.Thread | None = None

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
        if state == RUNNING:
            # The heartbeat first: another process never sees this running run
            # without a fresh beat vouching for it.
            with self._lock:
                self._live.add(run_id)
            self._keep_beating()
        write_atomic(folder / META, json.dumps(asdict(run)).encode())
        if state != RUNNING:
            with self._lock:
                self._live.discard(run_id)
        if new:
            self.prune()

    def _beat_file(self, server: str) -> Path:
        return self.root / SERVERS / f"{server}.json"

    def _beat(self) -> None:
        """Writes this process's heartbeat (a failure is logged: the lease decides)."""
        beat = {"host": this_host(), "pid": os.getpid(), "at": time.time()}
        try:
            self._beat_file(self.server).parent.mkdir(parents=True, exist_ok=True)
            write_atomic(self._beat_file(self.server), json.dumps(beat).encode())
        except OSError as err:
            log.warning("optlab: heartbeat not written: %s", err.strerror or err)

    def _keep_beating(self) -> None:
        """Beats now, and every ``lease_s / 6`` seconds while this process trains runs."""
        self._beat()
        with self._lock:
            if self._beating is not None:
                return
            self._beating = threading.Thread(
                target=self._beat_while_live, name="optlab-heartbeat", daemon=True
            )
            self._beating.start()

    def _beat_while_live(self) -> None:
        while True:
            time.sleep(self.lease_s / 6)
            with self._lock:
                if not self._live:
                    self._beating = None
                    return
            self._beat()

    def _alive(self, server: str, now: float) -> bool:
        """Whether process ``server`` (not this one) has a heartbeat within the lease and,
        where its pid can be checked here, still exists."""
        if not _SERVER.match(server):
            return False
        try:
            beat = json.loads(self._beat_file(server).read_text(encoding="utf-8"))
            at, pid, host = float(beat["at"]), int(beat["pid"]), str(beat["host"])
        except (OSError, ValueError, KeyError, TypeError):
            return False
        if now - at > self.lease_s:
            return False
        if host != this_host():
            return True  # another machine or container: only the lease can tell
        # This very pid under another server id is a predecessor that had this pid
        # (a restarted container's server often gets the same one): gone.
        return pid != os.getpid() and not process_gone(pid)

    def _others_alive(self, runs: list[SavedRun]) -> frozenset[str]:
        """The processes among the savers of ``runs`` that are alive (each checked once)."""
        now = time.time()
        savers = {r.server for r in runs if r.state == RUNNING and r.server != self.server}
        return frozenset(s for s in savers if self._alive(s, now))

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
            if (folder / CHECKPOINT).is_file():
                runs.append(run)
        alive = self._others_alive(runs)
        runs = [r for r in runs if r.interrupted(self.server, alive)]
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
        if not run.interrupted(self.server, self._others_alive([run])):
            raise RunError("run: it is being trained already")
        try:
            state = load_checkpoint(self._dir(run_id) / CHECKPOINT)
        except CheckpointError as err:
            raise RunError(f"run {run_id}: {err}") from None
        return run, state

    def claim(self, run_id: str) -> None:
        """Marks an interrupted run as trained here, once among every process sharing
        the folder: its ``run.json`` is rewritten as running on this one.

        Raises:
            RunError: another browser claimed it first, or it is gone.
        """
        taken = RunError("run: another browser resumed it first, or it was discarded")
        folder = self._dir(run_id)
        with self._lock:
            if run_id in self._live:
                raise taken
        with exclusive(self.root / CLAIM_LOCK):
            try:
                run = self._read(run_id)
            except RunError:
                raise taken from None
            if not run.interrupted(self.server, self._others_alive([run])):
                raise taken
            with self._lock:
                if run_id in self._live:
                    raise taken
                self._live.add(run_id)
            self._keep_beating()
            mine = replace(run, state=RUNNING, reason="", saved_at=time.time(), server=self.server)
            try:
                write_atomic(folder / META, json.dumps(asdict(mine)).encode())
            except OSError as err:
                with self._lock:
                    self._live.discard(run_id)
                raise RunError(f"run: cannot claim it ({err.strerror or err})") from None

    def prune(self) -> None:
        """Deletes the oldest interrupted runs beyond ``keep``, and heartbeats of
        processes gone for a day."""
        for run in self.interrupted()[self.keep :]:
            log.info("optlab: deleting the old interrupted run %s", run.id)
            self.remove(run.id)
        with contextlib.suppress(OSError):
            for beat in (self.root / SERVERS).glob("*.json"):
                if time.time() - beat.stat().st_mtime > 86_400:
                    beat.unlink(missing_ok=True)


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
