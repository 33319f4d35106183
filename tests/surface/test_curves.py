"""Tests for optlab.surface.curves: loss, distance and schedule curves, every step drawn,
a diverged run never setting the range."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

from optlab.charts import MAX_LOG_TICKS
from optlab.optim.plans import Plan
from optlab.surface.curves import (
    GAP_FLOOR,
    distance_figure,
    loss_figure,
    schedule_figure,
    seed_spread,
)
from optlab.surface.problem import Problem
from optlab.surface.run import DIVERGED, SurfaceRunConfig
from optlab.surface.surfaces import CUSTOM, formula_surface, get_surface
from optlab.surface.trajectory import Trajectory, collect
from tests.support.paths import hand_made, long_trajectory, opt, paths_by_label, values
from tests.surface.conftest import STEPS

ROSENBROCK = get_surface("rosenbrock")
HIMMELBLAU = get_surface("himmelblau")


def exit_markers(fig) -> dict[str, object]:
    return {t.name: t for t in fig.data if t.name and t.name.endswith("left the chart")}


# --- loss_figure -----------------------------------------------------------------------


def test_loss_is_the_gap_on_a_log_axis_with_every_step(rosen: list[Trajectory]) -> None:
    fig = loss_figure(ROSENBROCK, rosen)
    assert fig.layout.yaxis.type == "log"
    paths = paths_by_label(fig, rosen)
    for tr in (rosen[0], rosen[2]):  # the runs that did not diverge: drawn whole
        trace = paths[tr.optimizer.label]
        want = np.maximum(np.asarray(tr.loss) - ROSENBROCK.f_min, GAP_FLOOR)
        np.testing.assert_allclose(values(trace.y), want, rtol=1e-12)
        assert list(trace.x) == list(tr.step)


def test_a_diverged_run_is_cut_where_it_leaves_and_marked(rosen: list[Trajectory]) -> None:
    """SGD at lr 1 reaches ~1e20 on Rosenbrock: it must not set the range; its curve
    stops where it leaves the chart, and a triangle there gives the value reached."""
    fig = loss_figure(ROSENBROCK, rosen)
    kept = [rosen[0], rosen[2]]
    top = max(max(np.asarray(tr.loss) - ROSENBROCK.f_min) for tr in kept)
    low, high = (10**v for v in fig.layout.yaxis.range)
    assert high == pytest.approx(top * 10) and low < 1e-9
    sgd = rosen[1]
    gaps = np.asarray(sgd.loss) - ROSENBROCK.f_min
    assert not (np.isfinite(gaps) & (gaps <= high)).all(), "the fixture's SGD must leave"
    cut = int(np.flatnonzero(~(np.isfinite(gaps) & (gaps <= high)))[0])
    trace = paths_by_label(fig, rosen)[sgd.optimizer.label]
    assert len(trace.y) == cut and max(trace.y) <= high
    (marker,) = exit_markers(fig).values()
    assert marker.name.startswith(sgd.optimizer.label)
    assert list(marker.x) == [sgd.step[cut]] and list(marker.y) == [pytest.approx(high)]
    assert marker.marker.color == trace.line.color and marker.marker.symbol == "triangle-up"
    assert "left the chart at step" in marker.hovertemplate
    reached = gaps[cut]
    assert ("inf" if math.isinf(reached) else f"{reached:.4g}") in marker.hovertemplate


def test_a_diverged_run_on_a_linear_chart_is_cut_below_too() -> None:
    """A saddle has no minimum: f itself, linearly. At lr 0.5, SGD zeroes x at once and
    doubles y on every step, sliding down to -1e22: cut at the bottom, a downward
    triangle there."""
    saddle = get_surface("saddle")
    cfg = SurfaceRunConfig(
        (opt("sgd", lr=0.01), opt("sgd", lr=0.5)), problem=Problem(surface="saddle", steps=50)
    )
    slow, fast = collect(cfg)
    assert fast.status == DIVERGED and slow.status != DIVERGED
    fig = loss_figure(saddle, [slow, fast])
    assert fig.layout.yaxis.type != "log"
    low, high = fig.layout.yaxis.range
    assert low >= min(slow.loss) - abs(min(slow.loss)) and high <= max(slow.loss) + 1
    (marker,) = exit_markers(fig).values()
    assert marker.marker.symbol == "triangle-down" and list(marker.y) == [low]


def test_loss_gap_uses_the_minimum_value() -> None:
    # Goldstein-Price has f* = 3: the gap is f - 3, not f.
    surface = get_surface("goldstein_price")
    cfg = SurfaceRunConfig(
        (opt("adam", lr=0.01),), problem=Problem(surface="goldstein_price", steps=30)
    )
    (tr,) = collect(cfg)
    (trace,) = loss_figure(surface, [tr]).data
    np.testing.assert_allclose(
        values(trace.y), np.maximum(np.asarray(tr.loss) - surface.f_min, GAP_FLOOR)
    )


def test_loss_floors_dips_below_the_minimum() -> None:
    surface = get_surface("styblinski_tang")
    tr = long_trajectory(3)
    below = surface.f_min - 1e-4
    tr = dataclasses.replace(tr, loss=(5.0, 1.0, surface.f_min, below))
    (trace,) = loss_figure(surface, [tr]).data
    assert list(trace.y)[-2:] == [GAP_FLOOR, GAP_FLOOR]
    assert trace.y[0] == pytest.approx(5.0 - surface.f_min)


def test_loss_is_f_itself_without_a_minimum() -> None:
    cfg = SurfaceRunConfig((opt("adam", lr=0.1),), problem=Problem(surface="saddle", steps=20))
    trajectories = collect(cfg)
    fig = loss_figure(cfg.resolved_surface, trajectories)
    assert fig.layout.yaxis.type != "log"
    (trace,) = fig.data
    np.testing.assert_allclose(values(trace.y), trajectories[0].loss, rtol=1e-12)
    assert min(trace.y) < 0, "negative values must be shown as they are"


def test_loss_against_evaluations(rosen: list[Trajectory]) -> None:
    fig = loss_figure(ROSENBROCK, rosen, x="evals")
    assert "evaluations" in fig.layout.xaxis.title.text
    paths = paths_by_label(fig, rosen)
    lbfgs = paths[rosen[2].optimizer.label]
    assert list(lbfgs.x) == list(rosen[2].evals) and lbfgs.x[-1] > STEPS


def test_a_long_run_is_drawn_whole() -> None:
    tr = long_trajectory(5000)
    (trace,) = loss_figure(ROSENBROCK, [tr]).data
    assert len(trace.y) == 5001


def test_log_axes_label_at_most_a_few_whole_decades(rosen: list[Trajectory]) -> None:
    fig = loss_figure(ROSENBROCK, rosen)
    low, high = fig.layout.yaxis.range
    dtick = fig.layout.yaxis.dtick
    assert isinstance(dtick, int) and dtick >= 1
    assert (high - low) / dtick <= MAX_LOG_TICKS


def test_every_curve_has_a_legend_under_the_plot(rosen: list[Trajectory]) -> None:
    many = [*rosen, *rosen, *rosen][:8]
    fig = loss_figure(ROSENBROCK, many)
    assert fig.layout.showlegend is not False
    assert fig.layout.legend.y < 0 and fig.layout.legend.yanchor == "top"


# --- distance_figure -------------------------------------------------------------------


def test_distance_is_none_without_minima() -> None:
    assert distance_figure(get_surface("saddle"), [long_trajectory(5)]) is None
    # A typed formula without a minimum inside its bounds (f falls off the edge).
    assert distance_figure(formula_surface("x + y"), [long_trajectory(5)]) is None


def test_distance_is_to_the_nearest_minimum(himmel: list[Trajectory]) -> None:
    fig = distance_figure(HIMMELBLAU, himmel)
    assert fig is not None and fig.layout.yaxis.type == "log"
    for tr, trace in zip(himmel, paths_by_label(fig, himmel).values(), strict=True):
        want = [
            max(min(math.hypot(x - m.x, y - m.y) for m in HIMMELBLAU.minima), GAP_FLOOR)
            for x, y in zip(tr.x, tr.y, strict=True)
        ]
        np.testing.assert_allclose(values(trace.y), want, rtol=1e-12)
        assert list(trace.x) == list(tr.step)


# --- schedule_figure -------------------------------------------------------------------


def _planned(key: str, plan: str, **values: float) -> Trajectory:
    cfg = SurfaceRunConfig(
        (opt(key, **values),),
        problem=Problem(surface="quadratic", steps=60),
        plans=(Plan.from_text(plan),),
    )
    return collect(cfg)[0]


def test_schedule_shows_the_lr_step_by_step() -> None:
    """Cosine annealing ends at lr 0, which a log axis cannot show: a linear axis then."""
    tr = _planned("sgd", "cosine", lr=0.1)
    assert tr.lr[-1] == 0.0
    fig = schedule_figure([tr])
    (lr,) = [t for t in fig.data if t.name == tr.optimizer.label]
    np.testing.assert_allclose(values(lr.y), tr.lr)
    assert lr.line.shape == "hv" and fig.layout.yaxis.type != "log"


def test_schedule_spanning_decades_is_drawn_on_a_log_axis() -> None:
    tr = _planned("sgd", "step:step_size=10", lr=0.1)
    assert max(tr.lr) / min(tr.lr) >= 100
    fig = schedule_figure([tr])
    assert fig.layout.yaxis.type == "log"
    (lr,) = [t for t in fig.data if t.name == tr.optimizer.label]
    np.testing.assert_allclose(values(lr.y), tr.lr)


def test_one_cycle_adds_the_momentum_panel_torch_cycles() -> None:
    """OneCycleLR cycles SGD's momentum (cycle_momentum=True): a second panel shows it;
    a cosine schedule leaves momentum alone: no panel."""
    cycled = _planned("sgd", "onecycle", lr=0.01, momentum=0.9)
    fig = schedule_figure([cycled])
    momentum = [t for t in fig.data if t.yaxis == "y2"]
    assert len(momentum) == 1
    np.testing.assert_allclose(values(momentum[0].y), cycled.momentum)
    assert max(cycled.momentum) == pytest.approx(0.95) and min(cycled.momentum) < 0.86
    assert "β₁" in fig.layout.yaxis2.title.text
    plain = _planned("sgd", "cosine", lr=0.01, momentum=0.9)
    assert not any(t.yaxis == "y2" for t in schedule_figure([plain]).data)


def test_figures_accept_no_trajectories() -> None:
    for fig in (loss_figure(ROSENBROCK, []), schedule_figure([])):
        fig.to_json()
    assert torch.get_default_dtype() == torch.float32  # figures never touch torch state
    assert formula_surface("x**2 + y**2").label and CUSTOM


def test_a_typed_formula_gets_an_estimated_minimum_on_both_charts() -> None:
    cfg = SurfaceRunConfig(
        (opt("adam", lr=0.1),), problem=Problem(surface=CUSTOM, expr="(x-1)**2 + y**2", steps=30)
    )
    surface = cfg.resolved_surface
    trajectories = collect(cfg)
    loss = loss_figure(surface, trajectories)
    assert loss.layout.yaxis.type == "log" and "estimated" in loss.layout.yaxis.title.text
    distance = distance_figure(surface, trajectories)
    assert distance is not None and "estimated" in distance.layout.title.text
    (trace,) = distance.data
    want = np.hypot(np.asarray(trajectories[0].x) - 1, np.asarray(trajectories[0].y))
    np.testing.assert_allclose(values(trace.y), np.maximum(want, GAP_FLOOR), atol=1e-6)


# --- several noise seeds -----------------------------------------------------------------


def test_the_seed_spread_is_median_and_quartiles_with_divergence_above_all() -> None:
    runs = [hand_made(np.zeros(4), np.zeros(4)) for _ in range(4)]
    diverged = dataclasses.replace(runs[3], step=(0, 1), status=DIVERGED)
    values = [
        np.array([4.0, 3.0, 2.0, 1.0]),
        np.array([4.0, 2.0, 1.0, 0.5]),
        np.array([4.0, 1.0, 0.5, 0.25]),
        np.array([4.0, np.nan]),
    ]
    median, low, high = seed_spread([*runs[:3], diverged], values)
    table = np.array([[4, 3, 2, 1], [4, 2, 1, 0.5], [4, 1, 0.5, 0.25], [4, np.inf, np.inf, np.inf]])
    np.testing.assert_array_equal(median, np.median(table, axis=0))
    assert list(low) == [4.0, 1.0, 0.5, 0.25] and list(high) == [4.0, 3.0, 2.0, 1.0]
    # Two seeds: the band is the two runs.
    _, low, high = seed_spread(runs[:2], values[:2])
    assert list(low) == [4.0, 2.0, 1.0, 0.5] and list(high) == [4.0, 3.0, 2.0, 1.0]


def test_noisy_seeds_draw_a_median_line_over_a_quartile_band_per_optimizer() -> None:
    cfg = SurfaceRunConfig(
        (opt("sgd", lr=1e-3), opt("adam", lr=0.05)),
        problem=Problem(steps=60, noise=2.0, seed=3, seeds=5),
    )
    runs = cfg.seed_runs()
    assert [r.problem.seed for r in runs] == [3, 4, 5, 6, 7]
    assert all(r.problem.seeds == 1 for r in runs)
    seeds = [collect(run) for run in runs]
    assert seeds[0][0].loss != seeds[1][0].loss  # the noise differs from seed to seed
    fig = loss_figure(ROSENBROCK, seeds[0], seeds=seeds)
    bands = [t for t in fig.data if t.fill == "tonexty"]
    lines = [t for t in fig.data if t.mode == "lines" and t.showlegend is not False]
    assert [t.name for t in lines] == [
        f"{seeds[0][0].optimizer.label}: median of 5 seeds",
        f"{seeds[0][1].optimizer.label}: median of 5 seeds",
    ]
    assert fig.data.index(bands[-1]) < fig.data.index(lines[0])  # bands under the lines
    for i, (line, band) in enumerate(zip(lines, bands, strict=True)):
        gaps = np.array([np.asarray(s[i].loss) - ROSENBROCK.f_min for s in seeds])
        np.testing.assert_allclose(values(line.y), np.median(gaps, axis=0), rtol=1e-9)
        assert np.all(values(band.y) <= values(line.y) + 1e-12)
        assert np.all(values(band.customdata) >= values(line.y) - 1e-12)
    distance = distance_figure(ROSENBROCK, seeds[0], seeds=seeds)
    assert distance is not None and "5 noise seeds" in distance.layout.title.text


def test_without_noise_the_seeds_collapse_to_one() -> None:
    assert Problem(noise=0.0, seeds=5).seeds == 1
    assert len(SurfaceRunConfig((opt("adam"),), Problem(seeds=5)).seed_runs()) == 1
    with pytest.raises(ValueError, match="server's cap"):
        Problem(noise=1.0, seeds=10_000)
