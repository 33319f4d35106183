"""Tests for optlab.surface.plots: figure builders are pure functions of a surface and records.

Figures are inspected as data (traces, frames, layout), the way a browser would
receive them; nothing is rendered.
"""

from __future__ import annotations

import base64
import dataclasses
import io
import json
import math
from typing import Any

import numpy as np
import plotly.graph_objects as go
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from optlab.charts import MAX_LOG_TICKS, MAX_PATH_POINTS, thin
from optlab.optim.config import OptimizerConfig
from optlab.surface import plots
from optlab.surface.plots import (
    MAX_FRAMES,
    contour_figure,
    distance_figure,
    loss_figure,
    replay_figure,
    shown_values,
    surface3d_figure,
)
from optlab.surface.problem import Problem
from optlab.surface.run import DIVERGED, MAX_OPTIMIZERS, SurfaceRunConfig
from optlab.surface.surfaces import CUSTOM, Surface, formula_surface, get_surface
from optlab.surface.trajectory import Trajectory, collect

STEPS = 120
ROSENBROCK = get_surface("rosenbrock")
HIMMELBLAU = get_surface("himmelblau")


def opt(key: str, **values: Any) -> OptimizerConfig:
    return OptimizerConfig.create(key, **values)


@pytest.fixture(scope="module")
def rosen() -> list[Trajectory]:
    """Adam converging, SGD diverging at once, LBFGS with many evaluations per step."""
    cfg = SurfaceRunConfig(
        (opt("adam", lr=0.05), opt("sgd", lr=1.0), opt("lbfgs", line_search_fn="strong_wolfe")),
        problem=Problem(steps=STEPS),
    )
    trajectories = collect(cfg)
    assert trajectories[1].status == DIVERGED
    return trajectories


@pytest.fixture(scope="module")
def himmel() -> list[Trajectory]:
    cfg = SurfaceRunConfig(
        (opt("adam", lr=0.1), opt("sgd", lr=0.01)), problem=Problem(surface="himmelblau", steps=60)
    )
    return collect(cfg)


def long_trajectory(n_steps: int = 5000, key: str = "adam") -> Trajectory:
    """A synthetic spiral into Rosenbrock's minimum with n_steps steps."""
    t = np.linspace(0.0, 1.0, n_steps + 1)
    x = 1.0 - 2.2 * (1 - t) * np.cos(12 * t)
    y = 1.0 + 1.5 * (1 - t) * np.sin(12 * t)
    loss = (1 - x) ** 2 + 100 * (y - x**2) ** 2
    return Trajectory(
        optimizer=opt(key),
        step=tuple(range(n_steps + 1)),
        x=tuple(x.tolist()),
        y=tuple(y.tolist()),
        loss=tuple(loss.tolist()),
        grad_norm=tuple([1.0] * (n_steps + 1)),
        lr=tuple([1e-3] * (n_steps + 1)),
        evals=tuple(range(n_steps + 1)),
        status="done",
    )


def paths_by_label(fig: go.Figure, trajectories: list[Trajectory]) -> dict[str, Any]:
    """The one line trace named after each optimizer's label."""
    out = {}
    for tr in trajectories:
        named = [
            t
            for t in fig.data
            if t.name == tr.optimizer.label and "lines" in (getattr(t, "mode", None) or "lines")
        ]
        assert len(named) == 1, (tr.optimizer.label, [t.name for t in fig.data])
        out[tr.optimizer.label] = named[0]
    return out


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


def test_long_path_is_thinned_with_ends_kept() -> None:
    tr = long_trajectory(5000)
    fig = contour_figure(ROSENBROCK, [tr])
    (path,) = paths_by_label(fig, [tr]).values()
    assert 2 <= len(path.x) <= MAX_PATH_POINTS
    assert as_drawn(path.x[0], path.y[0]) == as_drawn(tr.x[0], tr.y[0])
    assert as_drawn(path.x[-1], path.y[-1]) == as_drawn(tr.x[-1], tr.y[-1])
    pairs = {as_drawn(x, y) for x, y in zip(tr.x, tr.y, strict=True)}
    assert all(as_drawn(x, y) in pairs for x, y in zip(path.x, path.y, strict=True))


