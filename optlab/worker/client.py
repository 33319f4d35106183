"""The server's side of the engine process: starts it, hands it jobs, routes the answers.

Pure Python (no Streamlit): the pages keep one `EngineProcess` per server
(`optlab.ui.engine.engine_process`). Any number of page threads submit jobs
at once; one reader thread hands each answer to its job's queue. A page
thread waiting for its next chunk holds no lock, so the server's other
threads run meanwhile, and the engine's threads never wait for theirs.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import os
import pickle
import queue
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from multiprocessing.connection import Connection
from typing import Any

from optlab.turns import set_aside

#: How long a start may take before the engine process counts as lost
#: (importing torch and the first backward take 2-4 s on a quiet machine).
START_TIMEOUT_S = 120.0
#: After a start that failed, runs compute in the page's threads this long before
#: the next start is tried (a process that cannot start costs each run no wait).
RETRY_AFTER_S = 60.0


class EngineLost(RuntimeError):
    """The engine process is gone (killed, crashed) or never came up: compute here instead."""


class Job:
    """One submitted job: its answers, in order, as they arrive."""

    def __init__(self, engine: EngineProcess, job_id: int, conn: Connection) -> None:
        self.engine = engine
        self.id = job_id
        self.conn = conn
        self.answers: queue.Queue[tuple] = queue.Queue()
        self.finished = False

    def __iter__(self) -> Iterator[tuple]:
        """The job's ``records`` and ``progress`` messages; ends after its ``done``.

        Raises:
            The job's own exception (an invalid config, a failing optimizer).
            EngineLost: when the process died before the job finished.
        """
        return self.read()

    def read(
        self,
        progress_every_s: float = 0.0,
        on_progress: Callable[[tuple], None] | None = None,
    ) -> Iterator[tuple]:
        """As iterating the job, with ``progress`` messages at most every
        ``progress_every_s`` (those in between dropped while the turn is set aside),
        and, with ``on_progress``, given to it instead of yielded.

        A page takes its interpreter turn back for each answer it waits for, and
        under load each return is a wait in line behind every other page. A sweep
        sends its progress every 0.1 s at most (`child.PROGRESS_EVERY_S`) and its
        bar moves every 0.25 s at most: read so, the page waits in line once per
        move. With
        ``on_progress`` it moves the bar where the answer finds it, with its turn
        set aside if it is waiting (a bar's move is one small message, not worth
        a wait in line), and waits in line once, for the result.
        """
        due = time.monotonic() + progress_every_s

        def wanted(answer: tuple) -> bool:
            nonlocal due
            if answer[0] != "progress":
                return True
            if time.monotonic() < due:
                return False
            due = time.monotonic() + progress_every_s
            if on_progress is None:
                return True
            on_progress(answer)
            return False

        while not self.finished:
            answer = self._next(wanted)
            kind = answer[0]
            if kind in ("lost", "error", "done"):
                self._end(tell=False)
            if kind == "lost":
                raise EngineLost(answer[1])
            if kind == "error":
                raise answer[2]
            yield answer

    def _next(self, wanted: Callable[[tuple], bool]) -> tuple:
        """The next answer ``wanted`` takes (it sees each one, in order)."""
        try:  # answers already here are read in the turn held
            while not wanted(answer := self.answers.get_nowait()):
                pass
            return answer
        except queue.Empty:
            pass
        with set_aside():  # no interpreter turn held while the engine computes
            while not wanted(answer := self.answers.get()):
                pass
        return answer

    def close(self) -> None:
        """Stops the job if it still runs; later answers are dropped."""
        self._end(tell=True)

    def _end(self, tell: bool) -> None:
        if not self.finished:
            self.finished = True
            self.engine._forget(self, tell)

    def __enter__(self) -> Job:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class EngineProcess:
    """A ``python -m optlab.worker`` process, started on first use and again after it died.

    Args:
        argv: The command that starts it; the socket's descriptor is appended.
        start_timeout: Seconds a start may take before it counts as lost.

    Attributes:
        keys: The optimizer keys the running process knows (its registry).
        starts: Processes started so far (more than one after a death).
        submitted: Jobs handed to it so far.
    """

    def __init__(
        self, argv: list[str] | None = None, start_timeout: float = START_TIMEOUT_S
    ) -> None:
        self.argv = argv or [sys.executable, "-m", "optlab.worker"]
        self.start_timeout = start_timeout
        self.keys: frozenset[str] = frozenset()
        self.starts = 0
        self.submitted = 0
        self._lock = threading.Lock()
        self._send_lock = threading.Lock()
        self._jobs: dict[int, Job] = {}
        self._ids = itertools.count(1)
        self._proc: subprocess.Popen | None = None
        self._sock: socket.socket | None = None
        self._conn: Connection | None = None
        self._ready = threading.Event()
        self._lost = ""
        self._failed_at = -math.inf

    @property
    def pid(self) -> int | None:
        """The process's id while it runs."""
        proc = self._proc
        return proc.pid if proc is not None and proc.poll() is None else None

    def start(self) -> None:
        """Starts the process unless it runs; returns without waiting for it to warm up."""
        with self._lock:
            if self._proc is not None and self._proc.poll() is None and not self._lost:
                return
            self._stop_locked()
            ours, theirs = socket.socketpair()
            with theirs:
                self._proc = subprocess.Popen(
                    [*self.argv, str(theirs.fileno())],
                    pass_fds=[theirs.fileno()],
                    stdin=subprocess.DEVNULL,
                    # In its server's session, so that under `optlab.workshop` the
                    # runs here come before every replica's trainings (that module's
                    # docstring says why one session), in a process group of its own:
                    # it ends when the server's end of its socket closes, however
                    # the server ended.
                    process_group=0,
                )
            # The connection reads a copy of the socket's descriptor: closing that
            # would not wake the reader thread blocked in it, shutting the socket down does.
            self._sock = ours
            self._conn = Connection(os.dup(ours.fileno()))
            self.keys = frozenset()
            self._ready = threading.Event()
            self._lost = ""
            self.starts += 1
            threading.Thread(
                target=self._read, args=(self._conn, self._ready), name="engine-reader", daemon=True
            ).start()

    def accepts(self, keys: set[str] | frozenset[str], cfg: Any) -> bool:
        """Whether it can run a config with these optimizer keys (starting it, and
        waiting for it to come up, where needed): it knows them all and ``cfg`` pickles."""
        if time.monotonic() - self._failed_at < RETRY_AFTER_S:
            return False
        self.start()
        ready = self._ready.is_set()
        if not ready:
            # Starting: no interpreter turn held meanwhile. Up, it costs no wait: a
            # turn set aside is a place at the back of the line under load, which
            # every run paid twice (here, then for its answers) before this check.
            with set_aside():
                ready = self._ready.wait(self.start_timeout)
        if not ready or not self.keys:
            self._failed_at = time.monotonic()
            self.stop()
            return False
        if not keys <= self.keys:
            return False
        try:
            pickle.dumps(cfg)
        except Exception:
            return False
        return True

    def submit(self, kind: str, cfg: Any) -> Job:
        """Starts a job of a kind `optlab.worker.child` runs (after `accepts`).

        Raises:
            EngineLost: when the process is not there to take it.
        """
        with self._lock:
            conn, lost = self._conn, self._lost
            if conn is None or lost:
                raise EngineLost(lost or "the engine process is not running")
            job = Job(self, next(self._ids), conn)
            self._jobs[job.id] = job
            self.submitted += 1
        try:
            self._send(conn, (kind, job.id, cfg))
        except (OSError, ValueError) as err:
            job.finished = True
            with self._lock:
                self._jobs.pop(job.id, None)
            raise EngineLost(f"could not reach the engine process: {err}") from err
        return job

    def running_jobs(self) -> int:
        """Jobs submitted and not yet finished."""
        with self._lock:
            return len(self._jobs)

    def stop(self) -> None:
        """Ends the process (its jobs get `EngineLost`)."""
        with self._lock:
            self._stop_locked()

    def _stop_locked(self) -> None:
        proc, sock, conn = self._proc, self._sock, self._conn
        self._proc = self._sock = self._conn = None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)  # the process ends when its socket closes
            sock.close()
        if conn is not None:
            conn.close()
        if proc is not None:
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def _send(self, conn: Connection, message: tuple) -> None:
        with self._send_lock:
            conn.send(message)

    def _forget(self, job: Job, tell: bool) -> None:
        """Drops ``job``'s later answers; with ``tell``, asks the process to stop it."""
        with self._lock:
            known = self._jobs.pop(job.id, None)
        conn = job.conn
        if tell and known is not None and not conn.closed:
            with contextlib.suppress(OSError, ValueError):
                self._send(conn, ("stop", job.id))

    def _read(self, conn: Connection, ready: threading.Event) -> None:
        """The reader thread: hands each answer to its job until the socket closes."""
        try:
            while True:
                answer = conn.recv()
                if answer[0] == "ready":
                    self.keys = frozenset(answer[1])
                    ready.set()
                    continue
                with self._lock:
                    job = self._jobs.get(answer[1])
                if job is not None:
                    job.answers.put(answer)
        except Exception as err:  # closed, killed, or a message that does not unpickle
            reason = f"the engine process stopped ({type(err).__name__})"
        with self._lock:
            if self._conn is conn:
                self._lost = reason
            jobs = [job for job in self._jobs.values() if job.conn is conn]
            for job in jobs:
                self._jobs.pop(job.id, None)
        for job in jobs:
            job.answers.put(("lost", reason))
        ready.set()


def run_or_fallback(
    engine: EngineProcess | None,
    keys: set[str],
    kind: str,
    cfg: Any,
    remote: Callable[[Job], Any],
    local: Callable[[], Any],
) -> Any:
    """``remote(job)`` on the engine process when there is one that accepts ``cfg``,
    else (or when it dies meanwhile) ``local()`` in this thread."""
    if engine is not None and engine.accepts(keys, cfg):
        try:
            with engine.submit(kind, cfg) as job:
                return remote(job)
        except EngineLost:
            pass
    return local()
