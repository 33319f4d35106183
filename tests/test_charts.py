"""The optimizers' colours and dashes: distinct for every viewer, the same on every chart;
the margins reserved for the axes."""

from __future__ import annotations

import itertools

import numpy as np
import plotly.graph_objects as go
import pytest
from plotly.subplots import make_subplots
from streamlit.testing.v1 import AppTest

from optlab import charts
from optlab.charts import (
    COLORS,
    DASHES,
    DEFAULT_LABEL_CHARS,
    LEGEND_GAP_PX,
    LINE_EM,
    MODEBAR_PX,
    PRESENTER_FONT,
    THEME_STANDOFF,
    THEME_TICK_FONT,
    THEME_TITLE_FONT,
    _label_chars,
    color,
    dash,
    figure_spec,
    legend_below,
    presenter_style,
    reserve_margins,
)
from optlab.train.trajectory_plots import sharpness_figure

#: Machado, Oliveira & Fernandes (2009), "A Physiologically-based Model for Simulation
#: of Color Vision Deficiency", severity 1.0, applied to linear RGB.
DEFICIENCIES = {
    "normal": np.eye(3),
    "protanopia": np.array(
        [
            [0.152286, 1.052583, -0.204868],
            [0.114503, 0.786281, 0.099216],
            [-0.003882, -0.048116, 1.051998],
        ]
    ),
    "deuteranopia": np.array(
        [
            [0.367322, 0.860646, -0.227968],
            [0.280085, 0.672501, 0.047413],
            [-0.011820, 0.042940, 0.968881],
        ]
    ),
    "tritanopia": np.array(
        [
            [1.255528, -0.076749, -0.178779],
            [-0.078411, 0.930809, 0.147602],
            [0.004733, 0.691367, 0.303900],
        ]
    ),
}
#: CIE76 colour difference two lines must keep (about 2.3 is "just noticeable"; 15
#: reads as different colours at a glance, across a projected room).
MIN_DELTA_E = 15.0


def linear_rgb(hex_color: str) -> np.ndarray:
    srgb = np.array([int(hex_color[i : i + 2], 16) for i in (1, 3, 5)]) / 255
    return np.where(srgb <= 0.04045, srgb / 12.92, ((srgb + 0.055) / 1.055) ** 2.4)


def cie_lab(rgb: np.ndarray) -> np.ndarray:
    to_xyz = np.array(
        [[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]]
    )
    t = to_xyz @ np.clip(rgb, 0, 1) / np.array([0.95047, 1.0, 1.08883])
    f = np.where(t > 0.008856, np.cbrt(t), 7.787 * t + 16 / 116)
    return np.array([116 * f[1] - 16, 500 * (f[0] - f[1]), 200 * (f[1] - f[2])])


@pytest.mark.parametrize("vision", list(DEFICIENCIES))
def test_every_two_optimizer_colours_stay_apart(vision: str) -> None:
    seen = {c: cie_lab(DEFICIENCIES[vision] @ linear_rgb(c)) for c in COLORS}
    for a, b in itertools.combinations(COLORS, 2):
        delta = float(np.linalg.norm(seen[a] - seen[b]))
        assert delta >= MIN_DELTA_E, f"{a} and {b} differ by only {delta:.1f} under {vision}"


def test_eight_optimizers_get_eight_different_styles() -> None:
    assert len(set(COLORS)) == len(COLORS) == 8
    styles = {(color(i), dash(i)) for i in range(8)}
    assert len(styles) == 8
    assert dash(0) == "solid" and set(DASHES) <= {
        "solid",
        "dot",
        "dash",
        "longdash",
        "dashdot",
        "longdashdot",
    }
    # Past eight the styles repeat, in the same order.
    assert (color(8), dash(8)) == (color(0), dash(0))


def restyled(fig: go.Figure, *steps) -> go.Figure:
    """``fig``'s dict through each styling step, validated by Plotly as it is rebuilt
    (the page draws it unvalidated)."""
    spec = figure_spec(fig)
    for step in steps:
        assert step(spec) is spec
    return go.Figure(spec)