@pytest.mark.filterwarnings("ignore:overflow encountered in cast:RuntimeWarning")
def test_contour_z_is_finite_where_the_surface_is() -> None:
    surface = formula_surface("exp(x**2 + y**2)", ((-10.0, 10.0), (-10.0, 10.0)))
    _, _, z = surface.grid(40)
    assert np.isfinite(z).all()
    fig = contour_figure(surface, [], n=40)
    (contour,) = [t for t in fig.data if t.type == "contour"]
    assert np.isfinite(np.asarray(contour.z)).all()


# --- replay_figure ---------------------------------------------------------------------


def as_drawn(x: float, y: float) -> tuple[float, float]:
    """A point as the replay may send it: frames are allowed float32 precision."""
    return float(np.float32(x)), float(np.float32(y))


def frame_paths(frame: go.Frame, k: int) -> tuple[Any, Any]:
    """The path and head traces of optimizer k in a frame."""
    return frame.data[2 * k], frame.data[2 * k + 1]


def test_replay_has_frames_slider_and_buttons(rosen: list[Trajectory]) -> None:
    fig = replay_figure(ROSENBROCK, rosen)
    assert 2 <= len(fig.frames) <= MAX_FRAMES
    names = [f.name for f in fig.frames]
    assert len(set(names)) == len(names)
    (slider,) = fig.layout.sliders
    assert [list(s.args[0]) for s in slider.steps] == [[n] for n in names]
    assert all(s.method == "animate" for s in slider.steps)
    (menu,) = fig.layout.updatemenus
    labels = [b.label for b in menu.buttons]
    assert any("Play" in label for label in labels) and any("Pause" in label for label in labels)
    assert all(b.method == "animate" for b in menu.buttons)
    steps = [int(n) for n in names]
    assert steps == sorted(steps) and steps[0] == 0 and steps[-1] == STEPS


def test_replay_frames_respect_max_frames() -> None:
    fig = replay_figure(ROSENBROCK, [long_trajectory(5000)], frames=25)
    assert 2 <= len(fig.frames) <= 25
    fig = replay_figure(ROSENBROCK, [long_trajectory(3)])
    assert [f.name for f in fig.frames] == ["0", "1", "2", "3"]


def test_replay_last_frame_ends_at_every_final_point(rosen: list[Trajectory]) -> None:
    fig = replay_figure(ROSENBROCK, rosen)
    last = fig.frames[-1]
    for k, tr in enumerate(rosen):
        path, head = frame_paths(last, k)
        assert as_drawn(path.x[-1], path.y[-1]) == as_drawn(tr.x[-1], tr.y[-1])
        assert len(head.x) == len(head.y) == 1
        assert as_drawn(head.x[0], head.y[0]) == as_drawn(tr.x[-1], tr.y[-1])


def test_replay_frame_shows_nothing_beyond_its_step(rosen: list[Trajectory]) -> None:
    trajectories = [*rosen, long_trajectory(STEPS)]
    fig = replay_figure(ROSENBROCK, trajectories)
    for frame in fig.frames:
        step = int(frame.name)
        for k, tr in enumerate(trajectories):
            path, head = frame_paths(frame, k)
            upto = min(step, tr.step[-1])
            seen = list(zip(tr.x, tr.y, strict=True))[: upto + 1]
            allowed = {as_drawn(x, y) for x, y in seen}
            drawn = {as_drawn(x, y) for x, y in zip(path.x, path.y, strict=True)}
            assert drawn <= allowed, (step, k)
            assert as_drawn(path.x[0], path.y[0]) == as_drawn(tr.x[0], tr.y[0])
            assert as_drawn(path.x[-1], path.y[-1]) == as_drawn(tr.x[upto], tr.y[upto])
            assert as_drawn(head.x[0], head.y[0]) == as_drawn(tr.x[upto], tr.y[upto]), (step, k)


def test_replay_frames_thin_long_paths() -> None:
    tr = long_trajectory(5000)
    fig = replay_figure(ROSENBROCK, [tr])
    assert all(len(frame_paths(f, 0)[0].x) <= MAX_PATH_POINTS for f in fig.frames)


