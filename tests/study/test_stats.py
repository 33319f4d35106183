"""A study's statistics: the expected best after k trials, point scores, edges."""

from __future__ import annotations

import itertools
import statistics

import pytest

from optlab.study.space import Dimension
from optlab.study.stats import best_row, edge_notes, expected_best, point_rows, trial_score


def brute_force_expected_best(scores: list[float], k: int) -> float:
    """The mean of max over every one of the N^k equally likely draws with replacement."""
    draws = list(itertools.product(scores, repeat=k))
    return statistics.fmean(max(d) for d in draws)


@pytest.mark.parametrize(
    "scores",
    [[0.3], [0.1, 0.5], [0.42, 0.1, 0.42, 0.7], [0.9, 0.2, 0.55, 0.31, 0.6], [0.5] * 4],
)
def test_expected_best_equals_enumerating_every_draw(scores):
    curve = expected_best(scores)
    assert len(curve) == len(scores)
    for k, value in enumerate(curve, start=1):
        assert value == pytest.approx(brute_force_expected_best(scores, k), abs=1e-12)
    # One trial: the mean score; many: towards the best; never decreasing.
    assert curve[0] == pytest.approx(statistics.fmean(scores))
    assert all(a <= b + 1e-15 for a, b in itertools.pairwise(curve))
    assert curve[-1] <= max(scores)


def _trial(point, seed, acc, status="done", loss=1.0):
    return {
        "point": point,
        "seed": seed,
        "hparams": {"lr": 10.0 ** -(point + 1)},
        "final_test_acc": acc,
        "final_test_loss": loss,
        "status": status,
        "chance": 0.1,
    }


def test_points_average_their_seeds_and_a_diverged_trial_scores_chance():
    # A diverged run's last evaluation before it diverged does not count.
    assert trial_score(_trial(0, 0, 0.6, "diverged")) == 0.1
    results = [
        _trial(0, 0, 0.5),
        _trial(0, 1, 0.7, loss=3.0),
        _trial(1, 0, 0.9),
        _trial(1, 1, 0.6, "diverged", None),
        _trial(2, 0, 0.8),  # its second seed has not finished: not a point yet
    ]
    rows = point_rows(results, n_points=3, n_seeds=2)
    assert [r["point"] for r in rows] == [0, 1]
    assert rows[0]["score"] == pytest.approx(0.6) and rows[0]["loss"] == pytest.approx(2.0)
    assert rows[0]["spread"] == pytest.approx(statistics.stdev([0.5, 0.7]))
    assert rows[1]["score"] == pytest.approx(0.5) and rows[1]["loss"] is None
    assert rows[1]["diverged"] == 1
    assert best_row(rows)["point"] == 0  # the lower loss breaks the tie
    assert best_row([]) is None


def test_the_best_point_near_an_end_of_a_dimension_is_flagged():
    lr = Dimension("lr", 1e-4, 1.0, "log")
    mom = Dimension("momentum", 0.5, 0.9, "lin")
    assert edge_notes({"hparams": {"lr": 1e-2, "momentum": 0.7}}, [lr, mom]) == []
    notes = edge_notes({"hparams": {"lr": 0.5, "momentum": 0.51}}, [lr, mom])
    assert notes == ["lr: high end (0.5 of 0.0001:1)", "momentum: low end (0.51 of 0.5:0.9)"]
