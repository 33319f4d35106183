"""A study run by a server in the background, queued with the CNN trainings.

A `StudyJob` is a job of the server's `JobRegistry`: it waits its turn in the
same queue as the trainings and holds one slot while its trials run (on the
server's one Ray, started by the first study). Like a training, it stops when
asked, or when nobody polled it for a while (the tab was closed); its folder
keeps every finished trial, so it can be resumed later.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from optlab.study.config import StudyConfig
from optlab.study.run import Progress, run_study, study_document
from optlab.study.store import StudyFolder
from optlab.train.data import LoadedData
from optlab.train.jobs import CANCELLED, DONE, FAILED, QUEUED, BackgroundJob


@dataclass(frozen=True)
class StudySnapshot:
    """One poll of a study: its state, place in the queue, and its JSON so far."""

    state: str
    queue_position: int
    done: int
    total: int
    doc: dict[str, Any]
    message: str
    elapsed_s: float


class StudyJob(BackgroundJob):
    """One study running (or waiting) in a worker thread.

    Args:
        cfg: The study.
        data: Its images.
        folder: Its folder, started (`StudyFolder.start`) or to resume.
        engine: Runs the trials (the server's `RayEngine`, started on first use).
        slots: The job registry's semaphore.
        position: Returns this job's place in the queue.
        idle_timeout_s: Stop when nobody polled for this long.
        data_info: The data's description stored with the study.
    """

    kind = "study"

    def __init__(
        self,
        cfg: StudyConfig,
        data: LoadedData,
        folder: StudyFolder,
        engine: Any,
        slots: threading.Semaphore,
        position: Callable[[Any], int],
        idle_timeout_s: float,
        data_info: dict[str, Any],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(slots, position, idle_timeout_s, clock=clock)
        self.cfg = cfg
        self.data = data
        self.folder = folder
        self.engine = engine
        self.data_info = data_info
        self._results = folder.finished()
        self._resumed = len(self._results)
        self._engine_info: dict[str, Any] = {"name": getattr(engine, "name", "")}

    def _on_trial(self, progress: Progress) -> None:
        if progress.result["status"] == "failed":
            return
        with self._lock:
            self._results[progress.result["id"]] = progress.result

    def _run(self) -> None:
        self.engine.start()
        self._engine_info = self.engine.info()
        run_study(
            self.cfg,
            self.data,
            self.folder,
            self.engine,
            self.data_info,
            on_trial=self._on_trial,
            should_stop=lambda: self._should_stop() is not None,
        )
        if reason := self._should_stop():
            self._finish(CANCELLED, reason)
        elif len(self._results) < self.cfg.n_trials:
            left = self.cfg.n_trials - len(self._results)
            self._finish(FAILED, f"{left} trials failed (their workers died); resume to retry")
        else:
            self._finish(DONE, "finished")

    def poll(self) -> StudySnapshot:
        """The study so far; also tells the job someone is watching."""
        elapsed = self._seen()
        with self._lock:
            results = dict(self._results)
        doc = study_document(self.cfg, results, self._engine_info, self._resumed, self.data_info)
        return StudySnapshot(
            state=self.state,
            queue_position=self._position(self) if self.state == QUEUED else 0,
            done=len(results),
            total=self.cfg.n_trials,
            doc=doc,
            message=self.message,
            elapsed_s=elapsed,
        )
