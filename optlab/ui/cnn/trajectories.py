"""The CNN lab's Trajectories view: every optimizer's path through the network's
weights on a plane of its loss landscape, and its sharpness, live.

The training job keeps weight snapshots (`optlab.train.snapshots`); each poll
projects them on the plane (cheap, `optlab.train.trajectories.project_runs`),
so the paths grow while the run trains. The landscape under them is the costly
part: a background thread computes it (`landscape_passes`: a 7×7 pass first, so
a picture appears within seconds, then the full grid, the straight lines and
each snapshot's true loss) when asked, when the run ends, and, on the
endpoints plane, every `REFRESH_SHARE` of the run while it trains (that plane
moves with the endpoints). A computation holds one of the server's engine
slots (`optlab.ui.engine`), so a workshop's landscapes queue behind each other
instead of all slowing training down at once, and takes turns (between two
chunks) with the pages' runs waiting for it. Nothing here calls ``st.*``
from the thread.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import streamlit as st

from optlab.train import trajectory_plots as plots
from optlab.train.jobs import FINISHED, Job, JobSnapshot
from optlab.train.landscape import MAX_IMAGES, MAX_RESOLUTION
from optlab.train.trajectories import (
    LandscapeResult,
    LandscapeSettings,
    build_plane,
    evaluation_images,
    landscape_passes,
    project_runs,
)
from optlab.ui.engine import EngineTurns, Turn, run_slots
from optlab.ui.view import show_chart

#: Session keys of the view's settings and its computation.
PLANE, GRID, IMAGES, TASK, PATHS = (
    "cnn_traj_plane",
    "cnn_traj_grid",
    "cnn_traj_images",
    "cnn_traj_task",
    "cnn_traj_paths",
)
PLANE_WORDS = {
    "endpoints": "endpoints: θ₀ and the first two optimizers' latest weights",
    "pca": "pca: the top two principal directions of all snapshots",
    "random": "random: two filter-normalised directions around the first optimizer",
}
#: The page's landscape: 15×15 on 256 images takes about 15 s on two cores; a
#: user can raise both (to the caps) and sees what it costs.
DEFAULT_GRID, DEFAULT_IMAGES = 15, 256
IMAGE_CHOICES = (64, 128, 256, 512, 1024, 2048)
#: On the endpoints plane the landscape is recomputed while training each time
#: the run has advanced this share of its steps.
REFRESH_SHARE = 0.25


@dataclass
class LandscapeTask:
    """One landscape computing (or computed) in a background thread for a job.

    The thread writes ``done``/``total``, ``result`` (each pass's), ``error``
    and ``finished``; the page only reads them.
    """

    job_id: int
    step: int
    settings: LandscapeSettings
    images: int
    done: int = 0
    total: int = 0
    waiting: bool = True
    result: LandscapeResult | None = None
    error: str | None = None
    finished: bool = False
    stop: threading.Event = field(default_factory=threading.Event)


def _compute(task: LandscapeTask, job: Job, names: list[str], slots: EngineTurns) -> None:
    turn: Turn | None = None

    def progress(done: int, total: int) -> None:
        task.done, task.total = done, total
        if turn is not None:
            turn.share()

    try:
        with slots.turn() as turn:
            task.waiting = False
            view = job.snapshot_weights()
            if view is None:
                raise ValueError("this run keeps no weight snapshots")
            images, labels = evaluation_images(job.data, job.cfg, task.images)
            for result in landscape_passes(
                job.cfg.model,
                names,
                view.steps,
                view.rows,
                images,
                labels,
                task.settings,
                on_progress=progress,
                should_stop=task.stop.is_set,
            ):
                task.result = result
    except ValueError as err:
        task.error = str(err)
    except Exception as err:  # a failed landscape must not take the page down
        task.error = f"{type(err).__name__}: {err}"
    finally:
        task.finished = True


def computing(job: Job) -> bool:
    """Whether a landscape of ``job`` is computing for this browser (the page keeps
    polling until it is done)."""
    task: LandscapeTask | None = st.session_state.get(TASK)
    return task is not None and task.job_id == job.id and not task.finished


def _start(job: Job, names: list[str], step: int, settings: LandscapeSettings, images: int) -> None:
    """Starts a landscape computation and reruns the page, which polls while it runs."""
    old: LandscapeTask | None = st.session_state.get(TASK)
    if old is not None:
        old.stop.set()
    task = LandscapeTask(job.id, step, settings, images)
    st.session_state[TASK] = task
    threading.Thread(
        target=_compute, args=(task, job, names, run_slots()), name="optlab-landscape", daemon=True
    ).start()
    st.rerun(scope="app")


def _settings(n_optimizers: int, train_images: int) -> tuple[LandscapeSettings, int]:
    kinds = list(PLANE_WORDS) if n_optimizers >= 2 else ["pca", "random"]
    if st.session_state.get(PLANE) not in kinds:
        st.session_state[PLANE] = kinds[0]
    c1, c2, c3 = st.columns([3, 1, 1])
    kind = c1.selectbox("Plane", kinds, key=PLANE, format_func=PLANE_WORDS.get, help=_PLANE_HELP)
    grid = c2.number_input(
        "Grid points per axis",
        min_value=3,
        max_value=MAX_RESOLUTION,
        value=DEFAULT_GRID,
        key=GRID,
        help="G×G weight vectors, each evaluated on the evaluation images.",
    )
    choices = [m for m in IMAGE_CHOICES if m <= min(MAX_IMAGES, train_images)] or [train_images]
    images = c3.selectbox(
        "Evaluation images",
        choices,
        index=choices.index(DEFAULT_IMAGES) if DEFAULT_IMAGES in choices else len(choices) - 1,
        key=IMAGES,
        help="The first M training images in file order, normalised as in training; "
        "the model in eval mode.",
    )
    return LandscapeSettings(plane=kind, grid=int(grid)), int(images)


_PLANE_HELP = (
    "Coordinates (a, b) are parameter-space L2 distances along the plane's two unit "
    "directions from θ₀, the shared initial weights. A point's residual is how far its "
    "weights lie off the plane, as a share of its distance from θ₀."
)


def _paths(job: Job, snapshot: JobSnapshot, names: list[str], plane) -> list[dict] | None:
    """The runs' projections on ``plane`` for this poll's snapshots, cached per
    (job, snapshot steps, plane): a poll without a new snapshot costs nothing."""
    key = (job.id, snapshot.snapshot_steps, id(plane), tuple(names))
    cached = st.session_state.get(PATHS)
    if cached is not None and cached[0] == key:
        return cached[1]
    view = job.snapshot_weights()
    if view is None or len(view.steps) < 2:
        return None
    runs = [run.to_json() for run in project_runs(plane, view.steps, view.rows, names)]
    st.session_state[PATHS] = (key, runs, plane)
    return runs


def _live_plane(job: Job, names: list[str], settings: LandscapeSettings):
    view = job.snapshot_weights()
    if view is None or len(view.steps) < 2:
        return None
    key = (job.id, tuple(view.steps), settings.plane)
    cached = st.session_state.get(PATHS)
    if cached is not None and cached[0][:2] == key[:2] and cached[2].kind == settings.plane:
        return cached[2]
    return build_plane(settings.plane, job.cfg.model, names, view.rows, settings.seed)


def _due(task: LandscapeTask | None, job: Job, snapshot: JobSnapshot, settings) -> bool:
    """Whether to start a landscape now without a click: at the end of a run (once),
    and on the endpoints plane every `REFRESH_SHARE` of the run while it trains."""
    steps = snapshot.snapshot_steps
    if len(steps) < 2 or (task is not None and task.job_id == job.id and not task.finished):
        return False
    if task is not None and task.job_id == job.id and task.error:
        return False
    last = task.step if task is not None and task.job_id == job.id else 0
    if snapshot.state in FINISHED:
        return last < steps[-1]
    if settings.plane != "endpoints":
        return task is None or task.job_id != job.id
    return steps[-1] - last >= REFRESH_SHARE * max(snapshot.total_steps, 1)


def trajectories_panel(job: Job, snapshot: JobSnapshot, names: list[str]) -> None:
    """The Trajectories view of one poll."""
    if job.cfg.snapshot_every is None:
        st.info(
            "This run keeps no weight snapshots, so it has no trajectories: start a new "
            "run (snapshots are on by default) to see them.",
            icon=":material/info:",
        )
        return
    settings, images = _settings(len(names), len(job.data.train.head(job.cfg.train_limit).labels))
    task: LandscapeTask | None = st.session_state.get(TASK)
    if task is not None and task.job_id != job.id:
        task.stop.set()
        task = None
    steps = snapshot.snapshot_steps
    if st.button("Compute the landscape", icon=":material/landscape:", key="cnn_traj_go"):
        _start(job, names, steps[-1] if steps else 0, settings, images)
    elif _due(task, job, snapshot, settings):
        _start(job, names, steps[-1], settings, images)
    task = st.session_state.get(TASK)
    _status(task)
    result = task.result if task is not None else None
    if result is not None:
        doc = result.to_json()
        runs = _paths(job, snapshot, names, result.plane) or doc["runs"]
        evaluated = {r["optimizer"]: r for r in doc["runs"]}
        for run in runs:
            done = evaluated.get(run["optimizer"])
            if done and done.get("loss") and done["steps"] == run["steps"]:
                run["loss"] = done["loss"]
        doc["runs"] = runs
    else:
        try:
            plane = _live_plane(job, names, settings)
        except ValueError as err:
            st.warning(f"No plane yet: {err}")
            return
        if plane is None:
            st.caption("The paths appear after the second snapshot.")
            return
        doc = {
            "plane": {"kind": plane.kind, "optimizers": list(plane.optimizers)},
            "a": None,
            "b": None,
            "loss": None,
            "lines": [],
            "runs": _paths(job, snapshot, names, plane) or [],
        }
    _charts(doc, snapshot, names)


def _status(task: LandscapeTask | None) -> None:
    if task is None:
        return
    if task.error:
        st.error(f"The landscape failed: {task.error}", icon=":material/error:")
    elif task.waiting:
        st.caption("Landscape: waiting for a free engine slot (other users are computing)…")
    elif not task.finished:
        share = task.done / task.total if task.total else 0.0
        st.progress(
            share,
            text=f"Computing the landscape at step {task.step:,}: {task.done:,} of "
            f"{task.total:,} weight vectors evaluated"
            + (" (coarse 7×7 shown)" if task.result is not None else ""),
        )
    elif task.result is not None:
        result = task.result
        g = len(result.grid.a)
        st.caption(
            f"Landscape of step {task.step:,}: {g}×{g} grid, mean cross-entropy on the first "
            f"{result.eval_images:,} training images (eval mode)."
        )


def _residual_words(runs: list[dict]) -> str:
    worst = [
        (max((r for r in run["residual"] if r is not None), default=0.0), run["optimizer"])
        for run in runs
    ]
    if not worst:
        return ""
    value, name = max(worst)
    return (
        f"Largest residual: {100 * value:.3g}% ({name}): the share of a snapshot's distance "
        "from θ₀ that lies off this plane. "
    )


def _charts(doc: dict, snapshot: JobSnapshot, names: list[str]) -> None:
    plane_tab, surface_tab, lines_tab, sharp_tab = st.tabs(
        ["Paths on the landscape", "3-D", "Straight lines", "Sharpness"],
        key="cnn_traj_tab",
        on_change="rerun",
    )
    if plane_tab.open:
        with plane_tab:
            show_chart(plots.landscape_figure(doc), "cnn-landscape", key="cnn_landscape")
            st.caption(
                _residual_words(doc["runs"])
                + "Paths grow with every snapshot; the contour is the loss on the plane "
                "where it was last computed."
            )
    if surface_tab.open:
        with surface_tab:
            if doc["loss"] is None:
                st.caption("The 3-D view appears with the first landscape.")
            else:
                show_chart(plots.landscape_3d(doc), "cnn-landscape-3d", key="cnn_landscape_3d")
    if lines_tab.open:
        with lines_tab:
            if not doc["lines"]:
                st.caption("The straight lines are computed with the full landscape.")
            else:
                show_chart(plots.lines_figure(doc), "cnn-lines", key="cnn_lines")
                st.caption(
                    "The loss along straight lines in weight space (Goodfellow et al. 2015). "
                    "A bump on the line between two optimizers is the barrier between "
                    "their solutions."
                )
    if sharp_tab.open:
        with sharp_tab:
            sharpness_panel(snapshot, names)


def sharpness_panel(snapshot: JobSnapshot, names: list[str]) -> None:
    """Each optimizer's sharpness against its stability threshold."""
    records = [[r.to_dict() for r in recs] for recs in snapshot.sharpness]
    if not any(records):
        st.caption("No sharpness measured yet: it is measured every few steps.")
        return
    show_chart(plots.sharpness_figure(names, records), "cnn-sharpness", key="cnn_sharpness")
    st.caption(SHARPNESS_NOTE)


SHARPNESS_NOTE = (
    "λ_max(H): the top eigenvalue of the Hessian of the mean cross-entropy on the first "
    "training images (un-augmented), by Lanczos on Hessian-vector products. Gradient "
    "descent on a quadratic is stable while λ_max < 2/η; with heavy-ball momentum μ the "
    "bound is (2 + 2μ)/η (Cohen et al., ICLR 2021). For Adam and AdamW the quantity "
    "compared is the preconditioned sharpness λ₁(P⁻¹H), P = diag(√v_t / √(1 − β₂ᵗ) + ε) as "
    "torch's step divides by it, against (2 + 2β₁)/((1 − β₁)η) (Cohen et al. 2022). The "
    "edge of stability is where a curve meets its dashed threshold."
)
