"""Identical comparisons share one training: join, replay, leave, fork.

In a workshop everyone presses Start on the same default comparison. Trained
thirty times in a queue of one trainer, the last attendee would wait half an
hour for a result the first one already has. So a comparison is identified by
its share key (`share_key`: the config, which holds the data subset, model,
optimizers and hyperparameters, schedules, seed, length and device, and a
fingerprint of the images themselves), and:

- starting a comparison whose identical twin is training (or queued) joins
  that job: the page shows its whole stream from step 1;
- starting one that finished earlier replays it at once from the
  `ResultStore` (its final checkpoint: the same curves, models and snapshots);
- each browser keeps its own Stop (`SharedRuns.leave`): the job stops only
  when nobody watches it any more; a browser that stops while others watch
  keeps a stopped copy of the run at that step, evaluated there, as if it
  had trained alone;
- a live change (`SharedRuns.change`) never changes someone else's run: with
  others watching, the browser forks onto its own job, resumed from an
  in-memory checkpoint of the shared one at its current step.

A resumed run (a checkpoint, an interrupted run) has its own history and is
never shared. Nothing here imports Streamlit.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from dataclasses import dataclass

from optlab.optim.plans import Change
from optlab.train.autosave import Autosave
from optlab.train.checkpoint import CheckpointError, checkpoint_bytes, read_checkpoint, restore
from optlab.train.data import LoadedData
from optlab.train.jobs import DONE, FINISHED, Job, JobRegistry
from optlab.train.results import ResultStore
from optlab.train.run import TrainingSession

log = logging.getLogger(__name__)

#: How a browser's job came to be (`Started.how`).
STARTED, JOINED, REPLAYED = "started", "joined", "replayed"


def share_key(session: TrainingSession) -> str | None:
    """The identity of the comparison ``session`` would train from its start: equal
    for equal configs on equal images. None for a session that has trained
    already (a resumed run has its own history and is never shared)."""
    if session.step or session.history:
        return None
    text = json.dumps(
        {"config": session.cfg.to_dict(), "data": session.data_digest()}, sort_keys=True
    )
    return hashlib.sha256(text.encode()).hexdigest()[:40]


@dataclass(frozen=True)
class Started:
    """A browser's job after `SharedRuns.start`, and how it came to be."""

    job: Job
    how: str


