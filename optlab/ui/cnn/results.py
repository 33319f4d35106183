"""What the CNN page shows of a job: live progress and charts, then the trained models.

`live_panel` draws one poll (status, progress, curves, results table) and is
called by the page's polling fragment; `model_panel` reads the finished
models (confusion matrix, test images with predictions, the optimizer's own
``state_dict()``); `downloads` offers the checkpoint and the run's JSON.
"""

from __future__ import annotations

import functools
import json
import math

import pandas as pd
import streamlit as st

from optlab.charts import color
from optlab.export import figures_html
from optlab.optim.packs import library_of
from optlab.optim.plans import Change
from optlab.optim.split import SplitOptimizer
from optlab.script.train import data_folder_hint, train_script
from optlab.train import plots as train_plots
from optlab.train.checkpoint import checkpoint_bytes
from optlab.train.jobs import CANCELLED, DONE, FAILED, FINISHED, QUEUED, Job, JobSnapshot
from optlab.train.report import (
    RESULT_HELP,
    RunLog,
    confusion_matrix,
    param_group_rows,
    prediction_examples,
    results_cells,
    run_document,
    speed_text,
    state_rows,
)
from optlab.train.run import DIVERGED, IMAGES_PER_S, RUNNING
from optlab.train.sharing import JOINED, REPLAYED
from optlab.ui.cnn import jobs
from optlab.ui.cnn.table import HEADERS, result_columns, row_height
from optlab.ui.cnn.trajectories import trajectories_panel
from optlab.ui.view import show_chart, show_shared_chart

#: The live panel's tabs: the curves, or the paths through the weights (built only
#: when open).
VIEW = "cnn_view"
#: A live change that forked a shared run: the fork's job id and what it changed.
FORKED = "cnn_forked"


def _clock(seconds: float) -> str:
    seconds = max(0, round(seconds))
    return f"{seconds // 60}:{seconds % 60:02d}"


def _progress(snapshot: JobSnapshot, job: Job) -> None:
    session = job.session
    step, total, first = snapshot.step, snapshot.total_steps, snapshot.first_step
    done, elapsed = step - first, snapshot.elapsed_s
    parts = [f"Step {step:,} of {total:,}"]
    if session is not None:
        epochs = math.ceil(total / session.per_epoch)
        parts.append(f"epoch {min(step // session.per_epoch + 1, epochs)} of {epochs}")
    if snapshot.images_per_s is not None:
        parts.append(speed_text(snapshot.images_per_s))
    if done > 0 and elapsed > 0 and snapshot.state == RUNNING:
        parts.append(f"ETA {_clock((total - step) * elapsed / done)}")
    st.progress(min(step / total, 1.0) if total else 0.0, text=" · ".join(parts))


def _wait_text(job: Job) -> str:
    """The estimated wait of a queued job, in words."""
    wait = jobs.job_registry().estimated_wait_s(job)
    if wait is None:
        return "The wait is estimated once a training here has measured its speed."
    return (
        f"About {_clock(wait)} to wait, estimated from the speed measured on this server "
        "and the steps left ahead of you."
    )


def _sharing(snapshot: JobSnapshot, how: str) -> None:
    """Why this browser sees a run it did not start, and who else watches it."""
    others = snapshot.watching - 1
    watching = (
        f"**{snapshot.watching} people are watching this run.** " if snapshot.watching > 1 else ""
    )
    if how == JOINED and snapshot.state in (QUEUED, RUNNING):
        st.info(
            f"{watching}Someone on this server started this identical comparison (the same "
            "data, model, optimizers and settings, seed and length), so you joined their "
            "training instead of queueing a second one: you see it from step 1. **Stop** "
            "stops it for you only; it stops when nobody watches it. Changing a running "
            "optimizer gives you your own copy of the run from that step.",
            icon=":material/group:",
        )
    elif how == REPLAYED:
        st.info(
            "This identical comparison (the same data, model, optimizers and settings, seed "
            "and length) finished earlier on this server, so its results are replayed at "
            "once: the same curves and trained models it would train again.",
            icon=":material/replay:",
        )
    elif others > 0 and snapshot.state in (QUEUED, RUNNING):
        st.info(
            f"{watching}Others pressed Start on this identical comparison and joined your "
            "run instead of queueing theirs. **Stop** stops it for you only.",
            icon=":material/group:",
        )


