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

import itertools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from optlab.train.autosave import Autosave
from optlab.train.data import LoadedData
from optlab.train.run import EvalRecord, TrainingSession, TrainRecord, TrainRunConfig
from optlab.train.sharpness import SharpnessRecord
from optlab.train.snapshots import SnapshotView

QUEUED, RUNNING, DONE, CANCELLED, FAILED = "queued", "running", "done", "cancelled", "failed"
FINISHED = frozenset({DONE, CANCELLED, FAILED})

Record = TrainRecord | EvalRecord
_ids = itertools.count(1)


@dataclass(frozen=True)
class JobSnapshot:
    """What a page needs to draw one poll: immutable, cheap to copy.

    ``sharpness`` holds, per optimizer, its sharpness records so far (empty
    tuples when the run does not measure it); ``snapshot_steps`` the steps of
    the weight snapshots so far (0, K, 2K, … and the latest; empty when the run
    keeps none): `Job.snapshot_weights` gives the weights themselves.
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


def first_line(err: BaseException, default: str = "") -> str:
    """An error's first line, for a one-line message (``default`` when it has none)."""
    lines = str(err).strip().splitlines()
    return lines[0] if lines else default


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

    def _work(self) -> None:
        while not (self._position(self) == 1 and self._slots.acquire(blocking=False)):
            if reason := self._should_stop():
                self._finish(CANCELLED, reason)
                return
            time.sleep(0.1)
        try:
            self.state = RUNNING
            self._started_at = self._clock()
            self._run()
        except Exception as err:  # a worker must report, never die silently
            self._finish(FAILED, f"{self.kind} failed: {type(err).__name__}: {first_line(err)}")
        finally:
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
    ) -> None:
        super().__init__(slots, position, idle_timeout_s, max_runtime_s, clock)
        self.id = next(_ids)
        self.autosave = autosave
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

    def _run(self) -> None:
        """Trains, holding a slot, until the end or a reason to stop."""
        if self.session is None:
            self.session = TrainingSession(self.cfg, self.data)
        self._first_step = self.session.step
        # Step by step: the session is whole between two steps, so that is
        # where it is saved and where it stops.
        while not self.session.finished:
            records = self.session.run_step()
            sharpness = self.session.sharpness
            with self._lock:
                self._records.extend(records)
                if sum(map(len, sharpness)) != sum(map(len, self._sharpness)):
                    self._sharpness = tuple(tuple(s) for s in sharpness)
            if self.autosave is not None:
                self.autosave.after_step(self.session)
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
        super()._finish(state, message)

    def poll(self) -> JobSnapshot:
        """The job's progress so far; also tells the job someone is watching."""
        elapsed = self._seen()
        with self._lock:
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
        )

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

    def submit(
        self,
        cfg: TrainRunConfig,
        data: LoadedData,
        session: TrainingSession | None = None,
        autosave: Autosave | None = None,
    ) -> Job:
        """Queues a comparison; it starts as soon as a slot is free.

        Args:
            cfg: The comparison.
            data: Its images.
            session: Optional prepared session of ``cfg`` (e.g. resumed from
                a checkpoint) to continue instead of starting afresh.
            autosave: Optional autosaving of the job's checkpoints.
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
