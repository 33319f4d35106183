"""The Sweeps page under `streamlit.testing.v1.AppTest`: real script, real sweeps.

Grids are made small through the page's own widgets before anything is
asserted, and every number the page shows is checked against the same
`SweepConfig` run directly (`run_sweep`, `tune_lr`). AppTest cannot click
a plotly chart, and a chart with ``on_select`` refuses values written to
its key, so a cell selection is simulated the way the page keeps one: the
``(config, cell index)`` pair under ``sw_selected``. A real click is
covered by tests/test_browser_sweep.py.
"""

from __future__ import annotations

import base64
import json

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from optlab.numbers import number_text
from optlab.optim.config import OptimizerConfig
from optlab.surface.surfaces import get_surface
from optlab.sweep import race
from optlab.sweep.config import Axis, SweepConfig
from optlab.sweep.run import DIVERGED_CELL, NOT_CONVERGED, best_on_edge, run_sweep, tune_lr
from optlab.ui import engine
from optlab.ui.sweep import settings
from tests.support.resources import APP

TIMEOUT = 120
SELECTED = "sw_selected"


def no_problems(at: AppTest) -> None:
    assert not at.exception, [e.message for e in at.exception]
    assert not at.error, [e.value for e in at.error]


def sweep_page() -> AppTest:
    """A fresh session on the Sweeps page (app.py's navigation opens the playground first)."""
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    at.switch_page("pages/sweep.py").run()
    no_problems(at)
    assert at.title[0].value == "Sweep"
    return at


def small_grid(at: AppTest, nx: int = 12, ny: int = 10, steps: int = 100) -> AppTest:
    """Shrinks the default lr x momentum grid and the steps through the widgets."""
    at.number_input(key="sw_x_n").set_value(nx)
    if ny:
        at.number_input(key="sw_y_n").set_value(ny)
    at.number_input(key="sw_steps").set_value(steps).run()
    no_problems(at)
    return at


def page_config(at: AppTest) -> SweepConfig:
    """The sweep the page runs, built from the widget values as the page builds it."""
    state = at.session_state
    return SweepConfig(
        optimizer=settings.SLOT.read(state, 0),
        x=settings.read_axis(state, "x"),
        y=settings.read_axis(state, "y"),
        problem=settings.problem(state),
    )


def basins_config(at: AppTest) -> SweepConfig:
    """The basin map's sweep, built as the page builds it."""
    state = at.session_state
    problem = settings.problem(state)
    x, y = settings.basin_axes(state, problem.bounds)
    return SweepConfig(optimizer=settings.SLOT.read(state, 0), x=x, y=y, problem=problem)


def charts(at: AppTest) -> dict[str, dict]:
    """The page's plotly figures (as plotly JSON) by their keys, in page order."""
    return {c.key: json.loads(c.proto.spec) for c in at.get("plotly_chart")}


def array(value) -> np.ndarray:
    """A figure's data array: plotly.py writes numpy arrays as base64 typed arrays."""
    if isinstance(value, dict) and "bdata" in value:
        out = np.frombuffer(base64.b64decode(value["bdata"]), dtype=value["dtype"])
        if "shape" in value:
            out = out.reshape([int(n) for n in str(value["shape"]).split(",")])
        return out
    return np.asarray(value, dtype=float)


def trace(fig: dict, name: str) -> dict:
    (found,) = [t for t in fig["data"] if t.get("name") == name]
    return found


def path_trace(fig: dict) -> dict:
    """The replayed path on a contour chart: its only trace drawn as a line (with a
    dot per step on a short path)."""
    (found,) = [t for t in fig["data"] if t.get("mode", "").startswith("lines")]
    return found


def replay_title(at: AppTest) -> str:
    (title,) = [m.value for m in at.markdown if "replayed with torch.optim" in m.value]
    return title


def cell_text(cfg: SweepConfig, index: int) -> str:
    return ", ".join(f"{k} = {v:.4g}" for k, v in cfg.cell_values(index).items())


def captions(at: AppTest) -> list[str]:
    return [c.value for c in at.caption]


