"""The fair comparison's race table: readable columns, numbers as number_text writes them."""

from __future__ import annotations

import pytest

from optlab.numbers import number_text
from optlab.optim.config import OptimizerConfig
from optlab.surface.problem import Problem
from optlab.surface.run import SurfaceRunConfig
from optlab.surface.trajectory import collect
from optlab.sweep import race
from optlab.sweep.config import Axis, SweepConfig
from optlab.sweep.run import tune_lr


def raced(surface: str, keys: tuple[str, ...], steps: int = 150):
    """Tunes each optimizer's lr on one grid and races the winners with torch.optim."""
    problem = Problem(surface=surface, steps=steps)
    axis = Axis("lr", 1e-4, 1.0, 9, "log")
    tuned = [tune_lr(SweepConfig(OptimizerConfig.create(k), axis, problem=problem)) for k in keys]
    trajectories = collect(SurfaceRunConfig(tuple(t.best for t in tuned), problem))
    return tuned, trajectories, problem.resolved_surface


def test_rows_are_text_under_readable_column_names():
    tuned, trajectories, surface = raced("rosenbrock", ("sgd_momentum", "adam", "adagrad"))
    rows = race.race_rows(tuned, trajectories, surface)
    assert [list(r) for r in rows] == [list(race.COLUMNS)] * 3
    assert all("_" not in name for name in race.COLUMNS)
    steps_column = [r[race.STEPS] for r in rows]
    assert "not reached" in steps_column  # Adagrad does not get within 1e-3 in 150 steps
    for row, t, tr in zip(rows, tuned, trajectories, strict=True):
        assert row["optimizer"] == t.optimizer.label
        assert row["tuned lr"] == number_text(t.best.kwargs["lr"])
        assert row["final loss"] == number_text(tr.loss[-1])
        assert row["best loss"] == number_text(tr.best_loss)
        reached = tr.steps_to_reach(surface.f_min)
        assert row[race.STEPS] == ("not reached" if reached is None else f"{reached:,}")
        assert row["ends at (x, y)"] == f"({number_text(tr.x[-1])}, {number_text(tr.y[-1])})"
        assert row["status"] == "done"
        assert all(isinstance(v, str) and "None" not in v for v in row.values())


def test_a_surface_without_f_star_says_so_rather_than_not_reached():
    tuned, trajectories, surface = raced("saddle", ("adam",), steps=20)
    assert surface.f_min is None
    (row,) = race.race_rows(tuned, trajectories, surface)
    assert row[race.STEPS] == "no known f*"


def test_mismatched_runs_are_refused():
    tuned, trajectories, surface = raced("rosenbrock", ("adam",), steps=20)
    with pytest.raises(ValueError, match="1 tuned optimizers but 2 runs"):
        race.race_rows(tuned, trajectories * 2, surface)
