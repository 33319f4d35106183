"""The sweeps page's three modes: what each draws in the page's main area.

Each mode reads its settings from the widgets (`optlab.ui.sweep.session`),
runs its sweeps through the shared cache, draws them, and replays a chosen
cell with the real torch.optim.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from optlab.optim.config import OptimizerConfig
from optlab.surface import curves, plots
from optlab.surface.run import SurfaceRunConfig
from optlab.sweep import plots as sweep_plots
from optlab.sweep.config import SweepConfig
from optlab.sweep.race import COLUMNS, NUMBERS, race_rows
from optlab.sweep.run import Edge, best_on_edge, tune_lr
from optlab.ui.engine import computing
from optlab.ui.playground.cache import run_cached
from optlab.ui.sweep import settings
from optlab.ui.sweep.cache import sweep_cached
from optlab.ui.view import PRESENTER_SQUARE_PX, columns, show_chart

#: The selected cell, with the sweep it belongs to.
SELECTED = "sw_selected"


def _replay(run: SurfaceRunConfig, title: str) -> None:
    """Draws one configuration's path, run with the real torch.optim."""
    trajectories, _ = run_cached(run)
    st.markdown(title)
    show_chart(
        plots.contour_figure(run.resolved_surface, trajectories, height=440),
        "sweep-replay",
        key="sw_replay",
        presenter_height=PRESENTER_SQUARE_PX,
    )


def _sentence(text: str) -> str:
    """``text`` as a sentence of a warning: capitalised, with a full stop."""
    return text[:1].upper() + text[1:] + "."


def _edge_warning(edges: tuple[Edge, ...], who: str = "") -> None:
    """Says when the best cell lies on an end of a swept range (the optimum may lie beyond)."""
    if edges:
        st.warning(" ".join(_sentence(f"{who}{edge.message}") for edge in edges))


def _kept_cell(cfg: SweepConfig) -> int | None:
    """The cell last picked in this sweep, if any."""
    kept = st.session_state.get(SELECTED)
    return kept[1] if kept and kept[0] == cfg else None


def _selected_cell(event, cfg: SweepConfig) -> int | None:
    """The cell a click picked (the markers carry their cell index), else the last one."""
    points = event.selection.points if event and event.selection else []
    for point in points:
        data = point.get("customdata")
        if isinstance(data, list):
            data = data[0] if data else None
        if isinstance(data, int | float) and 0 <= int(data) < cfg.cells:
            st.session_state[SELECTED] = (cfg, int(data))
    return _kept_cell(cfg)


def sweep_mode() -> None:
    """One optimizer over one or two axes: the heatmap (or line), slices, a replay."""
    try:
        cfg = SweepConfig(
            optimizer=settings.SLOT.read(st.session_state, 0),
            x=settings.read_axis(st.session_state, "x"),
            y=settings.read_axis(st.session_state, "y"),
            problem=settings.problem(st.session_state),
        )
    except ValueError as err:
        st.error(f"Cannot run this sweep: {err}")
        return
    st.caption(
        f"{cfg.optimizer.label} on {cfg.resolved_surface.label}: "
        f"{settings.steps_note(cfg.problem.steps, cfg.cells)}, "
        "every cell one row of one tensor program."
    )
    with computing():
        # The replay below in the same turn of the engine, or the same job of the
        # engine process: under load, a second one would mean queueing again
        # behind every other page's run.
        kept = _kept_cell(cfg)
        result = sweep_cached(cfg, replay=True, cell=kept)
        if (cell := result.cell_or_best(kept)) is not None:
            run_cached(cfg.cell_run(cell))
    st.caption(f"Ran in {result.seconds:.2f} s. Click a cell to replay its path below.")
    _edge_warning(best_on_edge(result))
    metric = st.session_state[settings.METRIC]
    if cfg.y is None:
        event = show_chart(
            sweep_plots.slice_figure(result, metric, 0, clickable=True),
            "sweep-line",
            on_select="rerun",
            selection_mode="points",
            key="sw_line",
        )
        chosen = _selected_cell(event, cfg)
    else:
        # The heatmap takes the page's width: at 1024 px beside the sidebar a
        # 50 x 50 grid then has cells about 9 px wide, big enough to aim at.
        chosen = _kept_cell(cfg)
        event = show_chart(
            sweep_plots.heatmap_figure(result, metric, chosen),
            "sweep-heatmap",
            on_select="rerun",
            selection_mode="points",
            key="sw_heatmap",
            presenter_height=PRESENTER_SQUARE_PX,
        )
        before = chosen
        chosen = _selected_cell(event, cfg)
        if chosen != before:
            st.rerun()  # redraw the heatmap with the new cell marked
        at = result.cell_or_best(chosen)
        left, right = columns([1, 1], gap="medium")
        with left:
            show_chart(
                sweep_plots.slice_figure(result, metric, 0, at),
                "sweep-sx",
                key="sw_sx",
            )
        with right:
            show_chart(
                sweep_plots.slice_figure(result, metric, 1, at),
                "sweep-sy",
                key="sw_sy",
            )
    diverged = int((result.diverged_at >= 0).sum())
    st.caption(f"{diverged:,} of {cfg.cells:,} configurations diverged (red).")
    cell = result.cell_or_best(chosen)
    if cell is None:
        st.info("Every configuration diverged: nothing to replay.")
        return
    values = ", ".join(f"{k} = {v:.4g}" for k, v in cfg.cell_values(cell).items())
    which = "Selected" if chosen is not None else "Best (lowest final loss)"
    _replay(cfg.cell_run(cell), f"**{which} cell**: {values}, replayed with torch.optim")