def _contour_like(**layout) -> go.Figure:
    fig = go.Figure(go.Scatter(x=[0, 1], y=[0, 1], name="a"))
    fig.update_xaxes(range=[-2, 2], title_text="x")
    fig.update_yaxes(range=[-1, 3], title_text="y")
    fig.update_layout(height=520, margin=dict(l=10, r=10, t=20, b=10), **layout)
    return fig


def test_reserved_margins_hold_the_axes_and_keep_the_legend_where_it_was() -> None:
    fig = _contour_like()
    legend_below(fig)
    before_gap = -fig.layout.legend.y * (520 - 20 - 10)
    fig = restyled(fig, reserve_margins)
    margin = fig.layout.margin
    # "−0.5" at 12 px, the 24 px standoff and the 14 px title: well over 10 px.
    assert margin.l >= THEME_STANDOFF["y"] + THEME_TITLE_FONT + 4 * 0.5 * THEME_TICK_FONT
    assert margin.b >= THEME_STANDOFF["x"] + THEME_TITLE_FONT + THEME_TICK_FONT
    gap = -fig.layout.legend.y * (520 - 20 - margin.b)
    assert gap == pytest.approx(before_gap) == pytest.approx(LEGEND_GAP_PX)


def test_reserving_never_shrinks_a_margin_and_bigger_fonts_get_more() -> None:
    wide = _contour_like()
    wide.update_layout(margin=dict(l=300, b=200))
    wide = restyled(wide, reserve_margins)
    assert (wide.layout.margin.l, wide.layout.margin.b) == (300, 200)
    small = restyled(_contour_like(), reserve_margins)
    big = restyled(_contour_like(font=dict(size=18)), reserve_margins)
    assert big.layout.margin.l > small.layout.margin.l
    assert big.layout.margin.b > small.layout.margin.b


def test_only_the_outer_axes_of_subplots_take_room() -> None:
    fig = make_subplots(rows=1, cols=2)
    fig.update_yaxes(title_text="long title", ticktext=["a" * 40], tickvals=[0], row=1, col=2)
    fig.update_yaxes(title_text="loss", row=1, col=1)
    fig.update_layout(margin=dict(l=10, b=10))
    fig = restyled(fig, reserve_margins)
    # The right-hand plot's labels sit between the plots, not in the margin.
    assert fig.layout.margin.l < 40 * 0.5 * THEME_TICK_FONT


def test_a_title_over_the_top_row_sits_under_the_modebar() -> None:
    # The CNN lab's sharpness panels in presenter view: the top panel's long title
    # ran under the modebar's icons at 1024x768 (margin.t was 40 px).
    sgd = [{"step": 20, "lambda_max": 57.0, "threshold": 200.0}]
    adam = [{"step": 20, "lambda_max_preconditioned": 6e3, "threshold_preconditioned": 3.8e3}]
    names = ["SGD (lr=0.01, momentum=0.9)", "Adam"]
    fig = restyled(sharpness_figure(names, [sgd, adam]), presenter_style)
    over_bottom = fig.layout.height - fig.layout.margin.t  # the plots and the bottom margin
    fig = restyled(fig, reserve_margins)
    top = [a for a in fig.layout.annotations if a.y >= 1]
    assert [a.text.split(":")[0] for a in top] == ["SGD (lr=0.01, momentum=0.9)"]
    assert top[0].font.size >= PRESENTER_FONT
    # The title's line (bottom-anchored on the plot's top) fits between the modebar
    # and the plot.
    assert fig.layout.margin.t >= MODEBAR_PX + LINE_EM * top[0].font.size
    # The chart grew by the margin it gained: the panels keep their height.
    assert fig.layout.height - fig.layout.margin.t == over_bottom


def test_a_chart_without_a_title_on_top_keeps_its_top_margin() -> None:
    fig = restyled(_contour_like(), reserve_margins)
    assert (fig.layout.margin.t, fig.layout.height) == (20, 520)


