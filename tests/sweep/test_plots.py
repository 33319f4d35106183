"""Sweep figures: clickable cells, diverged cells marked, basins by category, tuning curves."""

from __future__ import annotations

import numpy as np
import pytest

from optlab.charts import COLORS
from optlab.optim.config import OptimizerConfig
from optlab.surface.problem import Problem
from optlab.sweep import plots as sweep_plots
from optlab.sweep.config import Axis, SweepConfig
from optlab.sweep.run import DIVERGED_CELL, NOT_CONVERGED, OTHER_STATIONARY, run_sweep, tune_lr


@pytest.fixture(scope="module")
def grid():
    cfg = SweepConfig(
        OptimizerConfig.create("sgd", momentum=0.5),
        Axis("lr", 1e-4, 0.05, 9, "log"),
        Axis("momentum", 0.0, 0.9, 6),
        problem=Problem(steps=150),
    )
    return run_sweep(cfg)


def trace(fig, name):
    return next(t for t in fig.data if t.name == name)


def test_every_cell_is_clickable_and_carries_its_index(grid):
    fig = sweep_plots.heatmap_figure(grid, "final_loss", selected=7)
    cells = trace(fig, "cells")
    assert list(cells.customdata) == list(range(grid.config.cells))
    # The marker at index i sits on cell i's centre.
    for i in (0, 7, grid.config.cells - 1):
        values = grid.config.cell_values(i)
        assert cells.x[i] == pytest.approx(values["lr"])
        assert cells.y[i] == pytest.approx(values["momentum"])
    # Invisible: text points with no text (markers would swallow clicks 3 px around them).
    assert cells.mode == "text" and set(cells.text) == {""}
    assert fig.layout.clickmode == "event+select" and fig.layout.hoverdistance == -1
    assert trace(fig, "replayed").x[0] == pytest.approx(grid.config.cell_values(7)["lr"])
    assert fig.layout.xaxis.type == "log" and fig.layout.yaxis.type == "linear"


def test_diverged_cells_get_their_own_layer_and_the_best_a_star(grid):
    fig = sweep_plots.heatmap_figure(grid, "final_loss")
    diverged = grid.diverged_at >= 0
    assert diverged.any()  # the big learning rates blow up
    layer = trace(fig, "diverged")
    assert np.array_equal(np.isfinite(np.asarray(layer.z, dtype=float)), diverged)
    best = grid.best_cell()
    star = trace(fig, "best final loss")
    assert star.x[0] == pytest.approx(grid.config.cell_values(best)["lr"])


def test_loss_colours_are_log_gaps_to_the_minimum(grid):
    values, title = sweep_plots.metric_values(grid, "final_loss")
    finite = np.isfinite(grid.final_loss)
    expected = np.log10(np.clip(grid.final_loss[finite], 0, None) + 1e-12)  # Rosenbrock f* = 0
    assert np.allclose(values[finite], expected) and "f*" in title
    steps, _ = sweep_plots.metric_values(grid, "steps_to_target")
    assert np.isnan(steps[grid.steps_to_target < 0]).all()


def test_slices_follow_the_picked_cell(grid):
    cfg = grid.config
    at = 3 * cfg.x.n + 5
    along_x = sweep_plots.slice_figure(grid, "best_loss", 0, at)
    assert np.allclose(
        np.asarray(along_x.data[0].y, dtype=float), grid.best_loss[3], equal_nan=True
    )
    assert f"{cfg.y.values[3]:.4g}" in along_x.layout.title.text
    along_y = sweep_plots.slice_figure(grid, "best_loss", 1, at)
    assert np.allclose(
        np.asarray(along_y.data[0].y, dtype=float), grid.best_loss[:, 5], equal_nan=True
    )


def test_basins_map_colours_each_start_by_its_minimum():
    cfg = SweepConfig(
        OptimizerConfig.create("adam", lr=0.05),
        Axis("start_x", -5, 5, 10),
        Axis("start_y", -5, 5, 10),
        problem=Problem(surface="himmelblau", steps=400),
    )
    result = run_sweep(cfg)
    fig = sweep_plots.basins_figure(result)
    legend = [t.name for t in fig.data if t.showlegend is not False and t.name]
    counts = {
        int(k): int(v) for k, v in zip(*np.unique(result.basin, return_counts=True), strict=True)
    }
    for code, count in counts.items():
        if code >= 0:
            assert any(
                name.startswith(f"minimum {code + 1} ") and f": {count} starts" in name
                for name in legend
            ), legend
        elif code == NOT_CONVERGED:
            assert f"not converged: {count} starts" in legend
    starts = trace(fig, "starts")
    assert list(starts.customdata) == list(range(cfg.cells))
    heat = fig.data[0]
    assert heat.type == "heatmap" and heat.showscale is False


