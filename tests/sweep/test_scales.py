"""Sweep charts stay readable: log ticks written 1e−4, divergence never flattens a curve.

Each case is a real sweep: SGD on the saddle x² − y² (no minimum, so no f*)
where one learning rate ends at f = −168 while the others stay within
[−0.2, 3.3], and the larger ones diverge; SGD on the bowl ½(x² + 10y²)
whose best cells end 1e-14 to 1e-43 above f* = 0; Styblinski-Tang, whose
f* is −78.3.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

from optlab.charts import MAX_LOG_TICKS, color
from optlab.optim.config import OptimizerConfig
from optlab.surface.problem import Problem
from optlab.sweep import plots as sweep_plots
from optlab.sweep.config import Axis, SweepConfig
from optlab.sweep.run import run_sweep, tune_lr
from optlab.sweep.scales import GAP_FLOOR, log_ticks

#: A number printed whole past 9 digits (210500000000), or a missing one printed raw.
UNREADABLE = re.compile(r"\d{10,}|None|NaN")


def hovers(fig) -> list[str]:
    return [str(t) for trace in fig.data for t in (trace.hovertext or ())]


def trace(fig, name):
    (found,) = [t for t in fig.data if t.name == name]
    return found


@pytest.mark.parametrize(
    ("low", "high", "expected"),
    [
        (1e-5, 1e-2, {"type": "log", "exponentformat": "e", "dtick": 1}),
        (1e-14, 10.0, {"type": "log", "exponentformat": "e", "dtick": 2}),
        (
            1e-3,
            5e-3,
            {"type": "log", "exponentformat": "e", "dtick": "D2", "minorloglabels": "complete"},
        ),
        (1e-3, 1.2e-3, {"type": "log", "exponentformat": "e"}),
    ],
    ids=["three-decades", "fifteen-decades", "under-a-decade", "a-sliver"],
)
def test_log_ticks_are_whole_decades_written_1e(low, high, expected):
    ticks = log_ticks(np.geomspace(low, high, 20))
    assert ticks == expected
    if isinstance(ticks.get("dtick"), int):
        assert np.log10(high / low) / ticks["dtick"] <= MAX_LOG_TICKS


@pytest.fixture(scope="module")
def saddle():
    cfg = SweepConfig(
        OptimizerConfig.create("sgd"),
        Axis("lr", 1e-4, 1.0, 13, "log"),
        problem=Problem(surface="saddle", steps=20),
    )
    return run_sweep(cfg)


def test_an_outlier_is_drawn_at_the_edge_and_the_rest_keep_the_height(saddle):
    loss = saddle.final_loss[0]
    ok = np.isfinite(loss)
    assert saddle.config.resolved_surface.f_min is None and loss[ok].min() < -100
    rest = np.sort(loss[ok])[1:]  # all but the outlier
    fig = sweep_plots.slice_figure(saddle, "final_loss", 0, clickable=True)
    line = trace(fig, "final loss")
    drawn = np.asarray(line.y, dtype=float)
    low, high = fig.layout.yaxis.range
    assert fig.layout.yaxis.type == "linear"
    # The others fill the chart: its range is a few times their spread, not 50 times.
    assert low <= rest.min() and rest.max() <= high
    assert high - low < 10 * (rest.max() - rest.min())
    outlier = int(np.nanargmin(loss))
    assert low <= drawn[outlier] < rest.min()  # drawn at the floor...
    assert np.allclose(drawn[ok & (loss > drawn[outlier])], loss[ok & (loss > drawn[outlier])])
    marked = trace(fig, "final loss: beyond the chart's floor")  # ...with a marker of its own
    assert list(marked.customdata) == [outlier]
    assert f"final loss = {loss[outlier]:.4g}" in marked.hovertext[0]
    assert "drawn at the chart's floor" in marked.hovertext[0]


def test_diverged_cells_are_crosses_on_the_top_edge_and_clickable(saddle):
    diverged = np.flatnonzero(saddle.diverged_at[0] >= 0)
    assert diverged.size
    fig = sweep_plots.slice_figure(saddle, "final_loss", 0, clickable=True)
    crosses = trace(fig, "diverged")
    assert crosses.yaxis == "y2" and list(crosses.y) == [1.0] * diverged.size
    assert fig.layout.yaxis2.range == (0, 1) and fig.layout.yaxis2.overlaying == "y"
    assert fig.layout.yaxis2.type == "linear"  # the value axis's type is not shared
    assert list(crosses.customdata) == diverged.tolist()
    for text, cell in zip(crosses.hovertext, diverged, strict=True):
        assert text.endswith(f"diverged at step {saddle.diverged_at[0, cell]}")
    assert fig.layout.hoverdistance == -1  # the nearest point to a click counts
    for text in hovers(fig):
        assert not UNREADABLE.search(text), text


def test_gaps_below_the_floor_are_drawn_on_it_marked_with_their_value():
    result = run_sweep(
        SweepConfig(
            OptimizerConfig.create("sgd"),
            Axis("lr", 0.01, 0.15, 6, "log"),
            problem=Problem(surface="quadratic", steps=300),
        )
    )
    loss = result.final_loss[0]
    tiny = loss < GAP_FLOOR
    assert tiny.sum() >= 2 and loss.min() < 1e-30
    fig = sweep_plots.slice_figure(result, "final_loss", 0)
    assert fig.layout.yaxis.type == "log" and fig.layout.yaxis.exponentformat == "e"
    drawn = np.asarray(trace(fig, "final loss").y, dtype=float)
    assert np.allclose(drawn[tiny], GAP_FLOOR) and np.allclose(drawn[~tiny], loss[~tiny])
    marked = trace(fig, "final loss: beyond the chart's floor")
    assert np.allclose(marked.x, result.config.x.values[tiny])
    for text, value in zip(marked.hovertext, loss[tiny], strict=True):
        assert f"final loss = {value:.4g}" in text


def test_tuning_curves_draw_the_gap_to_f_star_on_a_log_axis():
    axis = Axis("lr", 1e-4, 1.0, 9, "log")
    problem = Problem(surface="styblinski_tang", steps=200)
    tuned = [
        tune_lr(SweepConfig(OptimizerConfig.create(key), axis, problem=problem))
        for key in ("sgd", "adam")
    ]
    f_min = problem.resolved_surface.f_min
    assert f_min < 0  # raw losses are negative: a log axis needs the gap
    fig = sweep_plots.tuning_figure([t.sweep for t in tuned], ["SGD", "Adam"])
    assert fig.layout.yaxis.type == "log" and fig.layout.yaxis.title.text == "final loss − f*"
    assert fig.layout.xaxis.exponentformat == "e" and fig.layout.xaxis.dtick == 1
    for i, (name, t) in enumerate(zip(["SGD", "Adam"], tuned, strict=True)):
        curve = trace(fig, name)
        assert curve.line.color == color(i)
        assert np.allclose(curve.y, t.sweep.final_loss[0] - f_min, equal_nan=True)
    # SGD's large learning rates diverge: crosses in SGD's colour on the top edge.
    sgd = tuned[0].sweep.diverged_at[0]
    assert (sgd >= 0).any()
    crosses = trace(fig, "SGD: diverged")
    assert crosses.marker.color == color(0) and crosses.yaxis == "y2"
    assert np.allclose(crosses.x, axis.values[sgd >= 0])
    for text in hovers(fig):
        assert not UNREADABLE.search(text), text