@pytest.mark.parametrize(
    ("axis", "chars"),
    [
        (dict(ticktext=["1e−4", "<b>1e−3</b>"], tickvals=[0, 1]), 4),
        (dict(tickformat=".0%"), 4),
        (dict(type="log"), 5),
        (dict(range=[-1, 3]), 4),  # "−0.5"
        (dict(range=[0, 100]), 3),  # "100"
        (dict(range=[0, 0.01]), 5),  # "0.001"
        (dict(), DEFAULT_LABEL_CHARS),  # autorange: unknown
    ],
)
def test_tick_labels_are_estimated_from_the_axis(axis: dict, chars: int) -> None:
    assert _label_chars(go.layout.YAxis(**axis).to_plotly_json()) == chars


def _page_figures() -> dict[str, go.Figure]:
    """One of each kind of chart the pages style: a clickable contour, curves over
    noise seeds, subplots, the replay (buttons and a slider), 3-D (a scene), a
    sweep's heatmap (a colour bar)."""
    from optlab.optim.config import OptimizerConfig
    from optlab.surface.curves import distance_figure, loss_figure, schedule_figure
    from optlab.surface.plots import contour_figure, surface3d_figure
    from optlab.surface.problem import Problem
    from optlab.surface.replay import replay_figure
    from optlab.surface.run import SurfaceRunConfig
    from optlab.surface.trajectory import collect
    from optlab.sweep.config import Axis, SweepConfig
    from optlab.sweep.plots import heatmap_figure
    from optlab.sweep.run import run_sweep

    optimizers = (OptimizerConfig.create("sgd", lr=1e-3), OptimizerConfig.create("adam", lr=0.1))
    cfg = SurfaceRunConfig(optimizers, Problem("rosenbrock", steps=40, noise=0.5, seeds=3))
    seeds = [collect(run) for run in cfg.seed_runs()]
    surface, paths = cfg.resolved_surface, seeds[0]
    grid = SweepConfig(
        OptimizerConfig.create("sgd", momentum=0.5),
        Axis("lr", 1e-4, 1e-2, 3, "log"),
        Axis("momentum", 0.0, 0.9, 3),
        problem=Problem(steps=20),
    )
    return {
        "contour": contour_figure(surface, paths, clickable=True),
        "loss over seeds": loss_figure(surface, paths, seeds=seeds),
        "distance": distance_figure(surface, paths),
        "schedule": schedule_figure(paths),
        "replay": replay_figure(surface, paths),
        "3-D": surface3d_figure(surface, paths),
        "heatmap": heatmap_figure(run_sweep(grid), "final_loss"),
    }


def _fonts(node: object, path: str = "") -> list[tuple[str, float | None]]:
    """Every font's size in a figure's dict, with where it is."""
    found = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("font", "tickfont") and isinstance(value, dict):
                found.append((f"{path}.{key}", value.get("size")))
            elif key not in ("template", "frames"):
                found += _fonts(value, f"{path}.{key}")
    elif isinstance(node, list | tuple):
        for i, value in enumerate(node):
            found += _fonts(value, f"{path}[{i}]")
    return found