def basins_mode() -> None:
    """A grid of starts, each coloured by the minimum it ends in; a click replays one."""
    try:
        problem = settings.problem(st.session_state)
        x, y = settings.basin_axes(st.session_state, problem.bounds)
        cfg = SweepConfig(
            optimizer=settings.SLOT.read(st.session_state, 0), x=x, y=y, problem=problem
        )
    except ValueError as err:
        st.error(f"Cannot map basins: {err}")
        return
    surface = cfg.resolved_surface
    if not surface.all_minima:
        st.warning(
            f"{surface.label} has no minimum inside its bounds to colour by: every start "
            "shows as another stationary point, not converged, or diverged. Try "
            "Himmelblau or six-hump camel."
        )
    st.caption(
        f"Where does {cfg.optimizer.label} end from each start? "
        f"{settings.steps_note(cfg.problem.steps, cfg.cells)}; a start ends in a minimum's "
        "basin when its final point lies within 2% of the bounds' diagonal of it."
    )
    result = sweep_cached(cfg, "Mapping basins")
    event = show_chart(
        sweep_plots.basins_figure(result),
        "sweep-basins",
        on_select="rerun",
        selection_mode="points",
        key="sw_basins",
        presenter_height=PRESENTER_SQUARE_PX,
    )
    cell = _selected_cell(event, cfg)
    if cell is not None:
        start = cfg.cell_values(cell)
        _replay(
            cfg.cell_run(cell),
            f"**Start ({start['start_x']:.3g}, {start['start_y']:.3g})**, "
            "replayed with torch.optim",
        )


def fair_mode() -> None:
    """Every chosen optimizer on the same lr grid, then the tuned ones raced."""
    keys = st.session_state[settings.FAIR_OPTS]
    if not keys:
        st.info("Pick at least one optimizer in the sidebar.")
        return
    try:
        axis, problem = settings.lr_axis(st.session_state), settings.problem(st.session_state)
        configs = [
            SweepConfig(optimizer=OptimizerConfig.create(k), x=axis, problem=problem) for k in keys
        ]
    except ValueError as err:
        st.error(f"Cannot compare: {err}")
        return
    st.caption(
        f"Each optimizer gets the same {axis.n} learning rates ({axis.low:g} to {axis.high:g}, "
        f"log-spaced) and the same {problem.steps} steps; each is scored by its final loss "
        "(not by distance to a minimum, which favours fast starters), and the best lr of each "
        "is raced below."
    )
    tuned = [
        tune_lr(cfg, lambda c, k=k: sweep_cached(c, f"Tuning {k}"))
        for cfg, k in zip(configs, keys, strict=True)
    ]
    labels = [t.optimizer.label for t in tuned]
    show_chart(
        sweep_plots.tuning_figure([t.sweep for t in tuned], labels),
        "sweep-tuning",
        key="sw_tuning",
    )
    for t in tuned:
        _edge_warning(best_on_edge(t.sweep), f"{t.optimizer.label}: ")
    raced = [t for t in tuned if t.best is not None]
    failed = [t.optimizer.label for t in tuned if t.best is None]
    if failed:
        st.warning(f"Every learning rate diverged for {', '.join(failed)}.")
    if not raced:
        return
    race = SurfaceRunConfig(tuple(t.best for t in raced if t.best is not None), problem)
    trajectories, _ = run_cached(race)
    surface = race.resolved_surface
    left, right = columns([3, 2], gap="medium")
    with left:
        show_chart(
            plots.contour_figure(surface, trajectories, height=440),
            "sweep-race",
            key="sw_race",
            presenter_height=PRESENTER_SQUARE_PX,
        )
    with right:
        show_chart(
            curves.loss_figure(surface, trajectories, height=440),
            "sweep-loss",
            key="sw_loss",
        )
    # A static table: every cell is shown in full, wrapping to the page's width,
    # except that a number is never split at the minus of its exponent (the
    # browser breaks "1.591e-05" after the "-"). pandas classes each cell by its
    # column; Streamlit draws the text in a paragraph inside it.
    table = pd.DataFrame(race_rows(raced, trajectories, surface), columns=list(COLUMNS))
    whole = [
        {"selector": f"td.col{COLUMNS.index(name)} p", "props": [("white-space", "nowrap")]}
        for name in NUMBERS
    ]
    st.table(table.style.set_table_styles(whole), hide_index=True)


MODES = {settings.SWEEP: sweep_mode, settings.BASINS: basins_mode, settings.FAIR: fair_mode}
