"""The trajectory figures draw exactly the landscape document they are given."""

from __future__ import annotations

import math

import numpy as np
import pytest

from optlab.charts import color
from optlab.train import trajectory_plots as tp


def document(loss_scale: float = 1.0, *, grid: bool = True, evaluated: bool = True) -> dict:
    a = np.linspace(-1.0, 2.0, 5).tolist()
    b = np.linspace(-0.5, 1.5, 4).tolist()
    loss = [[loss_scale * (1.0 + x * x + 2 * y * y) for x in a] for y in b]
    runs = [
        {
            "optimizer": "SGD",
            "steps": [0, 10, 20],
            "a": [0.0, 0.5, 1.0],
            "b": [0.0, 0.0, 0.0],
            "residual": [0.0, 0.0, 0.0],
        },
        {
            "optimizer": "Adam",
            "steps": [0, 10, 20],
            "a": [0.0, 0.2, 0.3],
            "b": [0.0, 0.4, 1.0],
            "residual": [0.0, 0.01, 0.0],
        },
    ]
    if evaluated:
        for run in runs:
            run["loss"] = [2.3, 1.5, 1.1]
    lines = [
        {"from": "initial", "to": "SGD", "t": [0.0, 0.5, 1.0], "loss": [2.3, 1.6, 1.1]},
        {"from": "initial", "to": "Adam", "t": [0.0, 0.5, 1.0], "loss": [2.3, 1.7, 1.1]},
        {"from": "SGD", "to": "Adam", "t": [0.0, 0.5, 1.0], "loss": [1.1, 1.9, 1.1]},
    ]
    return {
        "plane": {"kind": "endpoints", "optimizers": ["SGD", "Adam"]},
        "eval_images": 64,
        "a": a if grid else None,
        "b": b if grid else None,
        "loss": loss if grid else None,
        "lines": lines if grid else [],
        "runs": runs,
    }


def named(fig, name):
    (found,) = [t for t in fig.data if t.name == name]
    return found


def test_the_contour_is_the_grid_indexed_b_then_a_and_each_path_its_projection():
    doc = document()
    fig = tp.landscape_figure(doc)
    (contour,) = [t for t in fig.data if t.type == "contour"]
    assert list(contour.x) == doc["a"] and list(contour.y) == doc["b"]
    np.testing.assert_allclose(np.asarray(contour.z), np.asarray(doc["loss"]))
    for i, run in enumerate(doc["runs"]):
        path = named(fig, run["optimizer"])
        assert list(path.x) == run["a"] and list(path.y) == run["b"]
        assert path.line.color == color(i)
        end = named(fig, f"{run['optimizer']}: step 20")
        assert (end.x[0], end.y[0]) == (run["a"][-1], run["b"][-1])
        assert end.marker.color == color(i)
        # Hover carries the step, the residual in percent and the true loss.
        assert [c[0] for c in path.customdata] == run["steps"]
        assert [c[1] for c in path.customdata] == [100 * r for r in run["residual"]]
        assert [c[2] for c in path.customdata] == run["loss"]
        assert "off the plane" in path.hovertemplate and "loss" in path.hovertemplate
    start = named(fig, "θ₀ (shared start)")
    assert (start.x[0], start.y[0]) == (0.0, 0.0)
    # One scale on both axes: distances on screen are distances in weight space.
    assert fig.layout.yaxis.scaleanchor == "x" and fig.layout.yaxis.scaleratio == 1
    assert "θ₀ → SGD" in fig.layout.xaxis.title.text
    assert "θ₀ → Adam, orthogonalised" in fig.layout.yaxis.title.text


def test_a_grid_spanning_decades_is_coloured_by_log10_with_ticks_naming_the_loss():
    doc = document()
    doc["loss"][0][0] = 1000.0
    fig = tp.landscape_figure(doc)
    (contour,) = [t for t in fig.data if t.type == "contour"]
    assert math.isclose(contour.z[0][0], 3.0)
    np.testing.assert_allclose(np.asarray(contour.customdata), np.asarray(doc["loss"]))
    bar = contour.colorbar
    assert bar.title.text == "loss (log)"
    assert "1,000" in bar.ticktext or "1000" in bar.ticktext
    narrow = tp.landscape_figure(document())
    (flat,) = [t for t in narrow.data if t.type == "contour"]
    assert flat.colorbar.title.text == "loss"


def test_before_the_grid_exists_the_paths_are_drawn_alone_without_losses():
    doc = document(grid=False, evaluated=False)
    fig = tp.landscape_figure(doc)
    assert not [t for t in fig.data if t.type == "contour"]
    path = named(fig, "SGD")
    assert "loss" not in path.hovertemplate.split("off the plane")[1]
    assert [c[2] for c in path.customdata] == [None, None, None]


def test_the_3d_view_draws_only_runs_whose_snapshot_losses_are_known():
    fig = tp.landscape_3d(document())
    assert [t.name for t in fig.data if t.type == "scatter3d"] == ["SGD", "Adam"]
    assert list(named(fig, "SGD").z) == [2.3, 1.5, 1.1]
    doc = document()
    del doc["runs"][1]["loss"]
    assert [t.name for t in tp.landscape_3d(doc).data if t.type == "scatter3d"] == ["SGD"]


def test_interpolation_lines_keep_each_optimizer_colour_and_mark_the_barrier_line():
    fig = tp.lines_figure(document())
    assert [t.name for t in fig.data] == ["θ₀ → SGD", "θ₀ → Adam", "SGD → Adam"]
    assert named(fig, "θ₀ → Adam").line.color == color(1)
    assert named(fig, "SGD → Adam").line.dash == "dot"
    assert list(named(fig, "SGD → Adam").y) == [1.1, 1.9, 1.1]


def test_sharpness_panels_plot_each_optimizer_against_its_own_threshold():
    sgd = [
        {"step": 0, "lambda_max": 5.0, "threshold": 20.0},
        {"step": 50, "lambda_max": 19.0, "threshold": 20.0},
    ]
    adam = [
        {
            "step": 0,
            "lambda_max": 40.0,
            "threshold": None,
            "lambda_max_preconditioned": 900.0,
            "threshold_preconditioned": 3800.0,
        }
    ]
    other = [{"step": 0, "lambda_max": 7.0, "threshold": None}]
    fig = tp.sharpness_figure(["SGD", "Adam", "Adagrad"], [sgd, adam, other])
    assert list(named(fig, "SGD λ_max(H)").y) == [5.0, 19.0]
    assert list(named(fig, "SGD threshold").y) == [20.0, 20.0]
    assert list(named(fig, "Adam λ₁(P⁻¹H)").y) == [900.0]
    assert list(named(fig, "Adam threshold").y) == [3800.0]
    assert [t.name for t in fig.data if t.name.startswith("Adagrad")] == ["Adagrad λ_max(H)"]
    titles = [a.text for a in fig.layout.annotations]
    assert titles[1] == "Adam: λ₁(P⁻¹H) vs (2 + 2β₁)/((1 − β₁)η)"
    assert titles[2] == "Adagrad: λ_max(H) (no known threshold)"


@pytest.mark.parametrize("kind,words", [("pca", "principal direction 1"), ("random", "random")])
def test_axis_titles_say_what_the_plane_is(kind, words):
    doc = document()
    doc["plane"] = {"kind": kind}
    assert words in tp.landscape_figure(doc).layout.xaxis.title.text
