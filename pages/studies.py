"""Studies: tune each optimizer on the same budget, then compare (trials on Ray)."""

import contextlib

import streamlit as st

from optlab.train.jobs import FINISHED
from optlab.ui.address_bar import link_params, mirror_url
from optlab.ui.cnn.jobs import cifar_data
from optlab.ui.studies import jobs, results, settings, sidebar
from optlab.ui.turns import fragment

state = st.session_state
has_cifar = cifar_data("")[0] is not None
settings.initialise(state, has_cifar, link_params())
st.title("Tuning studies")
if warning := state.pop(settings.LINK_WARNING, None):
    st.warning(warning)
st.caption(
    "Is Adam better than SGD on this CNN? Only after each is tuned on the same budget. "
    "Every optimizer gets the same quasi-random points of its search space and the same "
    "seeds; each trial is a plain training run (`python -m optlab train` with those "
    "values), run on Ray."
)

job = jobs.current_job()
busy = job is not None and job.state not in FINISHED
with st.sidebar:
    sidebar.study_settings(busy, has_cifar)

try:
    cfg = settings.config_from_state(state)
    error = None
except ValueError as err:
    cfg, error = None, str(err)
if error:
    st.error(error, icon=":material/error:")
else:
    with contextlib.suppress(ValueError):
        mirror_url(settings.share_params(state))
    st.caption(settings.summary(cfg))

with st.sidebar:
    sidebar.run_buttons(job, busy, cfg)

if job is None:
    st.info(
        "Set the optimizers and their search space in the sidebar, then press **Start**. "
        "The default study (SGD + momentum vs Adam, 8 points x 2 seeds of 200 steps) takes "
        "about five minutes on a 2-core laptop.",
        icon=":material/arrow_back:",
    )
    st.stop()


@fragment(run_every=jobs.POLL_S if busy else None)
def live() -> None:
    snap = job.poll()
    results.status_line(job, snap)
    results.results_panel(job, snap, state[settings.DATA])
    if busy and snap.state in FINISHED:
        st.rerun()


live()