def test_replay_background_is_an_image_over_the_bounds(rosen: list[Trajectory]) -> None:
    fig = replay_figure(ROSENBROCK, rosen)
    assert not [t for t in fig.data if t.type in ("contour", "heatmap")]
    (image,) = fig.layout.images
    (x0, x1), (y0, y1) = ROSENBROCK.bounds
    assert (image.xref, image.yref) == ("x", "y")
    assert (image.x, image.y, image.sizex, image.sizey) == (x0, y1, x1 - x0, y1 - y0)
    assert image.layer == "below"
    assert list(fig.layout.xaxis.range) == [x0, x1]
    assert list(fig.layout.yaxis.range) == [y0, y1]


def test_replay_image_is_the_right_way_up() -> None:
    fig = replay_figure(ROSENBROCK, [], n=60)
    source = fig.layout.images[0].source
    assert source.startswith("data:image/png;base64,")
    pixels = np.asarray(Image.open(io.BytesIO(base64.b64decode(source.split(",", 1)[1]))))
    pixels = pixels if pixels.ndim == 2 else pixels[..., 0]
    # Dark is low. The top-left corner is (-2, 3), where f = 109; the bottom-left
    # corner is (-2, -1), where f = 2509. An upside-down image swaps them.
    assert pixels[0, 0] < pixels[-1, 0]
    (x0, x1), (y0, y1) = ROSENBROCK.bounds
    rows, cols = pixels.shape
    row = round((y1 - 1.0) / (y1 - y0) * (rows - 1))
    col = round((1.0 - x0) / (x1 - x0) * (cols - 1))
    assert pixels[row, col] == pixels.min(), "the minimum (1, 1) should be darkest"


# --- surface3d_figure ------------------------------------------------------------------


def test_surface3d_has_the_surface_and_one_path_per_optimizer(rosen: list[Trajectory]) -> None:
    fig = surface3d_figure(ROSENBROCK, rosen)
    types = [t.type for t in fig.data]
    assert types == ["surface"] + ["scatter3d"] * len(rosen)
    for trace, tr in zip(fig.data[1:], rosen, strict=True):
        assert trace.name == tr.optimizer.label
        assert as_drawn(trace.x[0], trace.y[0]) == as_drawn(tr.x[0], tr.y[0])
        assert as_drawn(trace.x[-1], trace.y[-1]) == as_drawn(tr.x[-1], tr.y[-1])
        want, _ = shown_values(ROSENBROCK, np.asarray(tr.loss))
        np.testing.assert_allclose(np.asarray(trace.z, dtype=np.float64), want, rtol=1e-6)


# --- loss_figure -----------------------------------------------------------------------


def test_loss_is_the_gap_on_a_log_axis_with_a_known_minimum(rosen: list[Trajectory]) -> None:
    fig = loss_figure(ROSENBROCK, rosen)
    assert fig.layout.yaxis.type == "log"
    for tr, trace in zip(rosen, paths_by_label(fig, rosen).values(), strict=True):
        y = np.asarray(trace.y)
        assert np.all(y[np.isfinite(y)] >= 1e-16)
        want = np.maximum(np.asarray(tr.loss) - ROSENBROCK.f_min, 1e-16)
        np.testing.assert_allclose(y, want, rtol=1e-6)
        assert list(trace.x) == list(tr.step)


def test_loss_gap_uses_the_minimum_value() -> None:
    # Goldstein-Price has f* = 3: the gap is f - 3, not f.
    surface = get_surface("goldstein_price")
    cfg = SurfaceRunConfig(
        (opt("adam", lr=0.01),), problem=Problem(surface="goldstein_price", steps=30)
    )
    (tr,) = collect(cfg)
    (trace,) = loss_figure(surface, [tr]).data
    np.testing.assert_allclose(trace.y, np.maximum(np.asarray(tr.loss) - 3.0, 1e-16))


def test_loss_clips_dips_below_the_rounded_minimum() -> None:
    surface = get_surface("styblinski_tang")
    tr = long_trajectory(3)
    below = surface.f_min - 1e-4
    tr = dataclasses.replace(tr, loss=(5.0, 1.0, surface.f_min, below))
    (trace,) = loss_figure(surface, [tr]).data
    assert list(trace.y)[-2:] == [1e-16, 1e-16]
    assert trace.y[0] == pytest.approx(5.0 - surface.f_min)


