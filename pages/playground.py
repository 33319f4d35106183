"""Surface Playground: compare torch.optim optimizers on a 2-D loss surface."""

from urllib.parse import urlencode

import pandas as pd
import streamlit as st

from optlab import plots
from optlab.export import figures_html, run_to_csv, run_to_json
from optlab.plots import chart_config
from optlab.script_export import surface_script
from optlab.surfaces import CUSTOM
from optlab.textform import config_to_params
from optlab.trajectory import REACH_TOL, summarize
from optlab.ui import state
from optlab.ui.inspector_panel import inspector_section
from optlab.ui.runs import run_cached
from optlab.ui.widgets import sidebar_settings

state.initialise()
st.title("Surface Playground")
if warning := st.session_state.pop(state.SHARE_WARNING, None):
    st.warning(warning)

with st.sidebar:
    sidebar_settings()

try:
    cfg = state.config_from_state(st.session_state)
except ValueError as err:
    st.error(f"Cannot run this comparison: {err}")
    st.stop()
state.publish(cfg)
surface = cfg.resolved_surface

if cfg.surface == CUSTOM:
    st.markdown(f"`f(x, y) = {cfg.expr}`")
else:
    st.latex(f"f(x, y) = {surface.tex}")
st.caption(
    f"{len(cfg.optimizers)} optimizers, {cfg.steps} steps from the same start "
    f"({cfg.start[0]:g}, {cfg.start[1]:g}), noise σ = {cfg.noise:g}. "
    "The address bar is a share link for this exact comparison."
)

main, side = st.columns([3, 2], gap="medium")
with main:
    paths_tab, replay_tab, surface_tab = st.tabs(["Paths", "Replay", "3-D view"])
    with paths_tab:
        paths_chart = st.empty()
progress = st.empty()


def show_progress(trajectories, step):
    progress.progress(step / cfg.steps, text=f"Running… step {step} of {cfg.steps}")
    paths_chart.plotly_chart(
        plots.contour_figure(surface, trajectories), config=chart_config(f"{cfg.surface}-paths")
    )


try:
    trajectories, finished = run_cached(cfg, on_progress=show_progress)
except Exception as err:  # an optimizer that raises (a plugin, say) must not crash the page
    progress.empty()
    text = str(err).strip().splitlines()
    st.error(f"The run failed: {type(err).__name__}: {text[0][:300] if text else ''}")
    st.stop()
progress.empty()
if not finished:
    st.warning("This run hit the time limit and stopped early; try fewer steps.")

paths_chart.plotly_chart(
    plots.contour_figure(surface, trajectories),
    config=chart_config(f"{cfg.surface}-paths"),
    key="contour",
)
with replay_tab:
    st.plotly_chart(
        plots.replay_figure(surface, trajectories),
        config=chart_config(f"{cfg.surface}-replay"),
        key="replay",
    )
with surface_tab:
    st.plotly_chart(
        plots.surface3d_figure(surface, trajectories),
        config=chart_config(f"{cfg.surface}-3d"),
        key="surface3d",
    )

with side:
    x_axis = st.radio(
        "Curves against",
        ["step", "evals"],
        format_func={"step": "steps", "evals": "function evaluations (fair for L-BFGS)"}.get,
        horizontal=True,
        key="x_axis",
        persist_state="session",
    )
    st.plotly_chart(
        plots.loss_figure(surface, trajectories, x=x_axis, height=300),
        config=chart_config(f"{cfg.surface}-loss"),
        key="loss",
    )
    if cfg.plans:
        st.plotly_chart(
            plots.lr_figure(trajectories, x=x_axis),
            config=chart_config(f"{cfg.surface}-lr"),
            key="lr_curves",
        )
    distance = plots.distance_figure(surface, trajectories, x=x_axis, height=300)
    if distance is None:
        st.info("This surface has no known minimum, so there is no distance to plot.")
    else:
        st.plotly_chart(distance, config=chart_config(f"{cfg.surface}-distance"), key="distance")

st.subheader("Summary")
table = pd.DataFrame([vars(row) for row in summarize(trajectories, surface)])
st.dataframe(
    table,
    hide_index=True,
    column_config={
        "optimizer": "optimizer",
        "final_x": st.column_config.NumberColumn("x", format="%.5g"),
        "final_y": st.column_config.NumberColumn("y", format="%.5g"),
        "final_loss": st.column_config.NumberColumn("final loss", format="%.4g"),
        "best_loss": st.column_config.NumberColumn("best loss", format="%.4g"),
        "steps_to_min": st.column_config.NumberColumn(f"steps to f* + {REACH_TOL:g}"),
        "evals": st.column_config.NumberColumn("function evals"),
        "status": "status",
    },
)
c1, c2, c3, c4, _ = st.columns([1, 1, 1.4, 1.3, 0.3])
c1.download_button(
    "Download CSV", run_to_csv(trajectories), file_name="optlab-run.csv", mime="text/csv"
)
c2.download_button(
    "Download JSON",
    run_to_json(cfg, trajectories),
    file_name="optlab-run.json",
    mime="application/json",
)


def interactive_html() -> str:
    figures = [
        ("Paths", plots.contour_figure(surface, trajectories)),
        ("Replay (press play)", plots.replay_figure(surface, trajectories)),
        ("3-D view", plots.surface3d_figure(surface, trajectories)),
        ("Loss", plots.loss_figure(surface, trajectories)),
    ]
    if cfg.plans:
        figures.append(("Learning rate", plots.lr_figure(trajectories)))
    link = "?" + urlencode(config_to_params(cfg), doseq=True)
    return figures_html(f"OptLab: {surface.label}", figures, f"Share-link query: {link}")


c3.download_button(
    "Download interactive HTML",
    data=interactive_html,
    file_name=f"optlab-{cfg.surface}.html",
    mime="text/html",
    on_click="ignore",
    help="The charts as one offline HTML file, the replay animation included.",
)
c4.download_button(
    "Export as script",
    data=lambda: surface_script(cfg),
    file_name=f"optlab-{cfg.surface}.py",
    mime="text/x-python",
    on_click="ignore",
    help="A standalone Python file that needs only torch: it repeats this run with "
    "torch.optim's textbook loop and prints where each optimizer ended.",
)

inspector_section(cfg, trajectories)
