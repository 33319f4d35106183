"""The Studies page's sidebar: the study's settings and its Start/Stop/Resume."""

from __future__ import annotations

import streamlit as st

from optlab.caps import CAPS
from optlab.study.config import StudyConfig
from optlab.study.job import StudyJob
from optlab.train.jobs import FINISHED
from optlab.ui.studies import jobs, settings


def study_settings(busy: bool, has_cifar: bool) -> None:
    """The widgets (locked while this browser's study runs)."""
    data_choices = [settings.CIFAR, settings.SYNTHETIC] if has_cifar else [settings.SYNTHETIC]
    st.radio(
        "Images",
        data_choices,
        key=settings.DATA,
        format_func={settings.CIFAR: "CIFAR-10", settings.SYNTHETIC: "Synthetic shapes"}.get,
        disabled=busy,
    )
    st.text_area(
        "Optimizers (one SPEC per line)",
        key=settings.OPTS,
        disabled=busy,
        help="As `--opt` takes them: key[:name=value,…], e.g. sgd:momentum=0.9. The "
        "searched knobs' own values are replaced by each point's.",
    )
    st.text_area(
        "Search space (one per line)",
        key=settings.SPACE,
        disabled=busy,
        help="[KEY:]NAME=LOW:HIGH:log|lin, e.g. lr=1e-4:1:log, sgd:momentum=0.8:0.99:lin "
        "(KEY: for one optimizer only). lr is always searched, on a log scale.",
    )
    left, right = st.columns(2)
    left.number_input(
        "Points per optimizer", 1, CAPS.study_trials, key=settings.TRIALS, disabled=busy
    )
    right.number_input("Seeds per point", 1, CAPS.study_seeds, key=settings.SEEDS, disabled=busy)
    left.number_input("Steps per trial", 1, 100_000, key=settings.STEPS, disabled=busy)
    right.number_input("Batch size", 1, CAPS.train_batch, key=settings.BATCH, disabled=busy)
    left.number_input("Training images", 1, 50_000, key=settings.TRAIN_LIMIT, disabled=busy)
    right.number_input("Test images", 1, 10_000, key=settings.TEST_LIMIT, disabled=busy)
    left.number_input("First seed", 0, 2**31 - 1, key=settings.SEED, disabled=busy)
    right.checkbox("Grid", key=settings.GRID, disabled=busy, help="Points on a full grid")


def run_buttons(job: StudyJob | None, busy: bool, cfg: StudyConfig | None) -> None:
    """Start (a new study), Stop, and Resume (a study that ended before its last trial)."""
    state = st.session_state
    start, stop = st.columns(2)
    if start.button("Start", type="primary", disabled=busy or cfg is None, width="stretch"):
        data, why = jobs.study_data(cfg, state[settings.DATA])
        if data is None:
            st.error(f"No CIFAR-10 on this server ({why}); choose the synthetic images.")
        else:
            jobs.submit(cfg, data)
            st.rerun()
    if stop.button("Stop", disabled=not busy, width="stretch"):
        job.cancel("stopped")
        st.rerun()
    unfinished = job is not None and job.state in FINISHED and job.poll().done < job.cfg.n_trials
    if unfinished and st.button("Resume", width="stretch", help="Run the trials it did not finish"):
        jobs.submit(job.cfg, job.data, job.folder)
        st.rerun()