class SharedRuns:
    """Process-wide: which job trains each comparison, and the results kept.

    Every browser names itself (``watcher``) when it starts, polls, leaves or
    changes a job, so a job knows who watches it (`Job.watching`).

    Args:
        registry: The server's job registry (its trainers and queue).
        results: Finished comparisons kept for replay (None: none kept).
    """

    def __init__(self, registry: JobRegistry, results: ResultStore | None = None) -> None:
        self.registry = registry
        self.results = results
        self._lock = threading.Lock()
        #: The shared job of each comparison, while it is queued or training.
        self._jobs: dict[str, Job] = {}

    def start(
        self,
        session: TrainingSession,
        data: LoadedData,
        watcher: str,
        autosave: Autosave | None = None,
    ) -> Started:
        """``watcher``'s job for ``session``'s comparison: the identical one training
        (joined), its kept result (replayed), or ``session`` itself, queued with
        ``autosave`` (started)."""
        key = share_key(session)
        with self._lock:
            if key is not None:
                job = self._jobs.get(key)
                if job is not None and job.state not in FINISHED and not job.stopping:
                    job.poll(watcher)
                    return Started(job, JOINED)
                finished = job if job is not None and job.state == DONE else None
                if (replay := self._replay(key, session, data, finished)) is not None:
                    replay.poll(watcher)
                    return Started(replay, REPLAYED)
            job = self.registry.submit(
                session.cfg,
                data,
                session,
                autosave,
                on_finish=None if key is None else self._ended,
            )
            job.poll(watcher)
            if key is not None:
                self._jobs[key] = job
        return Started(job, STARTED)

    def _replay(
        self, key: str, session: TrainingSession, data: LoadedData, finished: Job | None
    ) -> Job | None:
        """A job that ends at once with the result of ``key``: that of ``finished``
        (the identical job, ended but not yet forgotten) or the kept one, if any."""
        if finished is not None and finished.session is not None:
            state = read_checkpoint(checkpoint_bytes(finished.session))
        elif self.results is None or (state := self.results.get(key)) is None:
            return None
        replay = TrainingSession(session.cfg, data)
        try:
            if state.get("data_digest") != session.data_digest():
                raise CheckpointError("checkpoint: kept for other images")
            restore(replay, state)
        except CheckpointError as err:
            log.warning("optlab: the kept result %s cannot be replayed (%s)", key, err)
            return None
        # A finished session trains nothing: the job takes no trainer and ends at once.
        return self.registry.submit(session.cfg, data, replay)

    def _ended(self, job: Job) -> None:
        """A shared job ended: forget it, and keep its result when it finished as the
        comparison it was started as."""
        with self._lock:
            key = next((k for k, shared in self._jobs.items() if shared is job), None)
        session = job.session
        if key is not None and job.state == DONE and self.results is not None and session:
            # Kept before the job is forgotten: an identical Start meanwhile finds
            # either the job or its result, never neither (and so trains again).
            try:
                self.results.put(key, checkpoint_bytes(session))
            except (OSError, ValueError) as err:  # the run is fine; only replay is lost
                log.warning("optlab: the result of job %s was not kept (%s)", job.id, err)
        self._unshare(job)

    def _unshare(self, job: Job) -> None:
        """Stops offering ``job`` to others."""
        with self._lock:
            self._unshare_locked(job)

    def _unshare_locked(self, job: Job) -> None:
        for key, shared in list(self._jobs.items()):
            if shared is job:
                del self._jobs[key]

    def leave(self, job: Job, watcher: str) -> Job:
        """``watcher`` presses Stop. The job stops when nobody else watches it; when
        others do, it trains on for them and ``watcher`` gets a stopped copy of it
        at its current step (returned; else ``job`` itself)."""
        with self._lock:  # nobody joins between the count and the cancel
            others = job.leave(watcher)
            if others == 0:
                self._unshare_locked(job)
        if others == 0 or job.state in FINISHED:
            return job
        people = "person" if others == 1 else "people"
        copy = self._copy(
            job,
            stopped=f"stopped by you; the shared run goes on for {others} other {people}",
        )
        copy.poll(watcher)
        return copy

    def change(
        self,
        job: Job,
        watcher: str,
        index: int,
        change: Change,
        autosave: Autosave | None = None,
    ) -> Job:
        """Asks for a live change of optimizer ``index`` at the next step, for
        ``watcher`` only; returns the job it applies to.

        Alone on the job, ``watcher`` changes it in place (it is no longer the
        comparison it was started as, so nobody joins it any more). With
        others watching, ``watcher`` forks onto a job of their own, resumed at
        the shared job's current step from an in-memory checkpoint and queued
        with ``autosave``; the change applies to the fork.

        Raises:
            ValueError: the change does not fit the optimizer (nothing is forked).
            TimeoutError: the shared job did not reach a step boundary in time.
        """
        if job.session is None:
            raise ValueError("the run has not started yet: change its settings instead")
        # Before anything is unshared or forked: the optimizer, the value, the groups.
        job.session.check_change(index, change)
        if job.state in FINISHED or job.stopping:
            raise ValueError("the run has ended")
        with self._lock:  # nobody joins between the count and the change
            alone = job.watching(besides=watcher) == 0
            if alone:
                self._unshare_locked(job)
        if alone:
            job.session.request_change(index, change)
            return job
        fork = self._copy(job, autosave=autosave, change=(index, change))
        job.leave(watcher)
        fork.poll(watcher)
        return fork

    def _copy(
        self,
        job: Job,
        stopped: str | None = None,
        autosave: Autosave | None = None,
        change: tuple[int, Change] | None = None,
    ) -> Job:
        """A new job continuing ``job``'s run from its current step (from an
        in-memory checkpoint), never shared; ``change`` is asked for at its first
        step; ``stopped`` makes it a stopped copy."""
        data = job.checkpoint()
        session = TrainingSession(job.cfg, job.data)
        if data is not None:
            restore(session, read_checkpoint(data))
        if change is not None:
            if session.finished:
                raise ValueError("the run ended before the change could apply")
            session.request_change(*change)
        return self.registry.submit(job.cfg, job.data, session, autosave, stopped=stopped)
