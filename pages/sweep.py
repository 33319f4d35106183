"""Sweeps: thousands of 2-D runs at once, fair tuning, basins of attraction."""

import contextlib

import numpy as np
import pandas as pd
import streamlit as st

from optlab import plots, sweep_plots
from optlab.optimizers import OptimizerConfig
from optlab.plots import chart_config
from optlab.surface_run import SurfaceRunConfig, resolve_surface
from optlab.sweep import SweepConfig, tune_lr
from optlab.trajectory import summarize
from optlab.ui import sweep_widgets as W
from optlab.ui.runs import run_cached
from optlab.ui.state import link_params, mirror_url
from optlab.ui.sweeps import sweep_cached

state = st.session_state
W.initialise(state, link_params())
SELECTED = "sw_selected"

with st.sidebar:
    mode = st.radio(
        "Mode",
        list(W.MODES),
        key=W.MODE,
        persist_state="session",
        format_func=W.MODES.__getitem__,
        on_change=W.on_mode_change,
    )
    W.problem_section()
    if mode == W.FAIR:
        W.fair_section()
    else:
        swept = () if mode == W.BASINS else (state["sw_x_name"], state["sw_y_name"])
        W.optimizer_section(swept)
        if mode == W.SWEEP:
            st.header("Axes")
            try:
                optimizer = W.SLOT.read(state, 0)
            except ValueError:
                optimizer = OptimizerConfig.create(state[W.SLOT.choice_key(0)])
            W.axis_section("x", optimizer)
            W.axis_section("y", optimizer)
            labels = sweep_plots.METRIC_LABELS
            st.selectbox(
                "Colour by",
                list(labels),
                key=W.METRIC,
                persist_state="session",
                format_func=labels.__getitem__,
            )
        else:
            st.header("Start points")
            W.basin_section()

st.title(W.MODES[mode])
if warning := state.pop(W.LINK_WARNING, None):
    st.warning(warning)
# The address bar is a share link; settings that do not parse are reported below
# and the URL keeps the last good ones.
with contextlib.suppress(ValueError):
    mirror_url(W.share_params(state))


def replay(run: SurfaceRunConfig, title: str) -> None:
    """Draws one configuration's path, run with the real torch.optim."""
    trajectories, _ = run_cached(run)
    st.markdown(title)
    st.plotly_chart(
        plots.contour_figure(run.resolved_surface, trajectories, height=440),
        config=chart_config("sweep-replay"),
        key="sw_replay",
    )


def selected_cell(event, cfg: SweepConfig) -> int | None:
    """The cell a click picked (the markers carry their cell index), else the last one."""
    points = event.selection.points if event and event.selection else []
    for point in points:
        data = point.get("customdata")
        if isinstance(data, list):
            data = data[0] if data else None
        if isinstance(data, int | float) and 0 <= int(data) < cfg.cells:
            state[SELECTED] = (cfg, int(data))
    kept = state.get(SELECTED)
    return kept[1] if kept and kept[0] == cfg else None


def sweep_mode() -> None:
    try:
        cfg = SweepConfig(
            optimizer=W.SLOT.read(state, 0),
            x=W.read_axis(state, "x"),
            y=W.read_axis(state, "y"),
            **W.problem(state),
        )
    except ValueError as err:
        st.error(f"Cannot run this sweep: {err}")
        return
    st.caption(
        f"{cfg.optimizer.label} on {cfg.resolved_surface.label}: "
        f"{W.steps_note(cfg.steps, cfg.cells)}, every cell one row of one tensor program."
    )
    result = sweep_cached(cfg)
    st.caption(f"Ran in {result.seconds:.2f} s. Click a cell to replay its path below.")
    metric = state[W.METRIC]
    if cfg.y is None:
        fig = sweep_plots.slice_figure(result, metric, 0)
        fig.data[0].customdata = np.arange(cfg.cells)
        fig.update_layout(clickmode="event+select")
        event = st.plotly_chart(
            fig,
            config=chart_config("sweep-line"),
            on_select="rerun",
            selection_mode="points",
            key="sw_line",
        )
        chosen = selected_cell(event, cfg)
    else:
        left, right = st.columns([3, 2], gap="medium")
        with left:
            chosen = state.get(SELECTED)
            chosen = chosen[1] if chosen and chosen[0] == cfg else None
            event = st.plotly_chart(
                sweep_plots.heatmap_figure(result, metric, chosen),
                config=chart_config("sweep-heatmap"),
                on_select="rerun",
                selection_mode="points",
                key="sw_heatmap",
            )
            before = chosen
            chosen = selected_cell(event, cfg)
            if chosen != before:
                st.rerun()  # redraw the heatmap with the new cell marked
        with right:
            at = chosen if chosen is not None else result.best_cell()
            st.plotly_chart(
                sweep_plots.slice_figure(result, metric, 0, at),
                config=chart_config("sweep-sx"),
                key="sw_sx",
            )
            st.plotly_chart(
                sweep_plots.slice_figure(result, metric, 1, at),
                config=chart_config("sweep-sy"),
                key="sw_sy",
            )
    best = result.best_cell()
    diverged = int((result.diverged_at >= 0).sum())
    st.caption(f"{diverged:,} of {cfg.cells:,} configurations diverged (red).")
    cell = chosen if chosen is not None else best
    if cell is None:
        st.info("Every configuration diverged: nothing to replay.")
        return
    values = ", ".join(f"{k} = {v:.4g}" for k, v in cfg.cell_values(cell).items())
    which = "Selected" if chosen is not None else "Best (lowest final loss)"
    replay(cfg.cell_run(cell), f"**{which} cell**: {values}, replayed with torch.optim")