def check_replay(at: AppTest, cfg: SweepConfig, result, index: int) -> None:
    """The replay chart draws cell ``index`` run with torch.optim, ending where the sweep's did."""
    fig = charts(at)["sw_replay"]
    assert fig["data"][0]["type"] == "contour"
    path = path_trace(fig)
    assert path["name"] == cfg.cell_run(index).optimizers[0].label
    iy, ix = divmod(index, cfg.x.n)
    end = (array(path["x"])[-1], array(path["y"])[-1])
    assert np.allclose(end, result.final[iy, ix], rtol=0, atol=1e-9)


def test_default_sweep_shows_heatmap_slices_and_replays_the_best_cell():
    at = sweep_page()
    cfg = page_config(at)
    assert (cfg.x.name, cfg.y.name, cfg.optimizer.key, cfg.problem.surface) == (
        "lr",
        "momentum",
        "sgd",
        "rosenbrock",
    )
    assert (cfg.x.n, cfg.y.n, cfg.problem.steps) == (50, 50, 300)  # about 0.1 s of sweeping
    figs = charts(at)
    assert list(figs) == ["sw_heatmap", "sw_sx", "sw_sy", "sw_replay"]
    assert any("2,500 configurations × 300 steps" in c for c in captions(at))
    result = run_sweep(cfg)
    diverged = int((result.diverged_at >= 0).sum())
    assert 0 < diverged < cfg.cells  # the default grid shows both outcomes
    assert f"{diverged:,} of 2,500 configurations diverged (red)." in captions(at)

    best = result.best_cell()
    assert replay_title(at) == (
        f"**Best (lowest final loss) cell**: {cell_text(cfg, best)}, replayed with torch.optim"
    )
    check_replay(at, cfg, result, best)
    # Every cell centre is clickable, carrying its index; the star sits on the best cell.
    heat = figs["sw_heatmap"]
    cells = trace(heat, "cells")
    assert array(cells["customdata"]).tolist() == list(range(cfg.cells))
    star = trace(heat, "best final loss")
    values = cfg.cell_values(best)
    assert array(star["x"]).tolist() == [values["lr"]]
    assert array(star["y"]).tolist() == [values["momentum"]]
    assert "replayed" not in [t.get("name") for t in heat["data"]]
    # The slices go through the best cell.
    assert figs["sw_sx"]["layout"]["title"]["text"].endswith(
        f"at momentum = {values['momentum']:.4g}"
    )
    assert figs["sw_sy"]["layout"]["title"]["text"].endswith(f"at lr = {values['lr']:.4g}")


def test_a_selected_cell_is_replayed_and_marked_until_the_grid_changes():
    at = small_grid(sweep_page())
    cfg = page_config(at)
    result = run_sweep(cfg)
    best = result.best_cell()
    assert replay_title(at).startswith("**Best (lowest final loss) cell**")
    index = 3 * cfg.x.n + 2  # lr and momentum near the grid's low corner
    assert index != best and np.isfinite(result.final_loss.ravel()[index])

    at.session_state[SELECTED] = (cfg, index)  # what a click on that cell leaves behind
    at.run()
    no_problems(at)
    assert replay_title(at) == (
        f"**Selected cell**: {cell_text(cfg, index)}, replayed with torch.optim"
    )
    check_replay(at, cfg, result, index)
    figs = charts(at)
    values = cfg.cell_values(index)
    marked = trace(figs["sw_heatmap"], "replayed")
    assert (array(marked["x"]).tolist(), array(marked["y"]).tolist()) == (
        [values["lr"]],
        [values["momentum"]],
    )
    assert figs["sw_sx"]["layout"]["title"]["text"].endswith(
        f"at momentum = {values['momentum']:.4g}"
    )
    assert figs["sw_sy"]["layout"]["title"]["text"].endswith(f"at lr = {values['lr']:.4g}")

    # Another grid is another sweep: the old selection no longer applies.
    at.number_input(key="sw_steps").set_value(120).run()
    no_problems(at)
    new_cfg = page_config(at)
    assert replay_title(at) == (
        f"**Best (lowest final loss) cell**: {cell_text(new_cfg, run_sweep(new_cfg).best_cell())}"
        ", replayed with torch.optim"
    )
    assert "replayed" not in [t.get("name") for t in charts(at)["sw_heatmap"]["data"]]