def _status(snapshot: JobSnapshot, job: Job) -> None:
    state = snapshot.state
    if error := st.session_state.pop(jobs.STOP_ERROR, None):
        st.error(error, icon=":material/error:")
    _sharing(snapshot, jobs.how_started())
    forked = st.session_state.get(FORKED)
    if forked is not None and forked[0] == job.id:
        st.success(forked[1], icon=":material/fork_right:")
    if state == QUEUED:
        running = jobs.job_registry().max_running
        st.info(
            f"Waiting for a free trainer: number {snapshot.queue_position} in the queue "
            f"({running} training{'s' if running > 1 else ''} at a time on this server). "
            + _wait_text(job),
            icon=":material/hourglass_top:",
        )
        return
    _progress(snapshot, job)
    if job.autosave is not None and job.autosave.error:
        st.caption(f"⚠ {job.autosave.error}: a server restart would lose this run's progress.")
    took = f"in {_clock(snapshot.elapsed_s)}"
    if state == DONE and jobs.how_started() == REPLAYED:
        st.success(f"Replayed {snapshot.total_steps:,} steps.", icon=":material/check:")
    elif state == DONE:
        st.success(f"Finished {snapshot.total_steps:,} steps {took}.", icon=":material/check:")
    elif state == CANCELLED:
        st.warning(
            f"Stopped at step {snapshot.step:,} ({snapshot.message}). "
            "Download its checkpoint below to resume it later.",
            icon=":material/stop_circle:",
        )
    elif state == FAILED:
        st.error(snapshot.message, icon=":material/error:")


def results_table(logs: list[RunLog], snapshot: JobSnapshot) -> None:
    """One row per optimizer: accuracy, losses, compute time per step, status; under
    it, the run's images/s and what that means."""
    rows = results_cells(logs)
    if snapshot.state in (CANCELLED, FAILED):
        ended = "stopped" if snapshot.state == CANCELLED else "failed"
        for row in rows:
            if row["status"] == RUNNING:
                row["status"] = f"{ended} at step {snapshot.step:,}"
    table = pd.DataFrame([{k: row[k] for k in HEADERS} for row in rows])
    st.dataframe(
        table,
        hide_index=True,
        column_config=result_columns(rows, RESULT_HELP),
        row_height=row_height(rows),
        width="stretch",
    )
    costs = " · ".join(f"{row['optimizer']} {row['step_ms']} ms" for row in rows)
    st.caption(
        "Compute per step (each optimizer's own forward, backward and step(), "
        f"averaged; a cost, not the run's speed): {costs}."
    )
    if snapshot.images_per_s is not None:
        st.caption(f"Speed: {speed_text(snapshot.images_per_s)}, {IMAGES_PER_S}.")


def live_panel(
    job: Job, snapshot: JobSnapshot, logs: list[RunLog], interval: float = jobs.POLL_S
) -> None:
    """One redraw of a job: status and progress, the curves or the trajectories, the
    results table.

    A queued job shows its place in the queue only: a workshop's waiting
    browsers poll too, and must cost the server next to nothing.
    """
    _status(snapshot, job)
    if interval > jobs.POLL_S and snapshot.state in (QUEUED, RUNNING):
        st.caption(
            f"Redrawn every {interval:.0f} s while {snapshot.watching} people watch, so the "
            "server's time goes to the training."
        )
    if snapshot.state == QUEUED:
        return
    if snapshot.state == RUNNING and job.session is not None:
        live_change_form(job, logs)
    curves, paths = st.tabs(["Curves", "Trajectories"], key=VIEW, on_change="rerun")
    if curves.open:
        with curves:
            # Every watcher of a shared run polls it every `POLL_S` or more: the
            # figure is built at most twice an interval for all of them.
            show_shared_chart(
                lambda: train_plots.live_figure(logs),
                ("cnn-live", job.id),
                len(snapshot.records) + len(job.session.applied if job.session else ()),
                "cnn-curves",
                max_age_s=0.0 if snapshot.state in FINISHED else interval / 2,
                key="cnn_live_chart",
            )
    if paths.open:
        with paths:
            trajectories_panel(job, snapshot, [log.label for log in logs])
    st.subheader("Results")
    results_table(logs, snapshot)


