"""The playground's three views of one comparison: Paths, Replay and 3-D, as tabs.

Only the open tab is built: the replay (hundreds of frames) and the WebGL 3-D
view cost the browser seconds, and a first visit should see the contour at
once. The tabs are Streamlit's own stateful tabs inside a fragment, so
opening one reruns this part of the page alone.
"""

from __future__ import annotations

import streamlit as st

from optlab.surface import plots
from optlab.surface.replay import replay_figure
from optlab.surface.run import SurfaceRunConfig
from optlab.surface.trajectory import Trajectory
from optlab.ui.playground import settings
from optlab.ui.turns import fragment
from optlab.ui.view import PRESENTER_SQUARE_PX, show_chart, show_shared_chart

PATHS, REPLAY, VIEW_3D = "Paths", "Replay", "3-D view"
#: Session keys: the open tab, the step the replay shows, the contour's clicks.
TAB, REPLAY_STEP, CONTOUR = "view_tab", "replay_step", "contour"
#: Set by a click that moved the start: the whole page reruns, not this fragment.
MOVED = "start_moved"


def _start_where_clicked() -> None:
    """The contour's click callback: the start moves to the point clicked (a grid
    point, or a path's point), rounded to what the sidebar shows."""
    event = st.session_state.get(CONTOUR)
    points = event.selection.points if event and event.selection else []
    if points:
        x, y = points[0]["x"], points[0]["y"]
        st.session_state[settings.START_X] = float(f"{x:.3g}")
        st.session_state[settings.START_Y] = float(f"{y:.3g}")
        st.session_state[MOVED] = True


def paths_chart(
    cfg: SurfaceRunConfig,
    trajectories: list[Trajectory],
    *,
    key: str | None,
    finished: bool = False,
) -> None:
    """The contour with every path (also drawn live while a run is in progress).
    With a ``key``, a click on it moves the start there and reruns the page. A
    ``finished`` comparison's chart is built once for every session and rerun
    (`show_shared_chart`): its paths are ``cfg``'s."""
    clickable = key is not None
    show_shared_chart(
        lambda: plots.contour_figure(cfg.resolved_surface, trajectories, clickable=clickable),
        ("playground-paths", cfg, clickable) if finished else None,
        0,
        f"{cfg.problem.surface}-paths",
        key=key,
        presenter_height=PRESENTER_SQUARE_PX,
        **({"on_select": _start_where_clicked, "selection_mode": "points"} if key else {}),
    )


def _replay(cfg: SurfaceRunConfig, trajectories: list[Trajectory]) -> None:
    last = max(tr.step[-1] for tr in trajectories)
    if st.session_state.get(REPLAY_STEP, 0) > last:
        st.session_state[REPLAY_STEP] = last
    box, note = st.columns([1, 2], vertical_alignment="bottom")
    step = box.number_input(
        "Show step",
        min_value=0,
        max_value=last,
        step=1,
        key=REPLAY_STEP,
        help="Steps one at a time with − and +; ▶ Play goes on from the step shown.",
    )
    fig = replay_figure(cfg.resolved_surface, trajectories, at_step=int(step))
    frames = len(fig.frames)
    note.caption(
        "One frame per step."
        if frames == last + 1
        else f"{frames} frames, about one every {last / (frames - 1):.3g} steps; "
        "the box shows any step."
    )
    show_chart(
        fig,
        f"{cfg.problem.surface}-replay",
        key="replay",
        presenter_height=PRESENTER_SQUARE_PX + 200,
    )


def _surface_3d(cfg: SurfaceRunConfig, trajectories: list[Trajectory]) -> None:
    show_chart(
        plots.surface3d_figure(cfg.resolved_surface, trajectories),
        f"{cfg.problem.surface}-3d",
        key="surface3d",
    )


@fragment
def views(cfg: SurfaceRunConfig, trajectories: list[Trajectory], finished: bool = False) -> None:
    """The tabs, building only the open one; ``finished``: ``trajectories`` are
    ``cfg``'s whole run (not one cut short)."""
    if st.session_state.pop(MOVED, False):
        st.rerun(scope="app")  # a new start: a new comparison for the whole page
    paths, replay, surface = st.tabs([PATHS, REPLAY, VIEW_3D], key=TAB, on_change="rerun")
    if paths.open:
        with paths:
            paths_chart(cfg, trajectories, key=CONTOUR, finished=finished)
    if replay.open:
        with replay:
            _replay(cfg, trajectories)
    if surface.open:
        with surface:
            _surface_3d(cfg, trajectories)
