"""Tests for optlab.surface.plots: figure builders are pure functions of a surface and records.

Figures are inspected as data (traces, frames, layout), the way a browser would
receive them; nothing is rendered.
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pytest

from optlab.surface import plots
from optlab.surface.curves import distance_figure, loss_figure
from optlab.surface.plots import (
    DOTTED_POINTS,
    WEBGL_POINTS,
    contour_figure,
    shown_values,
    surface3d_figure,
)
from optlab.surface.problem import Problem
from optlab.surface.replay import replay_figure
from optlab.surface.run import MAX_OPTIMIZERS, SurfaceRunConfig
from optlab.surface.surfaces import CUSTOM, Surface, formula_surface, get_surface
from optlab.surface.trajectory import Trajectory, collect
from tests.support.paths import (
    as_drawn,
    long_trajectory,
    opt,
    paths_by_label,
    points,
    sign_changes,
    zigzag_trajectory,
)

ROSENBROCK = get_surface("rosenbrock")
HIMMELBLAU = get_surface("himmelblau")


def trace_color(trace: Any) -> str:
    return trace.line.color


def _reject_constant(name: str) -> Any:
    raise ValueError(f"non-standard JSON constant {name}")


# --- contour_figure --------------------------------------------------------------------


def test_contour_has_one_path_per_optimizer_with_distinct_colours(
    rosen: list[Trajectory],
) -> None:
    fig = contour_figure(ROSENBROCK, rosen)
    paths = paths_by_label(fig, rosen)
    colors = [trace_color(paths[tr.optimizer.label]) for tr in rosen]
    assert len(set(colors)) == len(colors)
    for tr in rosen:
        path = paths[tr.optimizer.label]
        drawn = [as_drawn(x, y) for x, y in zip(path.x, path.y, strict=True)]
        assert drawn == [as_drawn(x, y) for x, y in zip(tr.x, tr.y, strict=True)]


def test_colours_stay_distinct_up_to_the_optimizer_cap() -> None:
    trajectories = [long_trajectory(10, key) for key in ("adam", "sgd", "rmsprop", "adagrad")]
    trajectories += [long_trajectory(10, key) for key in ("adamax", "nadam", "radam", "asgd")]
    assert len(trajectories) == MAX_OPTIMIZERS
    fig = contour_figure(ROSENBROCK, trajectories)
    colors = [trace_color(t) for t in paths_by_label(fig, trajectories).values()]
    assert len(set(colors)) == MAX_OPTIMIZERS


def test_colours_are_consistent_across_figures(himmel: list[Trajectory]) -> None:
    figures = [
        contour_figure(HIMMELBLAU, himmel),
        loss_figure(HIMMELBLAU, himmel),
        distance_figure(HIMMELBLAU, himmel),
        replay_figure(HIMMELBLAU, himmel),
    ]
    per_figure = [
        {label: trace_color(t) for label, t in paths_by_label(f, himmel).items()} for f in figures
    ]
    assert all(colors == per_figure[0] for colors in per_figure)
    scatter3d = surface3d_figure(HIMMELBLAU, himmel).data[1:]
    assert {t.name: t.line.color for t in scatter3d} == per_figure[0]


def test_contour_marks_start_ends_and_minima(himmel: list[Trajectory]) -> None:
    fig = contour_figure(HIMMELBLAU, himmel)
    markers = [t for t in fig.data if t.type == "scatter" and t.mode == "markers"]
    start = himmel[0].x[0], himmel[0].y[0]
    assert any(
        [as_drawn(x, y) for x, y in zip(t.x, t.y, strict=True)] == [as_drawn(*start)]
        for t in markers
    )
    paths = paths_by_label(fig, himmel)
    for tr in himmel:
        color = trace_color(paths[tr.optimizer.label])
        ends = [t for t in markers if t.marker.color == color]
        assert [as_drawn(t.x[-1], t.y[-1]) for t in ends] == [as_drawn(tr.x[-1], tr.y[-1])]
    stars = [t for t in markers if t.marker.symbol == "star"]
    assert len(stars) == 1
    assert stars[0].marker.color == "gold"
    got = sorted(zip(stars[0].x, stars[0].y, strict=True))
    assert got == sorted((m.x, m.y) for m in HIMMELBLAU.minima)


def test_contour_without_minima_has_no_star() -> None:
    fig = contour_figure(get_surface("saddle"), [long_trajectory(5)])
    assert not any(t.marker.symbol == "star" for t in fig.data if t.type == "scatter")


def test_contour_axes_are_the_surface_bounds(rosen: list[Trajectory]) -> None:
    fig = contour_figure(ROSENBROCK, rosen)
    (x0, x1), (y0, y1) = ROSENBROCK.bounds
    assert list(fig.layout.xaxis.range) == [x0, x1]
    assert list(fig.layout.yaxis.range) == [y0, y1]
    (contour,) = [t for t in fig.data if t.type == "contour"]
    assert (float(contour.x[0]), float(contour.x[-1])) == (x0, x1)
    assert (float(contour.y[0]), float(contour.y[-1])) == (y0, y1)


def test_contour_shows_the_surface_values(rosen: list[Trajectory]) -> None:
    fig = contour_figure(ROSENBROCK, rosen, n=50)
    (contour,) = [t for t in fig.data if t.type == "contour"]
    _, _, z = ROSENBROCK.grid(50)
    want, _ = shown_values(ROSENBROCK, z)
    np.testing.assert_allclose(np.asarray(contour.z, dtype=np.float64), want, rtol=1e-6)


@pytest.mark.parametrize("n_steps", [100, 500, 5000])
def test_every_step_of_a_path_is_drawn(n_steps: int) -> None:
    """No thinning: a path that flips sign on each step keeps every flip (the issue's
    SGD at lr 0.095 on x**2 + 10*y**2 lost 80% of them)."""
    tr = zigzag_trajectory(n_steps)
    (path,) = paths_by_label(contour_figure(ROSENBROCK, [tr]), [tr]).values()
    assert points(path) == [as_drawn(x, y) for x, y in zip(tr.x, tr.y, strict=True)]
    assert sign_changes(np.asarray(path.y)) == n_steps
    # Past a thousand points the path is drawn with WebGL, every step still there;
    # a short path has a dot per step, a long one is a line with a vertex per step.
    assert path.type == ("scattergl" if n_steps + 1 > WEBGL_POINTS else "scatter")
    assert path.mode == ("lines+markers" if n_steps + 1 <= DOTTED_POINTS else "lines")


def test_hovering_a_path_names_its_optimizer_and_step_in_its_colour(
    rosen: list[Trajectory],
) -> None:
    paths = paths_by_label(contour_figure(ROSENBROCK, rosen), rosen)
    for tr in rosen:
        path = paths[tr.optimizer.label]
        assert (
            tr.optimizer.label in path.hovertemplate and "step %{pointNumber}" in path.hovertemplate
        )
        assert path.hoverlabel.bgcolor == path.line.color


def test_a_legend_click_shows_one_optimizer_alone(rosen: list[Trajectory]) -> None:
    legend = contour_figure(ROSENBROCK, rosen).layout.legend
    assert legend.itemclick == "toggleothers"
    # Under the plot, never over it.
    assert legend.orientation == "h" and legend.y < 0 and legend.yanchor == "top"


def test_a_palette_index_keeps_an_optimizers_colour_everywhere(rosen: list[Trajectory]) -> None:
    """The inspector draws Adam alone: its path and its end cross keep Adam's colour."""
    fig = contour_figure(ROSENBROCK, [rosen[0]], palette=[1])
    (path,) = paths_by_label(fig, [rosen[0]]).values()
    (end,) = [t for t in fig.data if t.name == f"{rosen[0].optimizer.label} end"]
    assert path.line.color == end.marker.color == plots.color(1)


