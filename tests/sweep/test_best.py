"""The best cell on the edge of a swept range, found on real sweeps, in words and in the CLI.

SGD on the bowl ½(x² + 10y²) converges fastest at lr = 2/(1 + 10) ≈ 0.18 and
diverges past lr = 0.2, so a range around 0.18 holds the optimum, a range
below it has its best cell at the high end, and one between 0.19 and 0.2 at
the low end.
"""

from __future__ import annotations

import numpy as np
import pytest

from optlab.cli import main
from optlab.optim.config import OptimizerConfig
from optlab.surface.problem import Problem
from optlab.sweep.config import Axis, SweepConfig
from optlab.sweep.run import Edge, best_on_edge, run_sweep, sweep_summary

BOWL = Problem(surface="quadratic", steps=100)


def sgd_lr(low: float, high: float, n: int = 7) -> SweepConfig:
    return SweepConfig(OptimizerConfig.create("sgd"), Axis("lr", low, high, n, "log"), problem=BOWL)


def test_an_optimum_inside_the_range_raises_no_warning():
    result = run_sweep(sgd_lr(0.05, 0.3))
    best = result.best_cell()
    assert 0 < best < result.config.x.n - 1  # lr ≈ 0.165, next to 2/11
    assert np.isnan(result.final_loss[0, -1])  # the top of the range diverges
    assert best_on_edge(result) == ()
    assert "warning" not in sweep_summary(result)


@pytest.mark.parametrize(
    ("low", "high", "end", "value"),
    [
        (0.02, 0.09, "high", 0.09),  # every lr too small: bigger is better
        (0.19, 0.199, "low", 0.19),  # past 2/11 the iterates oscillate more and more
        (0.199, 0.19, "low", 0.19),  # the same range swept downwards: still its low end
    ],
    ids=["below-the-optimum", "above-the-optimum", "reversed-range"],
)
def test_an_optimum_outside_the_range_names_the_axis_and_the_end(low, high, end, value):
    result = run_sweep(sgd_lr(low, high, 6))
    best = result.best_cell()
    assert result.config.x.values[best] == pytest.approx(value)
    (edge,) = best_on_edge(result)
    assert edge == Edge("lr", end, pytest.approx(value), None)
    beyond = "above" if end == "high" else "below"
    assert edge.message == (
        f"the best cell is on the edge of the lr range, at its {end} end "
        f"(lr = {value:g}): widen the range {beyond} {value:g}"
    )
    assert f"warning: {edge.message}" in sweep_summary(result).splitlines()


def test_a_two_axis_sweep_reports_only_the_axis_whose_end_holds_the_best_cell():
    # On x² + y², SGD at lr = 0.5 lands on the minimum in one step without momentum;
    # any momentum carries it past. The best cell: lr = 0.5 (inside), momentum = 0.
    cfg = SweepConfig(
        OptimizerConfig.create("sgd"),
        Axis("momentum", 0.5, 0.0, 6),
        Axis("lr", 0.4, 0.6, 3),
        problem=Problem(surface="custom", expr="x**2 + y**2", steps=50),
    )
    result = run_sweep(cfg)
    assert cfg.cell_values(result.best_cell()) == {"momentum": 0.0, "lr": 0.5}
    momentum = OptimizerConfig.create("sgd").spec.hparam("momentum")
    (edge,) = best_on_edge(result)
    # momentum cannot go below 0 (torch refuses it): no "widen" advice there.
    assert edge == Edge("momentum", "low", 0.0, momentum.range_text())
    assert "widen" not in edge.message
    assert edge.message.endswith(f"momentum can go no lower (allowed: {momentum.range_text()})")


def test_a_tie_that_reaches_inside_the_range_is_not_an_edge():
    # Started on the minimum, every cell stays there: all tie at f = 0.
    problem = Problem(surface="quadratic", start=(0.0, 0.0), steps=20)
    result = run_sweep(
        SweepConfig(OptimizerConfig.create("sgd"), Axis("lr", 0.01, 0.1, 5, "log"), problem=problem)
    )
    assert (result.final_loss == 0).all()
    assert result.best_cell() == 0 and len(result.best_cells()) == 5
    assert result.cell_or_best(None) == 0 and result.cell_or_best(3) == 3  # a chosen cell wins
    assert best_on_edge(result) == ()


def test_start_point_axes_and_all_diverged_sweeps_have_no_edge():
    basins = SweepConfig(
        OptimizerConfig.create("adam", lr=0.05),
        Axis("start_x", -4.0, 4.0, 5),
        Axis("start_y", -4.0, 4.0, 5),
        problem=Problem(surface="himmelblau", steps=200),
    )
    assert best_on_edge(run_sweep(basins)) == ()
    diverged = run_sweep(sgd_lr(0.3, 1.0, 3))
    assert diverged.best_cell() is None and best_on_edge(diverged) == ()
    assert "best cell: none (every cell diverged)" in sweep_summary(diverged)


def test_cli_sweep_prints_the_edge_warning(capsys):
    argv = ["sweep", "--surface", "quadratic", "--opt", "sgd", "--steps", "100"]
    assert main([*argv, "--x", "lr=0.02:0.09:log:6"]) == 0
    out = capsys.readouterr().out
    assert (
        "warning: the best cell is on the edge of the lr range, at its high end (lr = 0.09): "
        "widen the range above 0.09"
    ) in out.splitlines()
    assert main([*argv, "--x", "lr=0.05:0.3:log:7"]) == 0
    assert "warning" not in capsys.readouterr().out
