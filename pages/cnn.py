"""CNN lab: train the tutorial CNN with several torch.optim optimizers side by side, live."""

import streamlit as st

from optlab.train.jobs import FINISHED
from optlab.ui.address_bar import link_params
from optlab.ui.cnn import controls, interrupted, jobs, results, settings, trajectories
from optlab.ui.cnn.datasource import missing_data_notice
from optlab.ui.cnn.sidebar import sidebar_settings
from optlab.ui.turns import fragment

state = st.session_state
if not state.get(settings.INITIALISED):
    interrupted.own_run_from_link(link_params())
settings.initialise(state, jobs.cifar_data("")[0] is not None, link_params())
st.title("CNN lab")
if warning := state.pop(settings.LINK_WARNING, None):
    st.warning(warning)
st.caption(
    "Identical models (same initial weights) see identical batches in the same order; "
    "each optimizer runs the textbook `zero_grad()`, forward, `backward()`, `step()` "
    "in lockstep, so the curves differ only by the optimizer."
)

with st.sidebar:
    run_box = st.container()
    data = sidebar_settings()
    resume_box = st.expander("Resume from a checkpoint", icon=":material/upload_file:")
missing_data_notice(data)

job = jobs.current_job()
busy = job is not None and job.state not in FINISHED
runs = [] if busy else interrupted.interrupted_panel()
with run_box:
    controls.run_buttons(job, busy, runs, data is not None)
with resume_box:
    controls.resume_section(busy, data is not None)

if job is None:
    st.info(
        "Pick the data, the model and two or more optimizers in the sidebar, then press "
        "**Start**. The defaults (SGD + momentum vs Adam, 4 epochs of up to 10,000 images) "
        "take about half a minute on a 2-core laptop.",
        icon=":material/arrow_back:",
    )
    st.stop()


# A finished run still polls while its landscape computes (the Trajectories view);
# a run many browsers watch is redrawn less often.
polling = busy or trajectories.computing(job)
interval = jobs.poll_interval(job.watching()) if busy else jobs.POLL_S


@fragment(run_every=interval if polling else None)
def live() -> None:
    snapshot = jobs.poll(job, interval if polling else None)
    logs = jobs.logs_for(job, snapshot)
    results.live_panel(job, snapshot, logs, interval)
    if busy and snapshot.state in FINISHED:
        st.rerun()  # the whole page: stop polling, show the trained models
    if busy and jobs.poll_interval(snapshot.watching) != interval:
        st.rerun()  # the whole page: poll at the new interval
    if polling and not busy and not trajectories.computing(job):
        st.rerun()  # the landscape is done: stop polling


live()
if not busy:
    logs = jobs.logs_for(job, jobs.poll(job))
    results.downloads(job, logs)
    results.model_panel(job, logs)
