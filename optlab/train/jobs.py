"""Background training jobs: worker threads, a shared registry, a queue.

Streamlit reruns a page's script on every click and only stops it at
``st.*`` calls, so training must not run in the script thread. A `Job` runs
`TrainingSession.run` in a worker thread that never touches Streamlit: it
appends records to a lock-protected buffer and checks, every step, a cancel
event, a deadline and when the page last polled (a closed tab stops polling,
and its job is cancelled). The `JobRegistry` caps how many jobs train at
once; the others wait in a queue whose position the page shows.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import os
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import Any

from optlab.caps import CAPS
from optlab.train.autosave import Autosave
from optlab.train.checkpoint import checkpoint_bytes
from optlab.train.data import LoadedData
from optlab.train.run import (
    EvalRecord,
    TrainingSession,
    TrainRecord,
    TrainRunConfig,
    steps_per_epoch,
)
from optlab.train.sharpness import SharpnessRecord
from optlab.train.snapshots import SnapshotView

QUEUED, RUNNING, DONE, CANCELLED, FAILED = "queued", "running", "done", "cancelled", "failed"
FINISHED = frozenset({DONE, CANCELLED, FAILED})

Record = TrainRecord | EvalRecord
_ids = itertools.count(1)
log = logging.getLogger(__name__)
#: A watcher counts as watching while it polled within this many seconds.
WATCH_WINDOW_S = 5.0


@dataclass(frozen=True)
class JobSnapshot:
    """What a page needs to draw one poll: immutable, cheap to copy.

    ``sharpness`` holds, per optimizer, its sharpness records so far (empty
    tuples when the run does not measure it); ``snapshot_steps`` the steps of
    the weight snapshots so far (0, K, 2K, … and the latest; empty when the run
    keeps none): `Job.snapshot_weights` gives the weights themselves.
    ``watching``: how many browsers watch the job (`Job.watching`).
    """

    state: str
    records: tuple[Record, ...]
    queue_position: int
    step: int
    first_step: int
    total_steps: int
    elapsed_s: float
    message: str
    images_per_s: float | None = None
    sharpness: tuple[tuple[SharpnessRecord, ...], ...] = ()
    snapshot_steps: tuple[int, ...] = ()
    watching: int = 0


def first_line(err: BaseException, default: str = "") -> str:
    """An error's first line, for a one-line message (``default`` when it has none)."""
    lines = str(err).strip().splitlines()
    return lines[0] if lines else default


#: The most a thread's nice value may be (Linux: 19, the lowest priority).
MAX_NICE = 19


def lower_priority(nice: int) -> int | None:
    """Lowers the calling thread's CPU priority by ``nice`` (at most to `MAX_NICE`).

    A worker thread is the training's own (one per job, gone when it ends), and
    on Linux a thread has its own nice value, so the pages' threads keep theirs:
    under load the scheduler gives them the cores first and the training the
    rest. With nobody else asking, a lower priority costs the training nothing.

    Returns:
        The thread's nice value now, or None where it was left as it was (0 asked
        for, or the platform has no per-thread priorities).
    """
    if nice <= 0 or not hasattr(os, "setpriority") or not sys.platform.startswith("linux"):
        return None
    tid = threading.get_native_id()
    try:
        target = min(MAX_NICE, os.getpriority(os.PRIO_PROCESS, tid) + nice)
        os.setpriority(os.PRIO_PROCESS, tid, target)
    except OSError as err:  # a sandbox that forbids it: train at the usual priority
        log.warning("optlab: could not lower a training's CPU priority: %s", err)
        return None
    return target


