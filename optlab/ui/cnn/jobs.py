"""The CNN page's server side: shared data and jobs, downloads, live logs, results.

The images and the job registry are process-wide (`st.cache_resource`): a
workshop's browsers share one copy of CIFAR-10 and one queue of trainings.
Everything per browser (its job, its folded logs, its predictions) lives in
its session state.
"""

from __future__ import annotations

import math
import os
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass

import streamlit as st
import torch

from optlab.caps import CAPS, max_running_jobs
from optlab.optim.plans import Change
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
from optlab.train.results import ResultStore
from optlab.train.run import TrainingSession
from optlab.train.sharing import STARTED, SharedRuns

#: Seconds between two redraws of a running job. Each rebuilds the live panels on the
#: server and the browser draws them again: a redraw every second trained the watched
#: run at 0.76x the CLI's images/s with the browser on the same two cores, every 2 s
#: at 0.90x (`bench.cnn_page`, side by side).
POLL_S = 2.0
#: Redraws per second one shared job serves at most, all its watchers together.
REDRAWS_PER_S = 5.0


def poll_interval(watching: int) -> float:
    """Seconds between two redraws of a job ``watching`` browsers watch: `POLL_S`,
    longer past `REDRAWS_PER_S` watchers, in whole seconds.

    A redraw costs the server milliseconds of Python, which holds the
    interpreter lock the training thread needs between its torch ops, and
    thirty browsers redrawing every two seconds add up. Spread out, a class costs
    what five watchers do (`bench.shared_runs`: thirty attendees all saw the
    run finish within 1.28 x one run's time).
    """
    return max(POLL_S, float(math.ceil(watching / REDRAWS_PER_S)))


JOB, LOGS, PREDICTIONS = "cnn_job", "cnn_logs", "cnn_predictions"
#: How this browser's job came to be; its name as a job's watcher; its data choice.
HOW, WATCHER, CHOICE = "cnn_job_how", "cnn_watcher", "cnn_job_choice"
#: Why this browser's Stop could not keep a copy of a shared run (shown once).
STOP_ERROR = "cnn_stop_error"
#: The runs folder's sub-folder of finished comparisons kept for replay.
RESULTS_DIR = "results"
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


def how_started() -> str:
    """How this browser's job came to be: `STARTED`, `JOINED` or `REPLAYED`."""
    return st.session_state.get(HOW, STARTED)


@st.cache_resource(show_spinner=False)
def run_store() -> RunStore:
    """The server's runs folder, where jobs autosave their checkpoints."""
    return RunStore(default_runs_dir())


@st.cache_resource(show_spinner=False)
def shared_runs() -> SharedRuns:
    """The server's shared comparisons, with finished ones kept in the runs folder."""
    return SharedRuns(job_registry(), ResultStore(default_runs_dir() / RESULTS_DIR))


def _watcher() -> str:
    """This browser's name as a job's watcher (random, per session)."""
    return st.session_state.setdefault(WATCHER, secrets.token_hex(8))


def _own(job: Job, how: str = STARTED, autosave: Autosave | None = None) -> Job:
    """Makes ``job`` this browser's job. Its run id goes in the URL (which outlives
    a killed server) only when the job autosaves with this browser's ``autosave``:
    a joined job's run is resumed by the browser that started it."""
    state = st.session_state
    state[JOB], state[HOW] = job, how
    if autosave is not None and job.autosave is autosave:
        state[RUN_ID] = autosave.run_id
    else:
        state.pop(RUN_ID, None)
    return job


def start(
    session: TrainingSession, data: LoadedData, choice: dict, run_id: str | None = None
) -> Job:
    """Starts ``session``'s comparison as this browser's job, sharing it when an
    identical one trains or finished on this server (`SharedRuns.start`).

    A new job autosaves into the runs folder as ``run_id`` (a new run unless
    it resumes one); ``choice`` is the page's data choice, saved with it so
    a resume loads the same images.
    """
    store = run_store()
    autosave = Autosave(store, run_id or store.new_id(), choice)
    started = shared_runs().start(session, data, _watcher(), autosave)
    st.session_state.pop(LOGS, None)
    st.session_state.pop(PREDICTIONS, None)
    st.session_state[CHOICE] = dict(choice)
    return _own(started.job, started.how, autosave)


def poll(job: Job, every: float | None = None) -> JobSnapshot:
    """The job's progress, polled as this browser (again in ``every`` seconds, when
    it polls: past five watchers a page polls less often than the job's watch window)."""
    return job.poll(_watcher(), every)


def stop(job: Job) -> None:
    """This browser's Stop (a button's callback): the job stops unless others watch
    it; then this browser keeps a stopped copy of it."""
    try:
        mine = shared_runs().leave(job, _watcher())
    except (ValueError, RuntimeError, TimeoutError) as err:  # the copy, not the Stop, failed
        st.session_state[STOP_ERROR] = (
            f"You left the shared run, but a stopped copy of it could not be made: {err}"
        )
        return
    if mine is not job:
        st.session_state.pop(LOGS, None)
        _own(mine)


def change(job: Job, index: int, change: Change) -> Job:
    """Asks for a live change for this browser only: on its own job, or on a fork of
    a job others watch too (then its own from now on, autosaved as a new run).

    Raises:
        ValueError: the change does not fit the optimizer.
        TimeoutError: the shared job did not reach a step boundary in time.
    """
    store = run_store()
    autosave = Autosave(store, store.new_id(), st.session_state.get(CHOICE, {}))
    mine = shared_runs().change(job, _watcher(), index, change, autosave)
    if mine is not job:
        st.session_state.pop(LOGS, None)
        _own(mine, STARTED, autosave)
    return mine


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
