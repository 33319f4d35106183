"""The Studies page's server side: the one Ray, study folders, start, stop, resume.

The server's Ray is a process-wide resource (`st.cache_resource`) created
lazily: it starts with the first study, in that study's worker thread, never
when a page loads. Studies queue with the CNN trainings in the same
`JobRegistry` (a study holds one slot while its trials run, on as many CPUs
as one training slot stands for). A browser runs one study at a time.
"""

from __future__ import annotations

import os
import secrets
import time
from pathlib import Path

import streamlit as st

from optlab.caps import CAPS, max_running_jobs
from optlab.study.config import StudyConfig
from optlab.study.engine import RayEngine
from optlab.study.job import StudyJob
from optlab.study.store import StudyFolder
from optlab.train.autosave import default_runs_dir
from optlab.train.data import LoadedData
from optlab.ui.cnn.jobs import cifar_data, job_registry, synthetic_for
from optlab.ui.studies.settings import CIFAR

JOB = "st_job"
#: Seconds between two redraws of a running study.
POLL_S = 1.0


@st.cache_resource(show_spinner=False)
def ray_engine() -> RayEngine:
    """The server's Ray: a local one (or ``$OPTLAB_RAY_ADDRESS``), not started yet."""
    cpus = max(1, (os.cpu_count() or 1) // max_running_jobs())
    return RayEngine(local_cpus=cpus)


def studies_dir() -> Path:
    """Where the page keeps its studies' folders (beside the autosaved runs)."""
    return default_runs_dir() / "studies"


def study_data(cfg: StudyConfig, data: str) -> tuple[LoadedData | None, str]:
    """The images a study trains on, or ``(None, why)``."""
    if data == CIFAR:
        return cifar_data("")
    return synthetic_for(cfg.base.train_limit, cfg.base.test_limit), ""


def submit(cfg: StudyConfig, data: LoadedData, folder: StudyFolder | None = None) -> StudyJob:
    """Queues a study (a new folder, or ``folder`` to resume) and makes it this
    browser's study."""
    info = {"kind": data.kind, "source": data.source, "synthetic": data.synthetic}
    if folder is None:
        name = f"{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(3)}"
        folder = StudyFolder(studies_dir() / name)
        folder.start(cfg, info)
    registry = job_registry()
    job = StudyJob(
        cfg,
        data,
        folder,
        ray_engine(),
        registry.slots,
        registry.queue_position,
        CAPS.job_idle_s,
        info,
    )
    registry.add(job)
    st.session_state[JOB] = job
    return job


def current_job() -> StudyJob | None:
    """This browser's study, if it started one."""
    return st.session_state.get(JOB)