@pytest.mark.parametrize("where", ["custom", "saddle"])
def test_loss_is_f_itself_without_a_minimum(where: str) -> None:
    if where == CUSTOM:
        cfg = SurfaceRunConfig(
            (opt("adam", lr=0.1),), problem=Problem(surface=CUSTOM, expr="x**2 - y", steps=20)
        )
    else:
        cfg = SurfaceRunConfig((opt("adam", lr=0.1),), problem=Problem(surface="saddle", steps=20))
    trajectories = collect(cfg)
    fig = loss_figure(cfg.resolved_surface, trajectories)
    assert fig.layout.yaxis.type != "log"
    (trace,) = fig.data
    np.testing.assert_allclose(trace.y, trajectories[0].loss, rtol=1e-6)
    assert min(trace.y) < 0, "negative values must be shown as they are"


def test_loss_against_evaluations(rosen: list[Trajectory]) -> None:
    fig = loss_figure(ROSENBROCK, rosen, x="evals")
    assert "evaluations" in fig.layout.xaxis.title.text
    for tr, trace in zip(rosen, paths_by_label(fig, rosen).values(), strict=True):
        assert list(trace.x) == list(tr.evals)
    lbfgs = paths_by_label(fig, rosen)[rosen[2].optimizer.label]
    assert lbfgs.x[-1] > STEPS


def test_loss_of_a_long_run_is_thinned() -> None:
    tr = long_trajectory(5000)
    (trace,) = loss_figure(ROSENBROCK, [tr]).data
    assert len(trace.y) <= MAX_PATH_POINTS
    assert (trace.x[0], trace.x[-1]) == (0, 5000)


# --- distance_figure -------------------------------------------------------------------


def test_distance_is_none_without_minima() -> None:
    assert distance_figure(get_surface("saddle"), [long_trajectory(5)]) is None
    # A typed formula without a minimum inside its bounds (f falls off the edge).
    custom = formula_surface("x + y")
    assert distance_figure(custom, [long_trajectory(5)]) is None


def test_distance_is_to_the_nearest_minimum(himmel: list[Trajectory]) -> None:
    fig = distance_figure(HIMMELBLAU, himmel)
    assert fig is not None and fig.layout.yaxis.type == "log"
    for tr, trace in zip(himmel, paths_by_label(fig, himmel).values(), strict=True):
        want = [
            max(min(math.hypot(x - m.x, y - m.y) for m in HIMMELBLAU.minima), 1e-16)
            for x, y in zip(tr.x, tr.y, strict=True)
        ]
        np.testing.assert_allclose(trace.y, want, rtol=1e-12)
        assert list(trace.x) == list(tr.step)


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


# --- thin ------------------------------------------------------------------------------


@settings(max_examples=150, deadline=None)
@given(n=st.integers(0, 20_000), max_points=st.integers(2, 2_000))
def test_thin_keeps_the_ends_in_order(n: int, max_points: int) -> None:
    idx = thin(n, max_points)
    assert len(idx) <= max_points
    assert np.all(np.diff(idx) > 0)
    if n:
        assert idx[0] == 0 and idx[-1] == n - 1
        assert np.all((idx >= 0) & (idx < n))
    if n <= max_points:
        assert list(idx) == list(range(n))


def test_thin_spreads_points_evenly() -> None:
    idx = thin(5001, 600)
    gaps = np.diff(idx)
    assert gaps.max() - gaps.min() <= 1


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
            distance_figure(surface, trajectories),
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


def test_curve_legends_give_way_to_the_plot_beyond_three_lines(rosen: list[Trajectory]) -> None:
    few = plots.loss_figure(ROSENBROCK, rosen[:3])
    many = plots.loss_figure(ROSENBROCK, [*rosen, *rosen][:4])
    assert few.layout.showlegend is True and many.layout.showlegend is False
    # The paths keep their legend whatever the count: it is where names are read.
    assert plots.contour_figure(ROSENBROCK, [*rosen, *rosen][:4]).layout.showlegend is not False


def test_log_axes_label_at_most_a_few_whole_decades(rosen: list[Trajectory]) -> None:
    # rosen's L-BFGS reaches f* to ~1e-11 from ~10: about a dozen decades.
    fig = plots.loss_figure(ROSENBROCK, rosen)
    values = np.concatenate([np.asarray(t.y) for t in fig.data])
    decades = np.log10(values.max() / values.min())
    dtick = fig.layout.yaxis.dtick
    assert isinstance(dtick, int) and dtick >= 1
    assert decades / dtick <= MAX_LOG_TICKS