def live_change_form(job: Job, logs: list[RunLog]) -> None:
    """Changes an option of a running optimizer at its next step, without a restart."""
    session = job.session
    labels = [log.label for log in logs]  # what each trains with now
    started = [slot.label for slot in job.cfg.slots]  # what each was called when changed
    with st.expander("Change a running optimizer (takes effect at the next step)"):
        c1, c2, c3 = st.columns([3, 2, 2])
        index = c1.selectbox(
            "Optimizer",
            range(len(labels)),
            format_func=labels.__getitem__,
            key="cnn_live_opt",
            persist_state="session",
        )
        spec = job.cfg.slots[index].optimizer.spec
        numeric = [hp.name for hp in spec.hparams if hp.kind in ("float", "int")]
        name = c2.selectbox("Option", numeric, key="cnn_live_name", persist_state="session")
        # "every group": while its features are frozen, a slot has the classifier's alone.
        groups = {None: "every group", "features": "features", "classifier": "classifier"}
        group = c3.selectbox(
            "Group",
            list(groups),
            format_func=groups.__getitem__,
            key="cnn_live_group",
            persist_state="session",
        )
        companion = job.cfg.slots[index].companion
        if companion is not None:
            st.caption(
                f"{spec.label} and {companion.spec.label} step together: a change reaches "
                "every group of either that has the option (lr and weight_decay both, "
                f"momentum {spec.label}'s only)."
            )
        c1, c2, c3 = st.columns([2, 2, 3])
        how = c1.radio(
            "How",
            ["set to", "multiply by"],
            key="cnn_live_how",
            persist_state="session",
            horizontal=True,
        )
        st.session_state.setdefault("cnn_live_value", 0.1)
        value = c2.number_input("Value", format="%g", key="cnn_live_value", persist_state="session")
        if c3.button("Apply at the next step", key="cnn_live_apply", width="stretch"):
            try:
                change = Change(session.step, name, float(value), how == "multiply by", group)
                mine = jobs.change(job, index, change)
            except (ValueError, TimeoutError) as err:
                st.error(f"Not applied: {err}")
            else:
                what = change.describe().split(", ", 1)[1]
                if mine is not job:
                    st.session_state[FORKED] = (
                        mine.id,
                        f"{labels[index]}: {what} from step {mine.session.step + 1:,}, on your "
                        "own copy of the shared run (the others' run goes on unchanged).",
                    )
                    st.rerun()  # the whole page: it shows the copy from now on
                st.toast(f"{labels[index]}: {what} at the next step")
        for step, i, change in list(session.live_changes):
            what = change.describe().split(", ", 1)[1]
            st.caption(f"Applied before step {step + 1}: {started[i]}, {what}.")


def _optimizer_state(job: Job, index: int) -> None:
    session = job.session
    optimizer, model = session.optimizers[index], session.models[index]
    st.markdown(
        f"`{type(optimizer).__name__}` after {session.step:,} steps. "
        "`optimizer.state_dict()` holds two things: **param_groups**, each group's "
        "options (a scheduler changes their `lr`), and **state**, what the optimizer "
        "keeps per parameter between steps (keyed by parameter index in the "
        "`state_dict()`; named here)."
    )
    if isinstance(optimizer, SplitOptimizer):
        matrices, rest = (type(part).__name__ for part in optimizer.parts)
        st.markdown(
            f"Two optimizers in one step(): `torch.optim.{matrices}` on the 2-D weights (the "
            f"Linear layers) and `torch.optim.{rest}` on the rest (conv kernels, biases); each "
            "group below names its own, and `state_dict()` holds both."
        )
    st.caption("param_groups")
    st.dataframe(pd.DataFrame(param_group_rows(optimizer)), hide_index=True, width="stretch")
    rows = state_rows(optimizer, model)
    st.caption(f"state ({len(rows)} entries)")
    if rows:
        height = "auto" if len(rows) <= 12 else 460
        st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch", height=height)
    else:
        st.write("Empty: this optimizer keeps nothing between steps (plain SGD does not).")


