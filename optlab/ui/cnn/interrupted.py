"""The CNN page's interrupted runs: listed after a server restart or a closed tab, resumed.

Every job autosaves into the server's runs folder (`optlab.train.autosave`). A browser
knows its own run by the ``run`` in its URL, which outlives a killed server:
the page offers that run first, with Resume and Discard. Other interrupted
runs on the server are listed below it (a workshop attendee whose tab or
laptop was closed finds theirs there) with Resume only.
"""

from __future__ import annotations

import time

import streamlit as st

from optlab.train.autosave import SavedRun, valid_id
from optlab.train.checkpoint import resume
from optlab.train.run import TrainingSession, TrainRunConfig
from optlab.ui.cnn import jobs, settings
from optlab.ui.cnn.sidebar import load_choice

#: Other browsers' interrupted runs listed at most.
LISTED = 8
#: A failed resume's message, shown above the list on the next run.
ERROR = "cnn_runs_error"


def own_run_from_link(params: dict[str, list[str]]) -> None:
    """Takes this browser's run id from its link (on a session's first visit)."""
    state = st.session_state
    got = params.get("run", [])
    if jobs.RUN_ID not in state and len(got) == 1 and valid_id(got[0]):
        state[jobs.RUN_ID] = got[0]


def _ago(seconds: float) -> str:
    minutes = round(max(0.0, seconds) / 60)
    if minutes < 1:
        return "just now"
    if minutes < 90:
        return f"{minutes} min ago"
    return f"{minutes / 60:.0f} h ago"


def describe(run: SavedRun, why: bool = True) -> str:
    """One line: optimizers, saved step, data, when (and why) it stopped."""
    data = "synthetic shapes" if run.data.get("source") == settings.SYNTHETIC else "CIFAR-10"
    text = (
        f"**{' vs '.join(run.labels)}** · saved at step {run.step:,} of "
        f"{run.total_steps:,} · {data} · {_ago(time.time() - run.saved_at)}"
    )
    return f"{text} · {run.why()}" if why else text


def resume_saved(run_id: str) -> None:
    """Resumes an interrupted run as this browser's job (a button's callback)."""
    state = st.session_state
    store = jobs.run_store()
    try:
        run, checkpoint = store.load(run_id)
        cfg = TrainRunConfig.from_dict(checkpoint["config"])
        images = load_choice(run.data, (cfg.train_limit, cfg.test_limit))
        if images is None:
            raise ValueError("its CIFAR-10 images are not on this server any more")
        session = TrainingSession(cfg, images)
        resume(session, checkpoint)
        store.claim(run_id)
    except (ValueError, KeyError, TypeError) as err:  # RunError and CheckpointError included
        state[ERROR] = f"Cannot resume run {run_id}: {err}"
        return
    settings.apply_config(state, cfg)
    state[settings.DATA] = run.data.get("source", settings.CIFAR)
    state[settings.DATA_DIR] = run.data.get("dir", "")
    jobs.start(session, images, dict(run.data), run_id)


def discard(run_id: str) -> None:
    """Deletes this browser's interrupted run (a button's callback)."""
    jobs.run_store().remove(run_id)
    st.session_state.pop(jobs.RUN_ID, None)


def interrupted_panel() -> list[SavedRun]:
    """Offers the interrupted runs (this browser's first); returns them.

    Drawn only while this browser has no job running.
    """
    state = st.session_state
    if message := state.pop(ERROR, None):
        st.error(message, icon=":material/error:")
    runs = jobs.run_store().interrupted()
    own_id = state.get(jobs.RUN_ID)
    own = next((r for r in runs if r.id == own_id), None)
    if own is not None:
        with st.container(border=True):
            st.warning(
                f"Your run was interrupted ({own.why()}). It was saved at step "
                f"{own.step:,} of {own.total_steps:,}: resume it to train on from there, "
                "with the same results as if it had never stopped.",
                icon=":material/restore:",
            )
            st.markdown(describe(own, why=False))
            left, right = st.columns(2)
            left.button(
                "Resume my run",
                type="primary",
                icon=":material/resume:",
                on_click=resume_saved,
                args=(own.id,),
                key="cnn_resume_own",
                width="stretch",
            )
            right.button(
                "Discard it",
                icon=":material/delete:",
                on_click=discard,
                args=(own.id,),
                key="cnn_discard_own",
                width="stretch",
            )
    others = [r for r in runs if r is not own]
    if others:
        with st.expander(
            f"Interrupted runs on this server ({len(others)})", icon=":material/history:"
        ):
            st.caption(
                "Runs whose page was closed, or whose server stopped, saved every "
                "few steps. Resume yours to go on from its last save."
            )
            for run in others[:LISTED]:
                text, button = st.columns([5, 1], vertical_alignment="center")
                text.markdown(describe(run))
                button.button(
                    "Resume",
                    icon=":material/resume:",
                    on_click=resume_saved,
                    args=(run.id,),
                    key=f"cnn_resume_{run.id}",
                    width="stretch",
                )
    return runs