def test_one_axis_sweep_draws_a_clickable_line_and_still_replays():
    at = sweep_page()
    at.selectbox(key="sw_y_name").set_value(settings.NONE)
    small_grid(at, nx=20, ny=0)
    cfg = page_config(at)
    assert cfg.y is None and cfg.cells == 20
    figs = charts(at)
    assert list(figs) == ["sw_line", "sw_replay"]
    line = figs["sw_line"]
    assert array(line["data"][0]["customdata"]).tolist() == list(range(20))
    assert np.allclose(array(line["data"][0]["x"]), cfg.x.values)
    assert any("20 configurations × 100 steps" in c for c in captions(at))
    result = run_sweep(cfg)
    best = result.best_cell()
    assert replay_title(at) == (
        f"**Best (lowest final loss) cell**: lr = {cfg.x.values[best]:.4g}, "
        "replayed with torch.optim"
    )
    check_replay(at, cfg, result, best)

    index = 0 if best != 0 else 1
    at.session_state[SELECTED] = (cfg, index)
    at.run()
    no_problems(at)
    assert replay_title(at) == (
        f"**Selected cell**: lr = {cfg.x.values[index]:.4g}, replayed with torch.optim"
    )


def warnings(at: AppTest) -> list[str]:
    return [w.value for w in at.warning]


def test_a_best_cell_on_the_edge_of_the_range_is_warned_about():
    at = small_grid(sweep_page())
    cfg = page_config(at)
    assert best_on_edge(run_sweep(cfg)) == ()  # the default grid holds its optimum
    assert warnings(at) == []
    # Cut the lr range below the optimum: the best cell moves to its high end.
    at.number_input(key="sw_x_high").set_value(1e-3).run()
    no_problems(at)
    cfg = page_config(at)
    (edge,) = best_on_edge(run_sweep(cfg))
    assert (edge.axis, edge.end, edge.value) == ("lr", "high", 1e-3)
    assert warnings(at) == [
        "The best cell is on the edge of the lr range, at its high end (lr = 0.001): "
        "widen the range above 0.001."
    ]


@pytest.mark.parametrize(
    ("low", "high", "message"),
    [
        (-1.0, 1e-2, "lr: a log axis needs positive bounds"),
        (1e-3, 1e-3, "lr: low and high must differ"),
    ],
    ids=["negative-bound-on-log-axis", "empty-range"],
)
def test_a_bad_axis_range_is_reported_not_raised(low, high, message):
    at = small_grid(sweep_page())
    at.number_input(key="sw_x_low").set_value(low)
    at.number_input(key="sw_x_high").set_value(high).run()
    assert not at.exception, [e.message for e in at.exception]
    assert [e.value for e in at.error] == [f"Cannot run this sweep: {message}"]
    assert charts(at) == {}  # nothing was swept or replayed
    # Fixing the range brings the sweep back.
    at.number_input(key="sw_x_low").set_value(1e-5)
    at.number_input(key="sw_x_high").set_value(1e-2).run()
    no_problems(at)
    assert "sw_heatmap" in charts(at)


def test_a_reversed_range_sweeps_the_same_cells_from_the_other_end():
    at = small_grid(sweep_page())
    forward = page_config(at)
    at.number_input(key="sw_x_low").set_value(forward.x.high)
    at.number_input(key="sw_x_high").set_value(forward.x.low).run()
    no_problems(at)
    backward = page_config(at)
    assert np.allclose(backward.x.values, forward.x.values[::-1])
    best = run_sweep(forward).best_cell()
    assert replay_title(at) == (
        f"**Best (lowest final loss) cell**: {cell_text(forward, best)}, replayed with torch.optim"
    )


def test_switching_to_adam_drops_the_momentum_axis():
    at = small_grid(sweep_page(), nx=15)
    at.selectbox(key="sw_slot0_choice").set_value("adam").run()
    no_problems(at)
    state = at.session_state
    # lr is an Adam knob and stays as it was; momentum is not, so y becomes "none".
    assert (state["sw_x_name"], state["sw_y_name"]) == ("lr", settings.NONE)
    assert (state["sw_x_low"], state["sw_x_high"], state["sw_x_n"]) == (1e-5, 1e-2, 15)
    cfg = page_config(at)
    assert cfg.optimizer == OptimizerConfig.create("adam") and cfg.y is None
    assert list(charts(at)) == ["sw_line", "sw_replay"]
    assert at.selectbox(key="sw_y_name").options[0] == "none (a 1-D sweep)"
    best = run_sweep(cfg).best_cell()
    assert replay_title(at) == (
        f"**Best (lowest final loss) cell**: {cell_text(cfg, best)}, replayed with torch.optim"
    )