def test_tuning_picks_the_lowest_final_loss_and_draws_every_curve():
    axis = Axis("lr", 1e-4, 1.0, 9, "log")
    tuned = [
        tune_lr(SweepConfig(OptimizerConfig.create(key), axis, problem=Problem(steps=200)))
        for key in ("sgd_momentum", "adam")
    ]
    for t in tuned:
        best = int(
            np.nanargmin(
                np.where(np.isfinite(t.sweep.final_loss[0]), t.sweep.final_loss[0], np.nan)
            )
        )
        assert t.best.kwargs["lr"] == pytest.approx(axis.values[best])
        assert t.best.key == t.optimizer.key
    fig = sweep_plots.tuning_figure([t.sweep for t in tuned], ["SGD + momentum", "Adam"])
    curves = [t for t in fig.data if t.mode == "lines+markers"]
    assert [c.name for c in curves] == ["SGD + momentum", "Adam"]
    assert fig.layout.xaxis.type == "log"
    with pytest.raises(ValueError, match="lr alone"):
        tune_lr(SweepConfig(OptimizerConfig.create("adam"), Axis("eps", 1e-8, 1e-6, 3, "log")))


def _legend(fig) -> list[str]:
    return [t.name for t in fig.data if t.showlegend is not False and t.name]


def _counted(fig) -> dict[str, int]:
    """Legend entries that count starts: name -> count."""
    out = {}
    for name in _legend(fig):
        if name.endswith(" starts"):
            label, count = name.rsplit(": ", 1)
            out[label] = int(count.split()[0])
    return out


def test_the_basin_palette_is_its_own():
    # Orange was "minimum 1" on the basin map and "SGD" everywhere else.
    optimizer_colours = {c.upper() for c in COLORS}
    basin_colours = {
        *sweep_plots.BASIN_COLORS,
        sweep_plots.GLOBAL_COLOR,
        sweep_plots.NOT_CONVERGED_COLOR,
        sweep_plots.OTHER_STATIONARY_COLOR,
    }
    assert not {c.upper() for c in basin_colours} & optimizer_colours
    assert len(set(sweep_plots.BASIN_COLORS)) == len(sweep_plots.BASIN_COLORS)
    assert sweep_plots.DIVERGED_COLOR not in basin_colours


def test_a_map_with_many_minima_groups_them_and_hover_names_each():
    cfg = SweepConfig(
        OptimizerConfig.create("sgd", lr=0.002),
        Axis("start_x", -5, 5, 15),
        Axis("start_y", -5, 5, 15),
        problem=Problem(surface="rastrigin", steps=300),
    )
    result = run_sweep(cfg)
    surface = cfg.resolved_surface
    fig = sweep_plots.basins_figure(result)
    counted = _counted(fig)
    assert sum(counted.values()) == cfg.cells
    assert len(_legend(fig)) <= 6, _legend(fig)  # readable: no entry per local minimum
    local = result.basin >= 1
    assert counted["120 local minima, shaded by f (hover names each)"] == int(local.sum()) > 0
    # The local basins are shaded by their minimum's value, with a colour bar.
    shade = trace(fig, "local minima")
    values = np.array([m.value for m in surface.all_minima])
    z = np.asarray(shade.z, dtype=float)
    assert np.array_equal(z[local], values[result.basin[local]])
    assert np.isnan(z[~local]).all() and shade.colorbar.title.text
    # Hovering a start names the minimum it reached.
    labels = np.asarray(trace(fig, "starts").text, dtype=object).reshape(result.shape)
    iy, ix = map(int, np.argwhere(local)[0])
    k = int(result.basin[iy, ix])
    m = surface.all_minima[k]
    assert labels[iy, ix] == sweep_plots.minimum_label(surface, k)
    assert labels[iy, ix].startswith(f"minimum {k + 1} (local) at (")
    assert f"f = {m.value:.4g}" in labels[iy, ix]


def test_other_stationary_points_have_their_own_entry_and_colour():
    cfg = SweepConfig(
        OptimizerConfig.create("sgd", lr=0.1),
        Axis("start_x", -1.8, 1.8, 6),
        Axis("start_y", 0.0, 0.5, 2),
        problem=Problem(surface="saddle", steps=200),
    )
    result = run_sweep(cfg)
    assert (result.basin[0] == OTHER_STATIONARY).all()
    assert (result.basin[1] == DIVERGED_CELL).all()
    fig = sweep_plots.basins_figure(result)
    counted = _counted(fig)
    assert counted == {
        "other stationary point (a saddle, a maximum or a plateau)": 6,
        "diverged": 6,
    }
    entry = trace(fig, "other stationary point (a saddle, a maximum or a plateau): 6 starts")
    assert entry.marker.color == sweep_plots.OTHER_STATIONARY_COLOR


def test_a_formula_s_basins_are_labelled_estimated():
    cfg = SweepConfig(
        OptimizerConfig.create("sgd", lr=0.05),
        Axis("start_x", -2, 2, 6),
        Axis("start_y", -1, 1, 3),
        problem=Problem(surface="custom", expr="(x**2 - 1)**2 + y**2"),
    )
    fig = sweep_plots.basins_figure(run_sweep(cfg))
    assert set(_counted(fig)) == {
        "estimated minimum 1 (global) at (-1, 0), f = 0",
        "estimated minimum 2 (global) at (1, 0), f = 0",
    }
