"""One trial: a plain one-optimizer training run, folded exactly as ``optlab train`` does."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from optlab.train.config import TrainRunConfig
from optlab.train.data import LoadedData
from optlab.train.report import new_logs
from optlab.train.run import TrainingSession


class TrialStopped(Exception):
    """The trial was asked to stop before its last step."""


def run_trial(
    cfg: TrainRunConfig, data: LoadedData, should_stop: Callable[[], bool] | None = None
) -> dict[str, Any]:
    """Trains ``cfg`` (one optimizer) on ``data`` and returns its result.

    The numbers are those ``python -m optlab train`` with the same settings
    prints and writes (``runs[0]`` of its ``--out``): the same session, the
    same records folded into the same log.

    Raises:
        TrialStopped: when ``should_stop()`` turns true between two steps.
    """
    started = time.perf_counter()
    session = TrainingSession(cfg, data)
    (log,) = new_logs(session)
    for record in session.run():
        log.add(record)
        if should_stop is not None and should_stop():
            raise TrialStopped
    return {
        "final_test_acc": log.final_test_acc,
        "final_test_loss": log.final_test_loss,
        "best_test_acc": log.best_test_acc,
        "status": log.status,
        "diverged_at": log.diverged_at,
        "steps": session.step,
        "chance": 1 / len(data.classes),
        "seconds": time.perf_counter() - started,
    }
