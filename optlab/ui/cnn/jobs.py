"""The CNN page's server side: shared data and jobs, downloads, live logs, results.

The images and the job registry are process-wide (`st.cache_resource`): a
workshop's browsers share one copy of CIFAR-10 and one queue of trainings.
Everything per browser (its job, its folded logs, its predictions) lives in
its session state.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from dataclasses import dataclass

import streamlit as st
import torch

from optlab.caps import CAPS, max_running_jobs
from optlab.train.autosave import Autosave, RunStore, default_runs_dir
from optlab.train.data import (
    ARCHIVE_NAME,
    DATA_DIR_ENV,
    DataError,
    LoadedData,
    archive_url,
    default_cache_dir,
    find_cifar10,
    load_cifar10,
    synthetic_data,
    synthetic_size,
)
from optlab.train.jobs import Job, JobRegistry, JobSnapshot
from optlab.train.report import RunLog, fold, new_logs, note_live_changes
from optlab.train.run import TrainingSession

#: Seconds between two redraws of a running job.
POLL_S = 1.0

JOB, LOGS, PREDICTIONS = "cnn_job", "cnn_logs", "cnn_predictions"
#: This browser's autosaved run (also in its URL, which outlives a server).
RUN_ID = "cnn_run_id"


@st.cache_resource(show_spinner=False)
def job_registry() -> JobRegistry:
    """The server's one job registry, with the caps' limits."""
    return JobRegistry(
        max_running=max_running_jobs(),
        max_runtime_s=CAPS.job_runtime_s,
        idle_timeout_s=CAPS.job_idle_s,
    )


@st.cache_resource(show_spinner="Loading CIFAR-10…", max_entries=2)
def _cifar(data_dir: str) -> LoadedData:
    # Failures raise, and Streamlit caches only results: a later visit retries.
    return find_cifar10(data_dir=data_dir or None)


def cifar_data(data_dir: str) -> tuple[LoadedData | None, str]:
    """CIFAR-10 from the named folder, ``$OPTLAB_DATA_DIR`` or the cache, never
    downloaded here (the page offers that as a button); ``(None, why)`` when there
    is none, ``why`` naming what is missing."""
    try:
        return _cifar(data_dir.strip()), ""
    except DataError as err:
        return None, str(err)


@st.cache_resource(show_spinner="Drawing the synthetic images…", max_entries=2)
def _synthetic(n_train: int, n_test: int) -> LoadedData:
    return synthetic_data((n_train, n_test), 0, "chosen on this page")


def synthetic_for(train_limit: int | None, test_limit: int | None) -> LoadedData:
    """The synthetic set for the asked subset sizes, as ``optlab train`` draws it."""
    return _synthetic(*synthetic_size(train_limit, test_limit))


def can_download(data_dir: str) -> bool:
    """Whether a download could help: no folder is named on the page or in the environment."""
    return no_download_why(data_dir) is None


def no_download_why(data_dir: str) -> str | None:
    """Why the page offers no download (a named folder is the only source read
    then), or None when it does: the page and `can_download` say the same."""
    if data_dir.strip():
        return (
            "A folder is named above, so only that folder is read: clear it to use "
            "this server's own copy, or to download one into its cache."
        )
    if os.environ.get(DATA_DIR_ENV):
        return (
            f"This server reads CIFAR-10 only from ${DATA_DIR_ENV} (set where it was "
            "started), so the page offers no download."
        )
    return None


_download_lock = threading.Lock()


def download_cifar(report: Callable[[int, int | None], None]) -> str | None:
    """Downloads the archive into the cache folder and loads it; the error, if any.

    One download at a time per server: a second click waits, then finds the
    data already there.
    """
    with _download_lock:
        if cifar_data("")[0] is not None:
            return None
        try:
            load_cifar10(download=True, synthetic=False, progress=report)
        except DataError as err:
            return str(err)
        _cifar.clear()
        return None


def download_target() -> str:
    """Where a download comes from and goes, in words."""
    return f"{archive_url()} → {default_cache_dir() / ARCHIVE_NAME}"


def current_job() -> Job | None:
    """This browser's job (running, queued or finished), if any."""
    return st.session_state.get(JOB)


@st.cache_resource(show_spinner=False)
def run_store() -> RunStore:
    """The server's runs folder, where jobs autosave their checkpoints."""
    return RunStore(default_runs_dir())


def start(
    session: TrainingSession, data: LoadedData, choice: dict, run_id: str | None = None
) -> Job:
    """Queues ``session`` on the server's registry as this browser's job.

    The job autosaves into the runs folder as ``run_id`` (a new run unless
    it resumes one); ``choice`` is the page's data choice, saved with it so
    a resume loads the same images.
    """
    store = run_store()
    autosave = Autosave(store, run_id or store.new_id(), choice)
    job = job_registry().submit(session.cfg, data, session, autosave)
    st.session_state[JOB] = job
    st.session_state[RUN_ID] = autosave.run_id
    st.session_state.pop(LOGS, None)
    st.session_state.pop(PREDICTIONS, None)
    return job


@dataclass
class _Folded:
    job_id: int
    count: int
    logs: list[RunLog]


def logs_for(job: Job, snapshot: JobSnapshot) -> list[RunLog]:
    """The job's records folded into one log per optimizer, incrementally.

    Each poll folds only the records that arrived since the last one.
    """
    folded = st.session_state.get(LOGS)
    if folded is None or folded.job_id != job.id:
        assert job.session is not None
        folded = _Folded(job.id, 0, new_logs(job.session))
        st.session_state[LOGS] = folded
    fold(folded.logs, snapshot.records[folded.count :])
    folded.count = len(snapshot.records)
    note_live_changes(folded.logs, job.session)
    return folded.logs


def predictions(job: Job) -> list[torch.Tensor]:
    """Every model's predicted class per test image, from its evaluation at the step
    the job ended (`TrainingSession.predict`), once per job."""
    cached = st.session_state.get(PREDICTIONS)
    session = job.session
    assert session is not None
    if cached is None or cached[:2] != (job.id, session.step):
        cached = (job.id, session.step, [session.predict(i) for i in range(len(session.models))])
        st.session_state[PREDICTIONS] = cached
    return cached[2]