class BackgroundJob:
    """Work in a worker thread that waits its turn in a `JobRegistry`'s queue.

    The lifecycle every kind of job shares: queued until it heads the queue and
    a slot is free (first come, first served: a bare semaphore wakes waiters in
    any order, so the queue position a page shows would not be true), then
    `_run` holding the slot; it stops when cancelled, when nobody polled it for
    ``idle_timeout_s`` (a closed tab), or past ``max_runtime_s`` of running.
    Subclasses implement `_run` and report through `_finish`.
    """

    #: Names the worker thread; starts the message of an unexpected error.
    kind = "job"

    def __init__(
        self,
        slots: threading.Semaphore,
        position: Callable[[Any], int],
        idle_timeout_s: float,
        max_runtime_s: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._slots = slots
        self._position = position
        self._idle_timeout_s = idle_timeout_s
        self._max_runtime_s = max_runtime_s
        self._clock = clock
        self._lock = threading.Lock()
        self._cancel = threading.Event()
        self._finished = threading.Event()
        self.state = QUEUED
        self.message = ""
        self._started_at: float | None = None
        self._last_poll = clock()
        self._thread = threading.Thread(target=self._work, name=f"optlab-{self.kind}", daemon=True)

    def start(self) -> None:
        """Starts the worker (it waits for a free slot first)."""
        self._thread.start()

    def cancel(self, reason: str = "stopped") -> None:
        """Asks the worker to stop at its next chance."""
        if not self.message:
            self.message = reason
        self._cancel.set()

    @property
    def stopping(self) -> bool:
        """Whether the job was asked to stop (it may still be finishing its step)."""
        return self._cancel.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        """Blocks until the job has finished; returns whether it has."""
        return self._finished.wait(timeout)

    def _should_stop(self) -> str | None:
        now = self._clock()
        if self._cancel.is_set():
            return self.message or "stopped"
        if now - self._last_poll > self._idle_timeout_s:
            return "cancelled: nobody was watching (the page was closed)"
        limit = self._max_runtime_s
        if limit is not None and self._started_at is not None and now - self._started_at > limit:
            return f"stopped at the {limit:.0f} s time limit"
        return None

    def _needs_slot(self) -> bool:
        """Whether the work takes a slot (and so waits its turn): a job with nothing
        left to train (a replayed result, a stopped copy) does not."""
        return True

    def _work(self) -> None:
        slotted = self._needs_slot()
        while slotted and not (self._position(self) == 1 and self._slots.acquire(blocking=False)):
            if reason := self._should_stop():
                self._finish(CANCELLED, reason)
                return
            time.sleep(0.1)
        try:
            with self._lock:  # `Job.checkpoint` decides under it whether training began
                self.state = RUNNING
            self._started_at = self._clock()
            lower_priority(CAPS.training_nice)
            self._run()
        except Exception as err:  # a worker must report, never die silently
            self._finish(FAILED, f"{self.kind} failed: {type(err).__name__}: {first_line(err)}")
        finally:
            if slotted:
                self._slots.release()

    def _run(self) -> None:
        """The work itself, holding a slot; ends with `_finish`."""
        raise NotImplementedError

    def _finish(self, state: str, message: str) -> None:
        self.message = message
        self.state = state
        self._finished.set()

    def _seen(self) -> float:
        """Notes a poll (someone is watching); returns the seconds spent running."""
        self._last_poll = self._clock()
        return 0.0 if self._started_at is None else self._last_poll - self._started_at


class Job(BackgroundJob):
    """One training comparison running (or waiting) in a worker thread.

    Args:
        cfg: The comparison.
        data: The images (shared read-only).
        slots: The registry's concurrency semaphore.
        position: Returns this job's place in the queue (0 when running).
        max_runtime_s: Wall-clock cap of the training itself.
        idle_timeout_s: Cancel when nobody polled for this long.
        clock: Time source (tests pass a fake one).
        session: A session prepared by the caller (a checkpoint resumed
            into it, say); its history is reported first. Default: a new
            one built from ``cfg`` in the worker.
        autosave: Saves a checkpoint every few steps and where the job ends
            (kept when the job ended without its user, deleted otherwise).
        stopped: Makes the job a stopped copy: it trains nothing, evaluates
            ``session`` where it is (`TrainingSession.evaluate_at_stop`) and
            ends cancelled with this message, without waiting for a slot.
        on_finish: Called in the worker as the job ends, with its final state
            set, before `wait` returns (the shared runs keep a finished result,
            and forget the job).

    Several browsers may watch one job (`optlab.train.sharing`): each polls it
    under its own name, and `watching` counts those that polled lately.
    """

    def __init__(
        self,
        cfg: TrainRunConfig,
        data: LoadedData,
        slots: threading.Semaphore,
        position: Callable[[Job], int],
        max_runtime_s: float,
        idle_timeout_s: float,
        clock: Callable[[], float] = time.monotonic,
        session: TrainingSession | None = None,
        autosave: Autosave | None = None,
        stopped: str | None = None,
        on_finish: Callable[[Job], None] | None = None,
    ) -> None:
        super().__init__(slots, position, idle_timeout_s, max_runtime_s, clock)
        if stopped is not None and session is None:
            raise ValueError("a stopped copy needs the session it stops")
        self.id = next(_ids)
        self.autosave = autosave
        self._stopped = stopped
        self._on_finish = on_finish
        #: Each watcher's name: when it last polled, and for how long that counts.
        self._watchers: dict[str, tuple[float, float]] = {}
        #: Checkpoints asked for while training, taken between two steps.
        self._checkpoint_requests: list[Future[bytes]] = []
        self.cfg = cfg
        self.data = data
        self._records: list[Record] = []
        #: Per optimizer, its sharpness records so far.
        self._sharpness: tuple[tuple[SharpnessRecord, ...], ...] = tuple(
            tuple(s) for s in (session.sharpness if session is not None else [[]] * len(cfg.slots))
        )
        self.session: TrainingSession | None = session
        self._records.extend(session.history if session is not None else ())
        self._first_step = session.step if session is not None else 0

    kind = "training"

    def _needs_slot(self) -> bool:
        session = self.session
        return self._stopped is None and (session is None or not session.finished)

    def _run(self) -> None:
        """Trains, holding a slot, until the end or a reason to stop."""
        if self.session is None:
            self.session = TrainingSession(self.cfg, self.data)
        self._first_step = self.session.step
        if self._stopped is not None:
            evaluations = self.session.evaluate_at_stop()
            with self._lock:
                self._records.extend(evaluations)
            self._finish(CANCELLED, self._stopped)
            return
        # Step by step: the session is whole between two steps, so that is
        # where it is saved, copied and where it stops.
        while not self.session.finished:
            records = self.session.run_step()
            sharpness = self.session.sharpness
            with self._lock:
                self._records.extend(records)
                if sum(map(len, sharpness)) != sum(map(len, self._sharpness)):
                    self._sharpness = tuple(tuple(s) for s in sharpness)
            if self.autosave is not None:
                self.autosave.after_step(self.session)
            self._serve_checkpoints()
            if reason := self._should_stop():
                # One evaluation of the weights it stops with: the final test
                # accuracy and the confusion matrix then describe the same model.
                evaluations = self.session.evaluate_at_stop()
                with self._lock:
                    self._records.extend(evaluations)
                self._finish(CANCELLED, reason)
                return
        self._finish(DONE, "finished")

    def _finish(self, state: str, message: str) -> None:
        if self.autosave is not None:
            # Kept to resume when the job ended without its user (the page was
            # closed, the time limit); deleted when done, failed or stopped.
            resumable = state == CANCELLED and not self._cancel.is_set()
            try:
                self.autosave.ended(self.session, resumable, message)
            except Exception as err:  # the job's own outcome matters more
                message += f" (its autosave could not be updated: {err})"
        if self._on_finish is not None:
            # Before anyone waiting learns the job ended: a finished run's result
            # is kept by the time they look.
            self.state, self.message = state, message
            try:
                self._on_finish(self)
            except Exception:  # the job has ended either way; say why the hook failed
                log.exception("optlab: after job %s ended", self.id)
        super()._finish(state, message)
        # The session rests from here on: a checkpoint asked for during the last
        # step is taken now (`checkpoint` takes later ones itself).
        self._serve_checkpoints()

    def _serve_checkpoints(self) -> None:
        with self._lock:
            requests, self._checkpoint_requests = self._checkpoint_requests, []
        if not requests:
            return
        try:
            if self.state == FAILED:  # it may have failed mid-step: no whole state
                raise RuntimeError(f"the run failed: {self.message}")
            data = checkpoint_bytes(self.session)  # one for every asker of this step
        except Exception as err:  # the askers report it; training goes on
            for request in requests:
                request.set_exception(err)
            return
        for request in requests:
            request.set_result(data)

    def checkpoint(self, timeout: float = 30.0) -> bytes | None:
        """The job's session as checkpoint bytes, taken between two steps (an
        in-memory checkpoint that a copy of the run resumes from); None when
        the job has no session yet (it has trained nothing).

        While the job trains, the worker takes it after its current step, and
        this waits for it (up to ``timeout`` seconds).

        Raises:
            TimeoutError: the worker did not get to it in time.
        """
        request: Future[bytes] = Future()
        with self._lock:
            training = self.state == RUNNING and not self._finished.is_set()
            if training:
                self._checkpoint_requests.append(request)
            else:  # queued (the worker sets RUNNING under this lock) or ended
                session = self.session
                if self.state == FAILED:
                    raise RuntimeError(f"the run failed: {self.message}")
                return None if session is None or session.step == 0 else checkpoint_bytes(session)
        try:
            return request.result(timeout)
        except FutureTimeout:
            raise TimeoutError(
                f"the run did not reach a step boundary in {timeout:.0f} s"
            ) from None

    def poll(self, watcher: str | None = None, every: float | None = None) -> JobSnapshot:
        """The job's progress so far; also tells the job someone (``watcher``, when
        named) is watching, and polls again in ``every`` seconds (when given: a page
        that polls less often than `WATCH_WINDOW_S` still counts between polls)."""
        elapsed = self._seen()
        window = max(WATCH_WINDOW_S, 2 * every + 1 if every else 0.0)
        with self._lock:
            if watcher is not None:
                self._watchers[watcher] = (self._last_poll, window)
            records = tuple(self._records)
            sharpness = self._sharpness
        session = self.session
        snapshots = session.snapshots if session is not None else None
        return JobSnapshot(
            state=self.state,
            records=records,
            queue_position=self._position(self) if self.state == QUEUED else 0,
            step=session.step if session else 0,
            first_step=self._first_step,
            total_steps=session.total_steps if session else 0,
            elapsed_s=elapsed,
            message=self.message,
            images_per_s=session.images_per_s if session else None,
            sharpness=sharpness,
            snapshot_steps=snapshots.view().steps if snapshots is not None else (),
            watching=self.watching(),
        )

    def watching(self, besides: str | None = None) -> int:
        """How many named watchers (other than ``besides``) polled within the last
        `WATCH_WINDOW_S` seconds, or twice the interval they said they poll at (plus
        a second) when that is longer; a closed tab stops counting soon after."""
        now = self._clock()
        with self._lock:
            return sum(
                now - seen <= min(window, self._idle_timeout_s)
                for name, (seen, window) in self._watchers.items()
                if name != besides
            )

    def leave(self, watcher: str, reason: str = "stopped by you") -> int:
        """``watcher`` stops watching; the job is cancelled when nobody else still
        watches. Returns how many others still do."""
        with self._lock:
            self._watchers.pop(watcher, None)
            # Idle from the last poll of those who remain, not from the leaver's.
            self._last_poll = max(
                (seen for seen, _ in self._watchers.values()), default=self._last_poll
            )
        others = self.watching()
        if others == 0:
            self.cancel(reason)
        return others

    def snapshot_weights(self) -> SnapshotView | None:
        """The weight snapshots so far, or None when the run keeps none (or has not
        started).

        A consistent `SnapshotView`: its ``steps`` and, per optimizer, one flat
        float32 CPU tensor per step, the same tensors the session keeps (no copy;
        they are never changed in place, so they are safe to read while training
        goes on). ``rows[i][0]`` is the shared initial weights θ₀; ``rows[i][-1]``
        optimizer i's weights at the latest step.
        """
        session = self.session
        if session is None or session.snapshots is None:
            return None
        return session.snapshots.view()


class JobRegistry:
    """Process-wide: caps concurrent trainings and queues the rest.

    Args:
        max_running: Jobs training at once (default: one per two CPU cores).
        max_runtime_s: Wall-clock cap of one training.
        idle_timeout_s: A job nobody polled for this long is cancelled.
    """

    def __init__(
        self,
        max_running: int = 1,
        max_runtime_s: float = 900.0,
        idle_timeout_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_running = max_running
        self._slots = threading.BoundedSemaphore(max_running)
        self._lock = threading.Lock()
        self._jobs: list[Job] = []
        self._max_runtime_s = max_runtime_s
        self._idle_timeout_s = idle_timeout_s
        self._clock = clock
        #: Optimizer-images per second last measured here (`estimated_wait_s`).
        self._speed: float | None = None

    def submit(
        self,
        cfg: TrainRunConfig,
        data: LoadedData,
        session: TrainingSession | None = None,
        autosave: Autosave | None = None,
        stopped: str | None = None,
        on_finish: Callable[[Job], None] | None = None,
    ) -> Job:
        """Queues a comparison; it starts as soon as a slot is free.

        Args:
            cfg: The comparison.
            data: Its images.
            session: Optional prepared session of ``cfg`` (e.g. resumed from
                a checkpoint) to continue instead of starting afresh.
            autosave: Optional autosaving of the job's checkpoints.
            stopped: Makes it a stopped copy of ``session`` (see `Job`).
            on_finish: Called once the job has ended (see `Job`).
        """
        job = Job(
            cfg,
            data,
            self._slots,
            self.queue_position,
            self._max_runtime_s,
            self._idle_timeout_s,
            self._clock,
            session,
            autosave,
            stopped,
            on_finish,
        )
        self.add(job)
        return job

    def add(self, job: BackgroundJob) -> None:
        """Queues a job made with this registry's `slots` and `queue_position` (a
        training, a study); it starts as soon as it heads the queue and a slot is free."""
        with self._lock:
            self._jobs = [j for j in self._jobs if j.state not in FINISHED]
            self._jobs.append(job)
        job.start()

    @property
    def slots(self) -> threading.Semaphore:
        """The semaphore every job takes one unit of while it runs."""
        return self._slots

    def queue_position(self, job: Any) -> int:
        """1 for the next job to start, 2 after it, ...; 0 when not queued."""
        with self._lock:
            queued = [j for j in self._jobs if j.state == QUEUED]
        return queued.index(job) + 1 if job in queued else 0

    def active(self) -> list[Job]:
        """Jobs queued or running."""
        with self._lock:
            return [j for j in self._jobs if j.state not in FINISHED]

    def estimated_wait_s(self, job: BackgroundJob) -> float | None:
        """About how long a queued training waits for a trainer, from measured speed.

        The queue drains as it runs: each of the ``max_running`` trainers frees
        when its training ends, and the next in the queue takes it. A running
        training ends after its remaining steps at its own measured images per
        second; a queued one takes its steps x batch size x optimizers images
        at the speed last measured on this server per optimizer (a step of k
        optimizers trains k models). Jobs that take no trainer (a replay, a
        stopped copy) are not waited for. None when the job is not queued, when
        no training has measured a speed yet, or when other work (a tuning
        study) holds or waits for a trainer: its length is not known here.
        """
        position = self.queue_position(job)
        if position == 0:
            return None
        with self._lock:
            jobs = list(self._jobs)
        running = [j for j in jobs if j.state == RUNNING and j._needs_slot()]
        ahead = sorted(
            (j for j in jobs if 0 < self.queue_position(j) < position and j._needs_slot()),
            key=self.queue_position,
        )
        if any(not isinstance(j, Job) for j in running + ahead):
            return None
        free_at = []  # seconds until each trainer is free
        for other in running:
            session = other.session
            speed = session.images_per_s if session is not None else None
            if not speed:
                return None
            self._speed = speed * len(other.cfg.slots)
            free_at.append((session.total_steps - session.step) * other.cfg.batch_size / speed)
        free_at += [0.0] * max(0, self.max_running - len(free_at))
        heapq.heapify(free_at)
        if ahead and not self._speed:
            return None
        for other in ahead:
            session = other.session
            if session is not None:
                steps = session.total_steps - session.step
            else:
                steps = _planned_steps(other.cfg, len(other.data.train.labels))
            took = steps * other.cfg.batch_size * len(other.cfg.slots) / self._speed
            heapq.heappush(free_at, heapq.heappop(free_at) + took)
        return free_at[0]


def _planned_steps(cfg: TrainRunConfig, n_images: int) -> int:
    """The steps a comparison will train on ``n_images`` training images."""
    if cfg.steps is not None:
        return cfg.steps
    return cfg.epochs * steps_per_epoch(cfg, min(n_images, cfg.train_limit or n_images))