def test_switching_optimizer_never_sweeps_one_knob_on_both_axes():
    at = small_grid(sweep_page())
    at.selectbox(key="sw_x_name").set_value("momentum").run()
    at.selectbox(key="sw_y_name").set_value("lr").run()
    no_problems(at)  # momentum x lr on SGD sweeps fine
    at.selectbox(key="sw_slot0_choice").set_value("adam").run()
    assert not at.exception, [e.message for e in at.exception]
    state = at.session_state
    assert state["sw_x_name"] != state["sw_y_name"], (state["sw_x_name"], state["sw_y_name"])
    no_problems(at)


def test_a_grid_over_the_cap_is_refused_with_the_cap_message():
    at = sweep_page()
    at.number_input(key="sw_x_n").set_value(200)
    at.number_input(key="sw_y_n").set_value(200)
    at.number_input(key="sw_steps").set_value(600).run()
    assert not at.exception, [e.message for e in at.exception]
    assert [e.value for e in at.error] == [
        "Cannot run this sweep: steps: 40,000 cells x 600 steps is over the 20,000,000 cap; "
        "use fewer steps or a coarser grid"
    ]
    assert charts(at) == {}


def test_fair_comparison_races_each_optimizers_best_learning_rate():
    at = sweep_page()
    at.radio(key="sw_mode").set_value(settings.FAIR)
    at.number_input(key="sw_steps").set_value(100).run()
    no_problems(at)
    assert at.title[0].value == "Fair comparison"
    keys = ["sgd_momentum", "adam"]
    at.multiselect(key="sw_fair_opts").set_value(keys)
    at.number_input(key="sw_fair_n").set_value(8).run()
    no_problems(at)
    state = at.session_state
    axis = Axis("lr", 1e-5, 1.0, 8, "log")
    assert settings.lr_axis(state) == axis
    assert any("same 8 learning rates (1e-05 to 1, log-spaced)" in c for c in captions(at))
    tuned = [
        tune_lr(
            SweepConfig(
                optimizer=OptimizerConfig.create(k), x=axis, problem=settings.problem(state)
            )
        )
        for k in keys
    ]
    assert all(t.best is not None for t in tuned)
    # An optimizer whose best lr is an end of the shared grid is named in a warning.
    expected = [
        f"{t.optimizer.label}: {edge.message}." for t in tuned for edge in best_on_edge(t.sweep)
    ]
    assert expected and warnings(at) == expected  # Adam's best lr here is the grid's top, 1
    figs = charts(at)
    assert list(figs) == ["sw_tuning", "sw_race", "sw_loss"]

    curves = [t for t in figs["sw_tuning"]["data"] if t["mode"] == "lines+markers"]
    assert [c["name"] for c in curves] == [t.optimizer.label for t in tuned]
    for curve, t in zip(curves, tuned, strict=True):
        assert np.allclose(array(curve["x"]), axis.values)
        assert np.allclose(array(curve["y"]), t.sweep.final_loss[0], equal_nan=True)

    race_chart = figs["sw_race"]
    assert race_chart["data"][0]["type"] == "contour"
    winners = [t.best.label for t in tuned]
    assert [t["name"] for t in race_chart["data"] if t.get("mode") == "lines+markers"] == winners
    assert [t["name"] for t in figs["sw_loss"]["data"] if t.get("mode") == "lines"] == winners

    # The race table: readable column names, every number as number_text writes it.
    table = at.table[0].value
    assert list(table.columns) == list(race.COLUMNS)
    rows = table.to_dict("records")
    assert [r["optimizer"] for r in rows] == [t.optimizer.label for t in tuned]
    for row, t in zip(rows, tuned, strict=True):
        best = t.sweep.best_cell()
        assert t.best.kwargs["lr"] == pytest.approx(axis.values[best], rel=1e-12)
        assert row["tuned lr"] == number_text(float(axis.values[best]))
        # The race is a plain torch.optim run; it ends where the sweep's cell ended.
        assert row["final loss"] == number_text(float(t.sweep.final_loss[0, best]))
        reached = int(t.sweep.steps_to_target[0, best])
        assert row[race.STEPS] == (number_text(reached) if reached >= 0 else "not reached")
        assert row["status"] == "done"
        assert all(isinstance(v, str) and v not in ("None", "nan") for v in row.values()), row


