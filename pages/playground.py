"""Surface Playground: compare torch.optim optimizers on a 2-D loss surface."""

import streamlit as st

from optlab.surface.surfaces import CUSTOM
from optlab.ui import view
from optlab.ui.playground import results, settings, views
from optlab.ui.playground.cache import run_seeds
from optlab.ui.playground.inspector import inspector_section
from optlab.ui.playground.sidebar import sidebar_settings
from optlab.ui.room.submit import submit_section

settings.initialise()
st.title("Surface Playground")
if warning := st.session_state.pop(settings.SHARE_WARNING, None):
    st.warning(warning)

with st.sidebar:
    sidebar_settings()

try:
    cfg = settings.config_from_state(st.session_state)
except ValueError as err:
    # Keep the last comparison that ran on screen: a typo must not blank the page.
    cfg = settings.last_good()
    shown = " The charts still show the last comparison that ran." if cfg else ""
    reason = str(err).rstrip(".")
    st.error(f"Cannot run this comparison: {reason}.{shown}", icon=":material/error:")
    if cfg is None:
        st.stop()
else:
    settings.publish(cfg)
surface, problem = cfg.resolved_surface, cfg.problem

if problem.surface == CUSTOM:
    st.markdown(f"`f(x, y) = {problem.expr}`")
else:
    st.latex(f"f(x, y) = {surface.tex}")
st.caption(
    f"{len(cfg.optimizers)} optimizers, {problem.steps} steps from the same start "
    f"({problem.start[0]:g}, {problem.start[1]:g}), noise σ = {problem.noise:g}. "
    "The address bar is a share link for this exact comparison."
)

main, side = view.columns([3, 2], gap="medium")
with main:
    view_slot = st.container()
    live_chart = view_slot.empty()
progress = st.empty()


def show_progress(trajectories, step):
    progress.progress(step / problem.steps, text=f"Running… step {step} of {problem.steps}")
    with live_chart.container():
        views.paths_chart(cfg, trajectories, key=None)


try:
    seeds, finished = run_seeds(
        cfg,
        on_progress=show_progress,
        on_seed=lambda k, n: progress.progress(k / n, text=f"Running seed {k} of {n}…"),
    )
except Exception as err:  # an optimizer that raises (a plugin, say) must not crash the page
    progress.empty()
    text = str(err).strip().splitlines()
    st.error(f"The run failed: {type(err).__name__}: {text[0][:300] if text else ''}")
    st.stop()
progress.empty()
live_chart.empty()
trajectories = seeds[0]
if not finished:
    st.warning("This run hit the time limit and stopped early; try fewer steps.")

with view_slot:
    views.views(cfg, trajectories, finished)
with side:
    results.curves(cfg, trajectories, seeds if finished else [trajectories], finished)
results.summary(cfg, trajectories)
if finished:
    submit_section(cfg, trajectories)
results.downloads(cfg, trajectories)
inspector_section(cfg, trajectories)
