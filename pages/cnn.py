"""CNN lab: train the tutorial CNN with several torch.optim optimizers side by side, live."""

from dataclasses import replace

import streamlit as st

from optlab.checkpoint import MAX_CHECKPOINT_BYTES, CheckpointError, read_checkpoint, resume
from optlab.jobs import FINISHED
from optlab.train_run import TrainingSession, TrainRunConfig
from optlab.ui import cnn_results as R
from optlab.ui import cnn_runs, training
from optlab.ui import cnn_state as C
from optlab.ui.cnn_widgets import chosen_data, data_choice, load_choice, sidebar_settings
from optlab.ui.state import link_params, mirror_url

state = st.session_state
if not state.get(C.INITIALISED):
    cnn_runs.own_run_from_link(link_params())
C.initialise(state, training.cifar_data("")[0] is not None, link_params())
st.title("CNN lab")
if warning := state.pop(C.LINK_WARNING, None):
    st.warning(warning)
st.caption(
    "Identical models (same initial weights) see identical batches in the same order; "
    "each optimizer runs the textbook `zero_grad()`, forward, `backward()`, `step()` "
    "in lockstep, so the curves differ only by the optimizer."
)
UPLOAD_CAP_MB = int(st.get_option("server.maxUploadSize"))

with st.sidebar:
    run_box = st.container()
    data = sidebar_settings()
    resume_box = st.expander("Resume from a checkpoint", icon=":material/upload_file:")

job = training.current_job()
busy = job is not None and job.state not in FINISHED
runs = [] if busy else cnn_runs.interrupted_panel()


def start() -> None:
    # Read now, not when the button was drawn: a number typed just before the
    # click arrives together with it.
    try:
        cfg, images = C.config_from_state(state), chosen_data(state)
        if images is None:
            raise ValueError("no CIFAR-10 images here (download them, or pick Synthetic shapes)")
        training.start(TrainingSession(cfg, images), images, data_choice(state))
    except ValueError as err:
        state[C.ERROR] = f"Cannot start: {err}"


with run_box:
    try:
        cfg = C.config_from_state(state)
    except ValueError as err:
        cfg = None
        st.error(f"Cannot train with these settings: {err}")
    else:
        # The address bar is a share link, plus this browser's run while it
        # trains or waits to be resumed: the URL outlives a killed server.
        params = C.share_params(state, cfg)
        own = state.get(training.RUN_ID)
        if own and (busy or any(run.id == own for run in runs)):
            params["run"] = own
        mirror_url(params)
    left, right = st.columns(2)
    left.button(
        "Start",
        type="primary",
        icon=":material/play_arrow:",
        on_click=start,
        disabled=busy or cfg is None or data is None,
        width="stretch",
    )
    right.button(
        "Stop",
        icon=":material/stop:",
        on_click=lambda: job.cancel("stopped by you"),
        disabled=not busy,
        width="stretch",
    )
    if message := state.pop(C.ERROR, None):
        st.error(message)


def resume_upload(saved: TrainRunConfig, checkpoint: dict, target: int, name: str) -> None:
    cfg = replace(saved, steps=target, epochs=None, device=state[C.DEVICE])
    try:
        # The checkpoint's own subset sizes, not the page's current ones.
        choice = data_choice(state)
        images = load_choice(choice, (saved.train_limit, saved.test_limit))
        if images is None:
            raise ValueError("no CIFAR-10 images here (download them, or pick Synthetic shapes)")
        session = TrainingSession(cfg, images)
        resume(session, checkpoint)
    except ValueError as err:  # CheckpointError included
        state[C.ERROR] = f"Cannot resume {name}: {err}"
        return
    C.apply_config(state, cfg)
    training.start(session, images, choice)


with resume_box:
    upload = st.file_uploader(
        "Checkpoint (.pt) saved by this page or `optlab train --checkpoint`",
        type=["pt"],
        key="cnn_upload",
        # The server's own cap (server.maxUploadSize) is the smaller one.
        max_upload_size=min(MAX_CHECKPOINT_BYTES >> 20, UPLOAD_CAP_MB),
    )
    if upload is not None:
        try:
            checkpoint = read_checkpoint(upload.getvalue())
            saved = TrainRunConfig.from_dict(checkpoint["config"])
            step = checkpoint["step"]
            n_images = len(checkpoint["order"])
            if not isinstance(step, int) or n_images < saved.batch_size:
                raise CheckpointError("checkpoint: damaged (bad step or data order)")
        except (CheckpointError, ValueError, TypeError) as err:
            st.error(f"{upload.name}: {err}")
        else:
            per_epoch = n_images // saved.batch_size
            total = saved.steps if saved.steps is not None else saved.epochs * per_epoch
            names = ", ".join(slot.label for slot in saved.slots)
            st.caption(
                f"{names}: step {step:,} of {total:,} on {n_images:,} training images "
                f"({saved.model}, batch {saved.batch_size}, seed {saved.seed})."
            )
            target = st.number_input(
                "Train until step",
                min_value=step + 1,
                max_value=max(step + 1, 100_000),
                value=total if step < total else step + per_epoch,
                help="Counted from the start of the original run.",
            )
            st.button(
                "Resume training",
                icon=":material/resume:",
                on_click=resume_upload,
                args=(saved, checkpoint, int(target), upload.name),
                disabled=busy or data is None,
                width="stretch",
            )

if job is None:
    st.info(
        "Pick the data, the model and two or more optimizers in the sidebar, then press "
        "**Start**. The defaults (SGD + momentum vs Adam, 4 epochs of up to 10,000 images) "
        "take about half a minute on a 2-core laptop.",
        icon=":material/arrow_back:",
    )
    st.stop()


@st.fragment(run_every=training.POLL_S if busy else None)
def live() -> None:
    snapshot = job.poll()
    logs = training.logs_for(job, snapshot)
    R.live_panel(job, snapshot, logs)
    if busy and snapshot.state in FINISHED:
        st.rerun()  # the whole page: stop polling, show the trained models


live()
if not busy:
    logs = training.logs_for(job, job.poll())
    R.downloads(job, logs)
    R.model_panel(job, logs)
