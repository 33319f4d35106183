"""A study's numbers: point scores, the expected best after k trials, edges, spread.

The score of a trial is its final test accuracy; a diverged trial scores
chance (1 / classes): its last evaluation before diverging says nothing about
the trained network. A point's score is the mean over its seeds.

Expected best after k trials (Dodge et al. 2019, "Show Your Work", sampling
with replacement from the N point scores v₍₁₎ ≤ … ≤ v₍N₎):
E[max of k] = Σᵢ v₍ᵢ₎ [(i/N)ᵏ − ((i−1)/N)ᵏ].
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from typing import Any

from optlab.study.space import Dimension, unit_of

#: Where the best point counts as on the edge of the space: within this share of a
#: dimension's range (on its own scale) from either end.
EDGE_SHARE = 0.1


def expected_best(scores: Sequence[float]) -> list[float]:
    """E[best score of k points drawn with replacement], for k = 1..N."""
    v = sorted(scores)
    n = len(v)
    return [
        math.fsum(v[i - 1] * ((i / n) ** k - ((i - 1) / n) ** k) for i in range(1, n + 1))
        for k in range(1, n + 1)
    ]


def trial_score(result: Mapping[str, Any]) -> float:
    """A finished trial's score: final test accuracy; chance for a diverged one."""
    if result["status"] == "done" and result.get("final_test_acc") is not None:
        return float(result["final_test_acc"])
    return float(result["chance"])


def point_rows(
    results: Sequence[Mapping[str, Any]], n_points: int, n_seeds: int
) -> list[dict[str, Any]]:
    """One row per point whose seeds have all finished: its values, mean score and
    test loss over seeds, and the seeds' spread (sample standard deviation)."""
    by_point: dict[int, list[Mapping[str, Any]]] = {}
    for r in results:
        by_point.setdefault(r["point"], []).append(r)
    rows = []
    for p in range(n_points):
        done = sorted(by_point.get(p, []), key=lambda r: r["seed"])
        if len(done) < n_seeds:
            continue
        scores = [trial_score(r) for r in done]
        losses = [r["final_test_loss"] for r in done if r["status"] == "done"]
        losses = [x for x in losses if x is not None and math.isfinite(x)]
        rows.append(
            {
                "point": p,
                "hparams": dict(done[0]["hparams"]),
                "score": statistics.fmean(scores),
                "loss": statistics.fmean(losses) if len(losses) == len(done) else None,
                "seed_scores": scores,
                "spread": statistics.stdev(scores) if len(scores) > 1 else 0.0,
                "diverged": sum(r["status"] != "done" for r in done),
            }
        )
    return rows


def best_row(rows: Sequence[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """The point with the highest score (the lower loss breaks ties, then the order)."""
    if not rows:
        return None
    return max(
        rows, key=lambda r: (r["score"], -(r["loss"] if r["loss"] is not None else math.inf))
    )


def edge_notes(best: Mapping[str, Any], dims: Sequence[Dimension]) -> list[str]:
    """Where the best point lies at the edge of the space: ``"lr: high end"`` per
    dimension (within `EDGE_SHARE` of its range from an end), else nothing."""
    notes = []
    for dim in dims:
        value = best["hparams"].get(dim.name)
        if value is None:
            continue
        u = unit_of(dim, value)
        if u <= EDGE_SHARE:
            notes.append(f"{dim.name}: low end ({value:.3g} of {dim.low:g}:{dim.high:g})")
        elif u >= 1 - EDGE_SHARE:
            notes.append(f"{dim.name}: high end ({value:.3g} of {dim.low:g}:{dim.high:g})")
    return notes