def model_panel(job: Job, logs: list[RunLog]) -> None:
    """The trained models: confusion matrix, test images, optimizer state."""
    session = job.session
    if session is None or session.step == 0:
        return
    names = [log.label for log in logs]
    st.subheader("Inside the trained models")
    index = st.radio(
        "Optimizer",
        range(len(names)),
        format_func=names.__getitem__,
        horizontal=True,
        key="cnn_pick",
        persist_state="session",
    )
    st.markdown(
        f"<span style='color:{color(index)};font-size:1.3em'>●</span> **{names[index]}**",
        unsafe_allow_html=True,
    )
    if logs[index].status == DIVERGED:
        st.warning(f"This optimizer {logs[index].status_text()}: its weights are not finite.")
    classes = job.data.classes
    labels = session.test_labels
    predicted = jobs.predictions(job)[index]
    matrix_tab, images_tab, state_tab = st.tabs(
        ["Confusion matrix", "Test images", "optimizer.state_dict()"]
    )
    with matrix_tab:
        matrix = confusion_matrix(labels, predicted, len(classes))
        show_chart(
            train_plots.confusion_figure(
                matrix, classes, f"{names[index]} at step {session.step:,}"
            ),
            "cnn-confusion",
            key="cnn_confusion",
        )
    with images_tab:
        examples = prediction_examples(session.test_images, labels, predicted, classes, count=30)
        right = sum(ok for _, _, ok in examples)
        st.caption(
            f"The first {len(examples)} test images: ✓ true class, or ✗ true → predicted "
            f"({right} of {len(examples)} right)."
        )
        st.image([e[0] for e in examples], caption=[e[1] for e in examples], width=96)
    with state_tab:
        _optimizer_state(job, index)


def _json_bytes(job: Job, logs: list[RunLog]) -> bytes:
    doc = run_document(job.session, logs, job.data.source, job.data.kind)
    return json.dumps(doc, allow_nan=False).encode()


def _curves_html(job: Job, logs: list[RunLog]) -> str:
    session = job.session
    classes = job.data.classes
    figures = [("Training curves", train_plots.live_figure(logs))]
    for i, log in enumerate(logs):
        matrix = confusion_matrix(session.test_labels, session.predict(i), len(classes))
        title = f"{log.label} at step {session.step:,}"
        figures.append(
            (
                f"Confusion matrix: {log.label}",
                train_plots.confusion_figure(matrix, classes, title),
            )
        )
    note = f"{job.data.source}; {session.step} steps of {job.cfg.batch_size} images."
    return figures_html("OptLab CNN lab", figures, note)


def downloads(job: Job, logs: list[RunLog]) -> None:
    """The checkpoint (to resume later) and the run as JSON, built when clicked."""
    session = job.session
    if session is None or session.step == 0:
        return
    c1, c2, c3, c4 = st.columns([1, 1, 1.3, 1.2])
    c1.download_button(
        "Download checkpoint",
        data=functools.partial(checkpoint_bytes, session),
        file_name=f"optlab-cnn-step{session.step}.pt",
        mime="application/octet-stream",
        on_click="ignore",
        icon=":material/save:",
        help="Weights, optimizer and scheduler state_dict()s, data order and history: "
        "upload it in the sidebar to go on jobs.",
    )
    c2.download_button(
        "Download JSON",
        data=functools.partial(_json_bytes, job, list(logs)),
        file_name="optlab-cnn-run.json",
        mime="application/json",
        on_click="ignore",
        icon=":material/data_object:",
    )
    c3.download_button(
        "Download interactive HTML",
        data=functools.partial(_curves_html, job, list(logs)),
        file_name="optlab-cnn-curves.html",
        mime="text/html",
        on_click="ignore",
        icon=":material/monitoring:",
        help="The live curves and every optimizer's confusion matrix as one offline HTML file.",
    )
    packed = [s.optimizer.label for s in job.cfg.slots if library_of(s.optimizer.spec.factory)]
    if job.data.synthetic:
        c4.caption("Export as script needs CIFAR-10: the synthetic set exists only here.")
    elif packed:
        c4.caption(
            f"No script export with {', '.join(packed)}: an optimizer pack's optimizer needs "
            "its library, and an exported script needs only torch."
        )
    else:
        c4.download_button(
            "Export as script",
            data=functools.partial(
                train_script,
                job.cfg,
                data_folder_hint(job.data.kind, st.session_state.get("cnn_data_dir") or None),
                data_kind=job.data.kind,
            ),
            file_name="optlab-cnn.py",
            mime="text/x-python",
            on_click="ignore",
            icon=":material/code:",
            help="A standalone Python file (torch only, plus the CIFAR-10 folder) that "
            "repeats this comparison's planned run and prints its final test results.",
        )