def test_basins_mode_moves_to_himmelblau_and_maps_its_minima():
    at = small_grid(sweep_page(), nx=10, ny=10, steps=300)
    at.selectbox(key="sw_slot0_choice").set_value("adam").run()
    no_problems(at)
    assert at.session_state["sw_surface"] == "rosenbrock"

    at.session_state["sw_basin_n"] = 12  # its widget is only drawn in basins mode
    at.radio(key="sw_mode").set_value(settings.BASINS).run()
    no_problems(at)
    # lr is swept in sweep mode; in basins mode it is a fixed value of the slot.
    at.number_input(key="sw_slot0_lr").set_value(0.05).run()
    no_problems(at)
    assert at.title[0].value == "Basins map"
    himmelblau = get_surface("himmelblau")
    assert at.selectbox(key="sw_surface").value == "himmelblau"
    assert (at.session_state["sw_start_x"], at.session_state["sw_start_y"]) == himmelblau.start
    assert any("144 configurations × 300 steps" in c for c in captions(at))
    figs = charts(at)
    assert list(figs) == ["sw_basins"]  # no replay until a start is picked

    cfg = basins_config(at)
    assert cfg.optimizer == OptimizerConfig.create("adam", lr=0.05) and cfg.cells == 144
    result = run_sweep(cfg)
    fig = figs["sw_basins"]
    legend = [t["name"] for t in fig["data"] if t.get("name", "").endswith(" starts")]
    minima = [name for name in legend if name.startswith("minimum ")]
    assert len(minima) >= 3, legend
    expected = {
        k: int((result.basin == k).sum())
        for k in (*range(len(himmelblau.all_minima)), NOT_CONVERGED, DIVERGED_CELL)
    }
    counts = [int(name.rsplit(": ", 1)[1].split()[0]) for name in legend]
    assert counts == [n for n in expected.values() if n]
    assert sum(counts) == 144
    starts = trace(fig, "starts")
    assert array(starts["customdata"]).tolist() == list(range(144))

    index = 5 * 12 + 7
    at.session_state[SELECTED] = (cfg, index)
    at.run()
    no_problems(at)
    start = cfg.cell_values(index)
    (title,) = [m.value for m in at.markdown if m.value.startswith("**Start (")]
    assert title == (
        f"**Start ({start['start_x']:.3g}, {start['start_y']:.3g})**, replayed with torch.optim"
    )
    check_replay(at, cfg, result, index)


def test_basins_on_a_formula_without_a_minimum_warns():
    at = sweep_page()
    at.selectbox(key="sw_surface").set_value("custom").run()
    at.session_state["sw_basin_n"] = 8
    at.radio(key="sw_mode").set_value(settings.BASINS).run()
    no_problems(at)  # the default formula's minima are estimated, and coloured
    assert at.session_state["sw_surface"] == "custom"  # a formula is left alone
    at.text_input(key=settings.EXPR).set_value("x + y").run()
    assert not at.exception
    assert len(at.warning) == 1 and "no minimum inside its bounds" in at.warning[0].value
    assert list(charts(at)) == ["sw_basins"]


@pytest.mark.parametrize("other", [settings.BASINS, settings.FAIR])
def test_coming_back_to_sweep_mode_keeps_working(other):
    at = small_grid(sweep_page())
    at.radio(key="sw_mode").set_value(other).run()
    no_problems(at)
    at.radio(key="sw_mode").set_value(settings.SWEEP).run()
    no_problems(at)
    assert "sw_heatmap" in charts(at)


