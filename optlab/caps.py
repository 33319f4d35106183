"""Every resource cap of a shared server, in one place, with environment overrides.

A workshop server is one machine for thirty browsers: every request is
bounded, and the engine itself checks the bounds (the widgets' limits are
only a convenience). The defaults suit a 2-core laptop; the operator can
change any cap with an environment variable named after it, e.g.
``OPTLAB_CAP_SURFACE_STEPS=10000`` or ``OPTLAB_CAP_JOBS_RUNNING=2``, read once
at start-up. A value that is not a positive number below 2^53 is ignored
with a message (`CAP_MESSAGES`, logged), never a crash.

==========================  =========  =============================================
cap                         default    what it bounds
==========================  =========  =============================================
surface_steps               5000       steps of one 2-D run
surface_optimizers          8          optimizers compared on one surface
surface_evaluations         200000     f evaluations per optimizer (L-BFGS)
surface_seeds               10         noise seeds of one 2-D comparison
lbfgs_max_iter              200        L-BFGS's max_iter: iterations of one step
lbfgs_max_eval              250        L-BFGS's max_eval: f evaluations of one step
lbfgs_history               1000       L-BFGS's history_size: pairs kept in memory
sweep_resolution            200        points per sweep axis
sweep_cell_steps            20000000   cells x steps of one sweep
train_optimizers            4          optimizers of one CNN comparison
train_steps                 100000     steps of one CNN comparison
train_epochs                200        epochs of one CNN comparison
train_batch                 1024       images per step
sharpness_images            1024       images whose loss Hessian a sharpness
                                       estimate takes
sharpness_iterations        100        Hessian-vector products of one sharpness
                                       eigenvalue
formula_length              500        characters of a typed formula
formula_nodes               300        syntax-tree nodes of a formula
formula_depth               100        nesting depth of a formula
checkpoint_mb               64         size of a checkpoint file, plus snapshot_mb
                                       for its weight snapshots (the page's
                                       upload is also capped by Streamlit's
                                       server.maxUploadSize, 20 MB here)
download_mb                 1024       size of a CIFAR-10 download
jobs_running                0          CNN trainings at once (0: one per 2 cores)
training_nice               0          how far below the pages' a training's CPU
                                       priority is (a Linux nice value, 0 to 19;
                                       0: the same; ``make workshop`` sets 10)
job_runtime_s               900        wall-clock limit of one training
job_idle_s                  30         a job nobody polls for this long stops
autosave_steps              50         steps between two autosaved checkpoints of a
                                       CNN job (what a killed server can lose)
saved_runs                  20         interrupted runs kept in the runs folder
                                       (the oldest beyond it are deleted)
result_store_mb             256        finished comparisons kept in the runs folder
                                       for replay (the least recently replayed
                                       beyond it are deleted)
page_runs                   2          2-D runs and sweeps computing at once
page_turn_ms                50         how long one of them computes before it
                                       passes its slot to a waiting one (round
                                       robin; `optlab.ui.engine`)
page_run_s                  30         time budget of one 2-D run on a page, in
                                       seconds of its own computing (CPU time)
engine_process              0          1: 2-D runs and sweeps compute in an engine
                                       process beside each server
                                       (`optlab.worker`, about 300 MB; ``make
                                       workshop`` sets 1: docs/load-test.md); 0:
                                       in the pages' own threads
page_python                 2          page scripts of one server running Python at
                                       once (the others wait without holding the
                                       interpreter; `optlab.turns`); 0: no limit
landscape_resolution        51         points per axis of a CNN loss-landscape grid
                                       (a loss line may have its square)
landscape_images            2048       evaluation images of a loss landscape
landscape_chunk_mb          256        memory of one batched landscape chunk
                                       (weights x images evaluated at once)
snapshot_mb                 200        memory of one CNN job's weight snapshots, all
                                       optimizers together (past it every second
                                       one is dropped and the interval doubles)
study_trials                256        points per optimizer of one tuning study
study_seeds                 10         training seeds per point of a study
study_steps                 200000     trained steps of one study, all trials together
                                       (about 2.5 hours on a 2-core laptop)
rooms                       50         workshop rooms open at once on one server
room_attendees              150        attendees who may join one room
room_entries                1000       leaderboard entries of one challenge
room_name_length            30         characters of an attendee's display name
room_idle_s                 14400      a room nobody used for this long (4 h) expires
workshop_replicas           16         `streamlit run` replicas behind HAProxy of one
                                       ``python -m optlab workshop`` (about one per
                                       core is useful)
==========================  =========  =============================================

One more rule is not a number: a browser runs one CNN training at a time.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace

ENV_PREFIX = "OPTLAB_CAP_"
#: The largest integer a browser holds exactly (JavaScript numbers are doubles): the
#: most a cap, a seed or any whole number a widget shows may be.
MAX_EXACT_INT = 2**53 - 1
MAX_CAP = MAX_EXACT_INT
#: CIFAR-10's training and test images: the most any subset (a page's input, a
#: share link, a synthetic stand-in) may ask for.
CIFAR_TRAIN_IMAGES, CIFAR_TEST_IMAGES = 50_000, 10_000
#: The synthetic set's (train, test) size where a run asks for "all" images.
SYNTHETIC_IMAGES = (5_000, 1_000)
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Caps:
    """The caps (see the module docstring for each one's meaning)."""

    surface_steps: int = 5000
    surface_optimizers: int = 8
    surface_evaluations: int = 200_000
    surface_seeds: int = 10
    lbfgs_max_iter: int = 200
    lbfgs_max_eval: int = 250
    lbfgs_history: int = 1000
    sweep_resolution: int = 200
    sweep_cell_steps: int = 20_000_000
    train_optimizers: int = 4
    train_steps: int = 100_000
    train_epochs: int = 200
    train_batch: int = 1024
    sharpness_images: int = 1024
    sharpness_iterations: int = 100
    formula_length: int = 500
    formula_nodes: int = 300
    formula_depth: int = 100
    checkpoint_mb: int = 64
    download_mb: int = 1024
    jobs_running: int = 0
    training_nice: int = 0
    job_runtime_s: float = 900.0
    job_idle_s: float = 30.0
    autosave_steps: int = 50
    saved_runs: int = 20
    result_store_mb: int = 256
    page_runs: int = 2
    page_turn_ms: int = 50
    page_run_s: float = 30.0
    engine_process: int = 0
    page_python: int = 2
    landscape_resolution: int = 51
    landscape_images: int = 2048
    landscape_chunk_mb: int = 256
    snapshot_mb: int = 200
    study_trials: int = 256
    study_seeds: int = 10
    study_steps: int = 200_000
    rooms: int = 50
    room_attendees: int = 150
    room_entries: int = 1000
    room_name_length: int = 30
    room_idle_s: float = 14_400.0
    workshop_replicas: int = 16

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> tuple[Caps, list[str]]:
        """The defaults with ``OPTLAB_CAP_<NAME>`` overrides; and a message per bad one."""
        env = os.environ if environ is None else environ
        caps, messages = cls(), []
        for f in fields(cls):
            raw = env.get(ENV_PREFIX + f.name.upper())
            if raw is None or not raw.strip():
                continue
            kind = int if f.type in ("int", int) else float
            try:
                value = kind(raw.strip())
            except ValueError:
                value = None
            zero_ok = f.name in ("jobs_running", "training_nice", "engine_process", "page_python")
            # Finite and below 2^53: caps also bound widgets, which browsers hold as doubles
            # (inf, 1e400 or a 30-digit number would break every page that draws one).
            bad = value is None or value != value or not 0 <= value <= MAX_CAP
            if bad or (value == 0 and not zero_ok):
                messages.append(
                    f"{ENV_PREFIX}{f.name.upper()}={raw!r} ignored: expected a positive "
                    f"{'whole ' if kind is int else ''}number below 2^53; "
                    f"keeping {getattr(caps, f.name)}"
                )
                continue
            caps = replace(caps, **{f.name: value})
            messages.append(f"{ENV_PREFIX}{f.name.upper()} = {value}")
        return caps, messages

    def running_jobs(self) -> int:
        """Trainings at once: the configured number, else one per two CPU cores."""
        return self.jobs_running or max(1, (os.cpu_count() or 2) // 2)


#: The older name of ``OPTLAB_CAP_JOBS_RUNNING``, still honoured (it wins when set).
MAX_JOBS_ENV = "OPTLAB_MAX_JOBS"


def max_running_jobs(environ: Mapping[str, str] | None = None) -> int:
    """Trainings at once: ``$OPTLAB_MAX_JOBS`` if it is a positive whole number,
    else the cap (one per two cores by default); a bad value is logged and ignored."""
    env = os.environ if environ is None else environ
    raw = env.get(MAX_JOBS_ENV, "").strip()
    # ASCII digits only ("²" is a digit to isdigit but not to int), and short enough
    # for int() (which refuses more than 4300 digits).
    if raw.isascii() and raw.isdigit() and len(raw) <= 15 and int(raw) >= 1:
        return int(raw)
    if raw:
        log.warning(
            "optlab: %s=%r ignored: expected a whole number >= 1; keeping %d",
            MAX_JOBS_ENV,
            raw[:40],
            CAPS.running_jobs(),
        )
    return CAPS.running_jobs()


CAPS, CAP_MESSAGES = Caps.from_env()
for _message in CAP_MESSAGES:
    (log.warning if "ignored" in _message else log.info)("optlab: %s", _message)