@pytest.mark.filterwarnings("ignore:overflow encountered in cast:RuntimeWarning")
def test_contour_z_is_finite_where_the_surface_is() -> None:
    surface = formula_surface("exp(x**2 + y**2)", ((-10.0, 10.0), (-10.0, 10.0)))
    _, _, z = surface.grid(40)
    assert np.isfinite(z).all()
    fig = contour_figure(surface, [], n=40)
    (contour,) = [t for t in fig.data if t.type == "contour"]
    assert np.isfinite(np.asarray(contour.z)).all()


# --- surface3d_figure ------------------------------------------------------------------


def test_surface3d_has_the_surface_and_one_path_per_optimizer(rosen: list[Trajectory]) -> None:
    fig = surface3d_figure(ROSENBROCK, rosen)
    types = [t.type for t in fig.data]
    assert types == ["surface"] + ["scatter3d"] * len(rosen)
    (x0, x1), (y0, y1) = ROSENBROCK.bounds
    left = 0
    for trace, tr in zip(fig.data[1:], rosen, strict=True):
        assert trace.name == tr.optimizer.label
        xs, ys = np.asarray(tr.x), np.asarray(tr.y)
        inside = (xs >= x0) & (xs <= x1) & (ys >= y0) & (ys <= y1)
        drawn_x = np.asarray(trace.x, dtype=np.float64)
        np.testing.assert_array_equal(drawn_x[inside], xs[inside])
        # A diverging path is drawn while it is over the surface, never off it.
        assert np.isnan(drawn_x[~inside]).all()
        want, _ = shown_values(ROSENBROCK, np.asarray(tr.loss))
        drawn_z = np.asarray(trace.z, dtype=np.float64)
        np.testing.assert_allclose(drawn_z[inside], want[inside], rtol=1e-6)
        left += int((~inside).sum())
    assert left, "rosen's SGD leaves the bounds"


