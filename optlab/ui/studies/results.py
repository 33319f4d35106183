"""The Studies page's results: progress, the fair answer's charts, trials, downloads."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import replace
from typing import Any
from urllib.parse import urlencode

import pandas as pd
import streamlit as st

from optlab.links.cnn import train_to_params
from optlab.study.job import StudyJob, StudySnapshot
from optlab.study.plots import expected_best_figure, trials_box_figure, tuning_figure
from optlab.train.jobs import CANCELLED, FAILED, QUEUED, RUNNING
from optlab.ui.view import columns, show_chart

#: The trials table's columns, in order.
TRIAL_COLUMNS = ("optimizer", "point", "seed", "hparams", "final_test_acc", "final_test_loss")
TRIAL_COLUMNS += ("best_test_acc", "status", "seconds", "node")


def status_line(job: StudyJob, snap: StudySnapshot) -> None:
    """Where the study is: queued, running (trials done of all), or how it ended."""
    engine = snap.doc["engine"]
    where = ""
    if engine.get("version"):
        where = f" on Ray {engine['version']} ({engine['nodes']} node(s), {engine['cpus']} CPUs)"
    if snap.state == QUEUED:
        st.info(
            f"Queued behind other trainings: position {snap.queue_position}. Ray starts "
            "with the first study (a few seconds).",
            icon=":material/hourglass_top:",
        )
    elif snap.state == RUNNING:
        text = f"{snap.done} of {snap.total} trials done{where}"
        st.progress(snap.done / snap.total, text=text)
    elif snap.state in (CANCELLED, FAILED):
        st.warning(
            f"{snap.message.capitalize()}: {snap.done} of {snap.total} trials kept. "
            "**Resume** runs the rest.",
            icon=":material/pause_circle:",
        )
    else:
        st.success(f"All {snap.total} trials done{where}.", icon=":material/check_circle:")


def trials_frame(doc: dict[str, Any]) -> pd.DataFrame:
    """Every finished trial, one row each, with readable column names."""
    rows = []
    for opt in doc["optimizers"]:
        for t in opt["trials"]:
            values = ", ".join(f"{k}={v:.4g}" for k, v in t["hparams"].items())
            rows.append(
                {
                    "optimizer": opt["label"],
                    "point": t["point"],
                    "seed": t["seed"],
                    "hparams": values,
                    "final_test_acc": t["final_test_acc"],
                    "final_test_loss": t["final_test_loss"],
                    "best_test_acc": t["best_test_acc"],
                    "status": t["status"],
                    "seconds": t["seconds"],
                    "node": (t["node"] or "")[:8],
                }
            )
    return pd.DataFrame(rows, columns=list(TRIAL_COLUMNS))


def trials_csv(doc: dict[str, Any]) -> str:
    """The trials as CSV, one column per searched knob."""
    names = sorted({k for o in doc["optimizers"] for t in o["trials"] for k in t["hparams"]})
    out = io.StringIO()
    writer = csv.writer(out)
    head = ["optimizer", "point", "seed", *names, "final_test_acc", "final_test_loss"]
    writer.writerow([*head, "best_test_acc", "status", "seconds", "node"])
    for opt in doc["optimizers"]:
        for t in opt["trials"]:
            writer.writerow(
                [opt["optimizer"], t["point"], t["seed"]]
                + [t["hparams"].get(n, "") for n in names]
                + [t[k] for k in ("final_test_acc", "final_test_loss", "best_test_acc")]
                + [t["status"], f"{t['seconds']:.3f}", t["node"]]
            )
    return out.getvalue()


def race_link(job: StudyJob, doc: dict[str, Any], data: str) -> str | None:
    """The CNN lab's link that trains every optimizer's best point side by side."""
    slots = []
    for slot, opt in zip(job.cfg.base.slots, doc["optimizers"], strict=True):
        if opt["best"] is not None:
            best = slot.optimizer.with_numbers(opt["best"]["hparams"])
            slots.append(replace(slot, optimizer=best))
    if not slots:
        return None
    cfg = replace(job.cfg.base, slots=tuple(slots))
    return "/cnn-lab?" + urlencode(train_to_params(cfg, data), doseq=True)


def results_panel(job: StudyJob, snap: StudySnapshot, data: str) -> None:
    """The charts and tables of the study so far.

    The layout is the same on every poll (warnings in one container, the tabs always
    there), so a redraw replaces each element in place.
    """
    doc = snap.doc
    with st.container():
        for opt in doc["optimizers"]:
            if opt["edge"]:
                st.warning(
                    f"**{opt['label']}**: the best point lies at the edge of the space "
                    f"({'; '.join(opt['edge_notes'])}). Widen the range: a better one may "
                    "lie outside it.",
                    icon=":material/open_in_full:",
                )
    ready = any(opt["points"] for opt in doc["optimizers"])
    best, tuning, spread, table = st.tabs(
        ["Expected best vs trials", "Tuning curves", "All trials", "Trials table"]
    )
    waiting = "The charts appear when the first point has all its seeds."
    with best:
        if ready:
            show_chart(expected_best_figure(doc), "study-expected-best", key="st_expected")
        st.caption(
            "Expected best test accuracy after k trials of random search, drawn with "
            "replacement from this study's points (Dodge et al. 2019). Where the curves "
            "cross, the answer to *which optimizer is better* depends on the tuning budget."
            if ready
            else waiting
        )
    with tuning:
        cols = columns([1] * len(doc["optimizers"]))
        for i, col in enumerate(cols):
            with col:
                if ready:
                    show_chart(tuning_figure(doc, i), f"study-tuning-{i}", key=f"st_tuning_{i}")
        st.caption(
            "Each point: the mean over its seeds; the bar spans its worst to its best seed; "
            "open dots are single seeds. A diverged trial scores chance (10%)."
            if ready
            else waiting
        )
    with spread:
        if ready:
            show_chart(trials_box_figure(doc), "study-trials", key="st_box")
    with table:
        st.dataframe(trials_frame(doc), hide_index=True, width="stretch")
    link = race_link(job, doc, data)
    buttons = st.columns(3)
    if link is not None:
        buttons[0].link_button(
            "Race the best configs in the CNN lab", link, icon=":material/sports_score:"
        )
    buttons[1].download_button(
        "Study JSON",
        json.dumps(doc, indent=1, allow_nan=False),
        file_name="study.json",
        mime="application/json",
        icon=":material/download:",
    )
    buttons[2].download_button(
        "Trials CSV",
        trials_csv(doc),
        file_name="study-trials.csv",
        mime="text/csv",
        icon=":material/download:",
    )