def test_every_page_chart_styled_for_either_view_is_a_valid_figure_and_projector_sized() -> None:
    for name, fig in _page_figures().items():
        before = fig.to_json()
        plain = restyled(fig, reserve_margins)
        projected = restyled(fig, presenter_style, reserve_margins)
        assert fig.to_json() == before, f"{name}: styling changed the figure it was given"
        layout = projected.layout
        assert layout.height == round((fig.layout.height or 450) * 1.35), name
        assert layout.margin.l >= plain.layout.margin.l, name
        if fig.layout.legend.y is not None and fig.layout.legend.y < 0:
            assert layout.legend.y < plain.layout.legend.y, f"{name}: the legend moved down"
        # Every font size the chart sets is projector-sized (one it leaves unset takes
        # the layout's, or the layout's hover label's): each axis's ticks and title,
        # legend, hover label, colour bars, buttons, sliders, annotations.
        spec = projected.to_dict()
        assert spec["layout"]["font"]["size"] == PRESENTER_FONT, name
        assert spec["layout"]["hoverlabel"]["font"]["size"] == PRESENTER_FONT, name
        fonts = _fonts({"data": spec["data"], "layout": spec["layout"]})
        small = [(at, size) for at, size in fonts if size is not None and size < PRESENTER_FONT]
        assert not small, f"{name}: {small}"
        axes = [k for k in spec["layout"] if k.startswith(("xaxis", "yaxis"))]
        for axis in axes:
            assert spec["layout"][axis]["tickfont"]["size"] >= PRESENTER_FONT, (name, axis)
            assert spec["layout"][axis]["title"]["font"]["size"] >= PRESENTER_FONT, (name, axis)
        for trace in spec["data"]:
            if trace["type"] in ("contour", "heatmap", "surface") and trace.get("showscale", True):
                assert trace["colorbar"]["tickfont"]["size"] == PRESENTER_FONT, name
    assert any(k.startswith("scene") for k in _page_figures()["3-D"].to_dict()["layout"])


def test_a_figure_differing_from_its_validated_build_fails_the_check():
    """`charts.figure` builds unvalidated; the tests' check (`CHECK_FIGURES`, on in
    tests/conftest.py) fails a builder whose figure validation would change, as it
    does a named colorscale that plotly.js does not know."""
    assert charts.CHECK_FIGURES
    named = [dict(type="contour", z=[[1, 2], [3, 4]], colorscale="Greys_r")]
    with pytest.raises(AssertionError, match=r"/data\[0\]/colorscale: Greys_r != \[\[0"):
        charts.figure(named, {})
    spelled = [dict(type="contour", z=[[1, 2], [3, 4]], colorscale=charts.colorscale("Greys_r"))]
    fig = charts.figure(spelled, {"title": {"text": "f"}})
    assert fig.to_dict()["data"][0]["colorscale"][0] == (0.0, "rgb(0,0,0)")
    with pytest.raises(ValueError, match="range"):  # what validation refuses fails as loudly
        charts.checked([], {"xaxis": {"range": (0, 1, 2)}})


def _draw_both_ways() -> None:
    """A page drawing each page chart twice: as `show_chart` hands it to
    ``st.plotly_chart`` (a `StyledFigure`), and as the ``go.Figure`` of the same
    styled spec."""
    import copy

    import plotly.graph_objects as go
    import streamlit as st

    from optlab.ui import view
    from tests.test_charts import _page_figures

    for presenter in (False, True):
        st.session_state[view.PRESENTER_ON] = presenter
        for name, fig in _page_figures().items():
            styled = view._styled(fig, 700 if name == "contour" else None)
            assert isinstance(styled, view.StyledFigure)
            as_figure = go.Figure(copy.deepcopy(styled.spec), _validate=False)
            st.plotly_chart(styled, key=f"styled {name} {presenter}")
            st.plotly_chart(as_figure, key=f"figure {name} {presenter}")


def test_a_styled_chart_sends_what_the_go_figure_of_its_spec_sends() -> None:
    """`show_chart` gives ``st.plotly_chart`` its styled spec as it is, not copied into
    a ``go.Figure`` (`view.StyledFigure`): Streamlit must send the same JSON for it,
    every kind of page chart in either view."""
    import json

    at = AppTest.from_function(_draw_both_ways, default_timeout=60).run()
    assert not at.exception, at.exception
    sent = [json.loads(e.proto.spec) for e in at.get("plotly_chart")]
    assert len(sent) == 2 * 2 * len(_page_figures())
    for styled, as_figure in zip(sent[::2], sent[1::2], strict=True):
        assert styled == as_figure
        assert styled["layout"]["template"]  # the theme's template goes with it, as before