def test_a_diverged_path_cannot_flatten_the_3d_surface(rosen: list[Trajectory]) -> None:
    fig = surface3d_figure(ROSENBROCK, rosen)
    shown = np.asarray(fig.data[0].z, dtype=np.float64)
    assert list(fig.layout.scene.zaxis.range) == pytest.approx([shown.min(), shown.max()])


# --- shown_values ----------------------------------------------------------------------


def test_shown_values_log_scale_is_finite_at_the_minimum() -> None:
    assert ROSENBROCK.log_scale
    shown, label = shown_values(ROSENBROCK, np.array([0.0, 1.0, 99.999]))
    assert np.all(np.isfinite(shown))
    np.testing.assert_allclose(shown, np.log10(np.array([0.0, 1.0, 99.999]) + plots.LOG_OFFSET))
    assert "log" in label
    assert np.all(np.diff(shown) > 0), "the log view keeps the order of values"


def test_shown_values_log_scale_uses_f_min() -> None:
    surface = get_surface("six_hump_camel")
    assert surface.log_scale and surface.f_min < 0
    shown, _ = shown_values(surface, np.array([surface.f_min, surface.f_min + 1.0]))
    np.testing.assert_allclose(shown, np.log10([plots.LOG_OFFSET, 1.0 + plots.LOG_OFFSET]))


@pytest.mark.parametrize(
    "surface",
    [get_surface("rastrigin"), get_surface("saddle"), formula_surface("x**2 - y**2")],
    ids=["rastrigin", "saddle", "custom"],
)
def test_shown_values_identity_otherwise(surface: Surface) -> None:
    assert not surface.log_scale
    z = np.array([[-3.5, 0.0], [2.0, 1e6]])
    shown, _ = shown_values(surface, z)
    np.testing.assert_array_equal(shown, z)


# --- Every figure serialises -----------------------------------------------------------


def test_every_figure_serialises(rosen: list[Trajectory], himmel: list[Trajectory]) -> None:
    nan_run = collect(
        SurfaceRunConfig(
            (opt("adam"),),
            problem=Problem(surface=CUSTOM, expr="sqrt(x) + y", start=(-1.0, 1.0), steps=5),
        )
    )
    assert math.isnan(nan_run[0].loss[0])
    cases = [(ROSENBROCK, rosen), (HIMMELBLAU, himmel), (ROSENBROCK, [long_trajectory(5000)])]
    cases.append((formula_surface("sqrt(x) + y"), nan_run))
    for surface, trajectories in cases:
        figures = [
            contour_figure(surface, trajectories),
            replay_figure(surface, trajectories),
            surface3d_figure(surface, trajectories),
            loss_figure(surface, trajectories),
            loss_figure(surface, trajectories, x="evals"),
        ]
        for fig in filter(None, figures):
            data = json.loads(fig.to_json(), parse_constant=_reject_constant)
            assert data["data"]


def test_figures_are_pure(rosen: list[Trajectory]) -> None:
    before = [tuple(tr.x) for tr in rosen]
    for build in (contour_figure, replay_figure, surface3d_figure, loss_figure):
        assert build(ROSENBROCK, rosen).to_json() == build(ROSENBROCK, rosen).to_json()
    assert [tuple(tr.x) for tr in rosen] == before


def test_figures_accept_no_trajectories() -> None:
    for build in (contour_figure, replay_figure, surface3d_figure, loss_figure):
        fig = build(ROSENBROCK, [])
        fig.to_json()
