"""A study from its first (or first unfinished) trial to its summary."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from optlab.study.config import StudyConfig, TrialSpec
from optlab.study.stats import best_row, edge_notes, expected_best, point_rows, trial_score
from optlab.study.store import StudyFolder
from optlab.train.data import LoadedData

#: A trial's stored fields, in the study JSON's order.
TRIAL_FIELDS = (
    "id",
    "point",
    "hparams",
    "seed",
    "final_test_acc",
    "final_test_loss",
    "best_test_acc",
    "status",
    "diverged_at",
    "seconds",
    "node",
)


class Engine(Protocol):
    """What runs trials (`optlab.study.engine`)."""

    def info(self) -> dict[str, Any]: ...

    def run(
        self,
        specs: Sequence[TrialSpec],
        data: LoadedData,
        should_stop: Callable[[], bool] | None = None,
    ) -> Any: ...


@dataclass(frozen=True)
class Progress:
    """One finished (or failed) trial, and how far the study is."""

    result: dict[str, Any]
    done: int
    total: int


def study_document(
    cfg: StudyConfig,
    results: Mapping[str, Mapping[str, Any]],
    engine: Mapping[str, Any],
    resumed: int,
    data: Mapping[str, Any],
) -> dict[str, Any]:
    """The study's JSON: settings, engine, and per optimizer every trial, the points'
    scores, the expected best after k = 1..N trials, the best point and its edge flag."""
    optimizers = []
    for i, slot in enumerate(cfg.base.slots):
        mine = sorted((r for r in results.values() if r["optimizer"] == i), key=lambda r: r["id"])
        rows = point_rows(mine, cfg.trials, cfg.seeds)
        best = best_row(rows)
        mine_dims = [d for d in cfg.dims if d.applies_to(slot.optimizer)]
        edges = edge_notes(best, mine_dims) if best is not None else []
        spreads = [r["spread"] for r in rows]
        optimizers.append(
            {
                "optimizer": slot.optimizer.to_text(),
                "label": slot.optimizer.spec.label,
                "space": [d.to_text() for d in mine_dims],
                "trials": [
                    {**{k: r.get(k) for k in TRIAL_FIELDS}, "score": trial_score(r)} for r in mine
                ],
                "points": rows,
                "expected_best": expected_best([r["score"] for r in rows]),
                "best": None
                if best is None
                else {"hparams": best["hparams"], "score": best["score"], "loss": best["loss"]},
                "edge": bool(edges),
                "edge_notes": edges,
                "seed_spread": max(spreads) if spreads else None,
                "complete": len(rows) == cfg.trials,
            }
        )
    return {
        "config": cfg.to_dict(),
        "data": dict(data),
        "engine": dict(engine),
        "resumed_trials": resumed,
        "trials_done": len(results),
        "trials_total": cfg.n_trials,
        "optimizers": optimizers,
    }


def run_study(
    cfg: StudyConfig,
    data: LoadedData,
    folder: StudyFolder,
    engine: Engine,
    data_info: Mapping[str, Any],
    on_trial: Callable[[Progress], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> dict[str, Any]:
    """Runs every trial not yet finished in ``folder``, storing each as it finishes,
    and returns (and stores) the study's JSON.

    ``folder`` must have been started with ``cfg`` (`StudyFolder.start`); what
    it already holds is kept and not run again.
    """
    results = folder.finished()
    resumed = len(results)
    todo = [s for s in cfg.trial_specs() if s.id not in results]
    done = resumed
    for result in engine.run(todo, data, should_stop):
        if result["status"] != "failed":
            folder.save_trial(result)
            results[result["id"]] = result
            done += 1
        if on_trial is not None:
            on_trial(Progress(result, done, cfg.n_trials))
    doc = study_document(cfg, results, engine.info(), resumed, data_info)
    folder.save_summary(doc)
    return doc
