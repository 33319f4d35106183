"""The CNN lab's controls: Start and Stop, the share link, and resuming an uploaded checkpoint."""

from __future__ import annotations

from dataclasses import replace

import streamlit as st

from optlab.train.autosave import SavedRun
from optlab.train.checkpoint import (
    MAX_CHECKPOINT_BYTES,
    CheckpointError,
    CheckpointSummary,
    resume,
    summarize_checkpoint,
)
from optlab.train.jobs import Job
from optlab.train.run import MAX_STEPS, TrainingSession
from optlab.ui.address_bar import mirror_url
from optlab.ui.cnn import jobs, settings
from optlab.ui.cnn.sidebar import chosen_data, data_choice, load_choice


def _start() -> None:
    # Read now, not when the button was drawn: a number typed just before the
    # click arrives together with it.
    state = st.session_state
    try:
        cfg, images = settings.config_from_state(state), chosen_data(state)
        if images is None:
            raise ValueError("no CIFAR-10 images here (download them, or pick Synthetic shapes)")
        jobs.start(TrainingSession(cfg, images), images, data_choice(state))
    except ValueError as err:
        state[settings.ERROR] = f"Cannot start: {err}"


def run_buttons(job: Job | None, busy: bool, runs: list[SavedRun], has_data: bool) -> None:
    """Start and Stop, the settings' error if they do not validate, and the address bar.

    The address bar is the share link of the settings, plus this browser's run
    while it trains or waits to be resumed: the URL outlives a killed server.
    """
    state = st.session_state
    try:
        cfg = settings.config_from_state(state)
    except ValueError as err:
        cfg = None
        st.error(f"Cannot train with these settings: {err}")
    else:
        params = settings.share_params(state, cfg)
        own = state.get(jobs.RUN_ID)
        if own and (busy or any(run.id == own for run in runs)):
            params["run"] = own
        mirror_url(params)
    left, right = st.columns(2)
    left.button(
        "Start",
        type="primary",
        icon=":material/play_arrow:",
        on_click=_start,
        disabled=busy or cfg is None or not has_data,
        width="stretch",
    )
    right.button(
        "Stop",
        icon=":material/stop:",
        on_click=jobs.stop,
        args=(job,),
        disabled=not busy,
        width="stretch",
    )
    if message := state.pop(settings.ERROR, None):
        st.error(message)


def _resume_upload(saved: CheckpointSummary, target: int, name: str) -> None:
    state = st.session_state
    cfg = replace(saved.config, steps=target, epochs=None, device=state[settings.DEVICE])
    try:
        # The checkpoint's own subset sizes, not the page's current ones.
        choice = data_choice(state)
        images = load_choice(choice, (saved.config.train_limit, saved.config.test_limit))
        if images is None:
            raise ValueError("no CIFAR-10 images here (download them, or pick Synthetic shapes)")
        resumed = TrainingSession(cfg, images)
        resume(resumed, saved.state)
    except ValueError as err:  # CheckpointError included
        state[settings.ERROR] = f"Cannot resume {name}: {err}"
        return
    settings.apply_config(state, cfg)
    jobs.start(resumed, images, choice)


def resume_section(busy: bool, has_data: bool) -> None:
    """Upload a checkpoint (this page's or ``optlab train --checkpoint``'s) and train on."""
    upload_cap_mb = int(st.get_option("server.maxUploadSize"))
    upload = st.file_uploader(
        "Checkpoint (.pt) saved by this page or `optlab train --checkpoint`",
        type=["pt"],
        key="cnn_upload",
        # The server's own cap (server.maxUploadSize) is the smaller one.
        max_upload_size=min(MAX_CHECKPOINT_BYTES >> 20, upload_cap_mb),
    )
    if upload is None:
        return
    try:
        saved = summarize_checkpoint(upload.getvalue())
    except (CheckpointError, ValueError, TypeError) as err:
        st.error(f"{upload.name}: {err}")
        return
    cfg, step, total = saved.config, saved.step, saved.total_steps
    names = ", ".join(slot.label for slot in cfg.slots)
    st.caption(
        f"{names}: step {step:,} of {total:,} on {saved.n_images:,} training images "
        f"({cfg.model}, batch {cfg.batch_size}, seed {cfg.seed})."
    )
    target = st.number_input(
        "Train until step",
        min_value=step + 1,
        max_value=max(step + 1, MAX_STEPS),
        value=total if step < total else step + saved.per_epoch,
        help="Counted from the start of the original run.",
    )
    st.button(
        "Resume training",
        icon=":material/resume:",
        on_click=_resume_upload,
        args=(saved, int(target), upload.name),
        disabled=busy or not has_data,
        width="stretch",
    )
