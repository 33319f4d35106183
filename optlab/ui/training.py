"""The CNN page's server side: shared data and jobs, downloads, live logs, results.

The images and the job registry are process-wide (`st.cache_resource`): a
workshop's browsers share one copy of CIFAR-10 and one queue of trainings.
Everything per browser (its job, its folded logs, its predictions) lives in
its session state.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass

import streamlit as st
import torch

from optlab.caps import CAPS
from optlab.data import (
    ARCHIVE_NAME,
    DATA_DIR_ENV,
    DataError,
    LoadedData,
    archive_url,
    default_cache_dir,
    load_cifar10,
    synthetic_data,
)
from optlab.jobs import Job, JobRegistry, JobSnapshot
from optlab.runs import Autosave, RunStore, default_runs_dir
from optlab.train_report import RunLog, fold, new_logs
from optlab.train_run import TrainingSession

#: Concurrent trainings per server; default one per two CPU cores.
MAX_JOBS_ENV = "OPTLAB_MAX_JOBS"
#: Seconds between two redraws of a running job.
POLL_S = 1.0
#: The synthetic set's size unless a run asks for more images.
SYNTHETIC_SIZE = (2_000, 1_000)
SYNTHETIC_MAX = (50_000, 10_000)

JOB, LOGS, PREDICTIONS = "cnn_job", "cnn_logs", "cnn_predictions"
#: This browser's autosaved run (also in its URL, which outlives a server).
RUN_ID = "cnn_run_id"


def max_jobs() -> int:
    """``$OPTLAB_MAX_JOBS`` if it is a positive whole number (the older name of
    ``$OPTLAB_CAP_JOBS_RUNNING``), else the cap: one per two cores by default."""
    raw = os.environ.get(MAX_JOBS_ENV, "").strip()
    # ASCII digits only ("²" is a digit to isdigit but not to int), and short enough
    # for int() (which refuses more than 4300 digits).
    if raw.isascii() and raw.isdigit() and len(raw) <= 15 and int(raw) >= 1:
        return int(raw)
    if raw:
        logging.getLogger(__name__).warning(
            "optlab: %s=%r ignored: expected a whole number >= 1; keeping %d",
            MAX_JOBS_ENV,
            raw[:40],
            CAPS.running_jobs(),
        )
    return CAPS.running_jobs()


@st.cache_resource(show_spinner=False)
def job_registry() -> JobRegistry:
    """The server's one job registry, with the caps' limits."""
    return JobRegistry(
        max_running=max_jobs(),
        max_runtime_s=CAPS.job_runtime_s,
        idle_timeout_s=CAPS.job_idle_s,
    )


@st.cache_resource(show_spinner="Loading CIFAR-10…", max_entries=2)
def _cifar(data_dir: str) -> LoadedData:
    # Failures raise, and Streamlit caches only results: a later visit retries.
    return load_cifar10(data_dir=data_dir or None, download=False, synthetic=False)


def cifar_data(data_dir: str) -> tuple[LoadedData | None, str]:
    """CIFAR-10 from the named folder, ``$OPTLAB_DATA_DIR`` or the cache, never
    downloaded here; ``(None, why)`` when there is none."""
    try:
        return _cifar(data_dir.strip()), ""
    except DataError as err:
        return None, str(err)


@st.cache_resource(show_spinner="Drawing the synthetic images…", max_entries=2)
def _synthetic(n_train: int, n_test: int) -> LoadedData:
    return synthetic_data((n_train, n_test), 0, "chosen on this page")


def synthetic_for(train_limit: int | None, test_limit: int | None) -> LoadedData:
    """The synthetic set, large enough for the asked subset sizes (up to CIFAR-10's)."""
    wanted = (train_limit or SYNTHETIC_MAX[0], test_limit or SYNTHETIC_MAX[1])
    n_train, n_test = (
        min(max(n, base), cap)
        for n, base, cap in zip(wanted, SYNTHETIC_SIZE, SYNTHETIC_MAX, strict=True)
    )
    return _synthetic(n_train, n_test)


def can_download(data_dir: str) -> bool:
    """Whether a download could help: no folder is named on the page or in the environment."""
    return not data_dir.strip() and not os.environ.get(DATA_DIR_ENV)


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
    return folded.logs


def predictions(job: Job) -> list[torch.Tensor]:
    """Every model's predicted class per test image (computed once per job)."""
    cached = st.session_state.get(PREDICTIONS)
    if cached is None or cached[0] != job.id:
        session = job.session
        assert session is not None
        cached = (job.id, [session.predict(i) for i in range(len(session.models))])
        st.session_state[PREDICTIONS] = cached
    return cached[1]