def basins_mode() -> None:
    problem = W.problem(state)
    try:
        bounds = resolve_surface(problem["surface"], (), problem["expr"]).bounds
        x, y = W.basin_axes(state, bounds)
        cfg = SweepConfig(optimizer=W.SLOT.read(state, 0), x=x, y=y, **problem)
    except ValueError as err:
        st.error(f"Cannot map basins: {err}")
        return
    surface = cfg.resolved_surface
    if not surface.all_minima:
        st.warning(
            f"{surface.label} has no known minima to colour by: every start shows as "
            "converged-somewhere-else or diverged. Try Himmelblau or six-hump camel."
        )
    st.caption(
        f"Where does {cfg.optimizer.label} end from each start? "
        f"{W.steps_note(cfg.steps, cfg.cells)}; a start ends in a minimum's basin when its "
        "final point lies within 2% of the bounds' diagonal of it."
    )
    result = sweep_cached(cfg, "Mapping basins")
    event = st.plotly_chart(
        sweep_plots.basins_figure(result),
        config=chart_config("sweep-basins"),
        on_select="rerun",
        selection_mode="points",
        key="sw_basins",
    )
    cell = selected_cell(event, cfg)
    if cell is not None:
        start = cfg.cell_values(cell)
        replay(
            cfg.cell_run(cell),
            f"**Start ({start['start_x']:.3g}, {start['start_y']:.3g})**, "
            "replayed with torch.optim",
        )


def fair_mode() -> None:
    keys = state[W.FAIR_OPTS]
    if not keys:
        st.info("Pick at least one optimizer in the sidebar.")
        return
    try:
        axis = W.lr_axis(state)
        configs = [
            SweepConfig(optimizer=OptimizerConfig.create(k), x=axis, **W.problem(state))
            for k in keys
        ]
    except ValueError as err:
        st.error(f"Cannot compare: {err}")
        return
    st.caption(
        f"Each optimizer gets the same {axis.n} learning rates ({axis.low:g} to {axis.high:g}, "
        f"log-spaced) and the same {configs[0].steps} steps; each is scored by its final loss "
        "(not by distance to a minimum, which favours fast starters), and the best lr of each "
        "is raced below."
    )
    tuned = [
        tune_lr(cfg, lambda c, k=k: sweep_cached(c, f"Tuning {k}"))
        for cfg, k in zip(configs, keys, strict=True)
    ]
    labels = [t.optimizer.label for t in tuned]
    st.plotly_chart(
        sweep_plots.tuning_figure([t.sweep for t in tuned], labels),
        config=chart_config("sweep-tuning"),
        key="sw_tuning",
    )
    winners = [t.best for t in tuned if t.best is not None]
    failed = [t.optimizer.label for t in tuned if t.best is None]
    if failed:
        st.warning(f"Every learning rate diverged for {', '.join(failed)}.")
    if not winners:
        return
    race = SurfaceRunConfig(
        tuple(winners),
        steps=configs[0].steps,
        **{k: v for k, v in W.problem(state).items() if k != "steps"},
    )
    trajectories, _ = run_cached(race)
    surface = race.resolved_surface
    left, right = st.columns([3, 2], gap="medium")
    left.plotly_chart(
        plots.contour_figure(surface, trajectories, height=440),
        config=chart_config("sweep-race"),
        key="sw_race",
    )
    right.plotly_chart(
        plots.loss_figure(surface, trajectories, height=440),
        config=chart_config("sweep-loss"),
        key="sw_loss",
    )
    table = pd.DataFrame([vars(row) for row in summarize(trajectories, surface)])
    st.dataframe(table, hide_index=True, width="stretch")


{W.SWEEP: sweep_mode, W.BASINS: basins_mode, W.FAIR: fair_mode}[mode]()