def test_changing_the_optimizer_in_basins_mode():
    at = small_grid(sweep_page())
    at.session_state["sw_basin_n"] = 8
    at.radio(key="sw_mode").set_value(settings.BASINS).run()
    no_problems(at)
    at.selectbox(key="sw_slot0_choice").set_value("adam").run()
    no_problems(at)
    assert basins_config(at).optimizer.key == "adam"


def test_coming_back_from_another_page_keeps_working():
    at = small_grid(sweep_page())
    at.switch_page("pages/update_rules.py").run()
    no_problems(at)
    at.switch_page("pages/sweep.py").run()
    no_problems(at)
    assert "sw_heatmap" in charts(at)


def test_muon_is_swept_and_its_best_cell_replays_with_torch_optim():
    """Muon's lr × momentum grid on the page; the best cell's replay (torch.optim.Muon
    on a 1 × 2 matrix) ends where the batched sweep's row did."""
    at = sweep_page()
    at.selectbox(key="sw_slot0_choice").set_value("muon").run()
    small_grid(at, nx=8, ny=6, steps=60)
    cfg = page_config(at)
    assert (cfg.optimizer.key, cfg.x.name, cfg.y.name) == ("muon", "lr", "momentum")
    result = run_sweep(cfg)
    check_replay(at, cfg, result, result.best_cell())
    notes = " ".join(e.label for e in at.expander) + " ".join(m.value for m in at.markdown)
    assert "Not sweepable" in notes and "**L-BFGS**: its step(closure)" in notes
    assert "**Muon**" not in notes


class _CountingSlots(engine.EngineTurns):
    """The engine's slots, counting the turns taken (acquisitions that got a slot)."""

    def __init__(self, value: int) -> None:
        super().__init__(value)
        self.turns = 0

    def acquire(self, blocking: bool = True) -> bool:
        got = super().acquire(blocking)
        self.turns += got
        return got


def _counted_sweep(monkeypatch, nx: int, ny: int, steps: int):
    """The sweep page on a new grid, its engine slots counted: the slots, the page,
    its config, the sweep's result computed here, and the jobs the new grid gave
    the engine process (0 without one)."""
    slots = _CountingSlots(2)
    monkeypatch.setattr(engine, "run_slots", lambda: slots)
    at = sweep_page()
    slots.turns = 0
    process = engine.engine_process()
    submitted = process.submitted if process is not None else 0
    at = small_grid(at, nx=nx, ny=ny, steps=steps)
    cfg = page_config(at)
    jobs = process.submitted - submitted if process is not None else 0
    return slots, at, cfg, run_sweep(cfg), jobs


@pytest.mark.usefixtures("in_page_threads")
def test_a_new_sweep_and_its_best_cells_replay_take_one_turn_of_the_engine(monkeypatch):
    """Under load every turn means queueing behind every other page's run: a new sweep
    computes its best cell's replay in the same turn; a picked cell's replay takes one
    (where pages compute in their own threads; the engine process takes no slots)."""
    # A grid and length no other test asks for: nothing cached anywhere.
    slots, at, cfg, result, _ = _counted_sweep(monkeypatch, nx=7, ny=6, steps=37)
    assert slots.turns == 1
    check_replay(at, cfg, result, result.best_cell())
    # Another cell: its replay is a new run, one turn.
    other = next(c for c in range(cfg.cells) if c != result.best_cell())
    at.session_state[SELECTED] = (cfg, other)
    at.run()
    no_problems(at)
    assert slots.turns == 2
    check_replay(at, cfg, result, other)
    assert slots.free() == 2  # every turn given back


def test_with_the_engine_process_a_sweep_and_its_replays_take_no_slot(
    monkeypatch, on_engine_process
):
    """The engine process shares itself out between its jobs: the page's sweep and
    replay go there, as one job, and give the same cells and paths, without a slot of
    this process."""
    from optlab.ui.sweep import cache as sweeps

    slots, at, cfg, result, jobs = _counted_sweep(monkeypatch, nx=6, ny=7, steps=41)
    assert slots.turns == 0
    assert jobs == 1  # the sweep with its replay
    np.testing.assert_array_equal(sweeps.sweep_cache().get(cfg).final_loss, result.final_loss)
    check_replay(at, cfg, result, result.best_cell())
