"""Bad input on every input surface of OptLab, as one table.

The surfaces are the widgets (driven through `AppTest`), share links, CLI
flags, uploaded checkpoints, plugin modules and environment variables. Each
row of `CASES` feeds one of them NaN, inf, a negative, zero, a huge value, a
wrong type, an empty or very long value, unicode, a hostile formula or a
damaged file, and names the message the user must get; one small driver per
surface checks it:

- widgets: no exception, the message on the page, and what was typed still
  in the widget. Where Streamlit itself refuses a number (a non-finite one,
  or one outside the widget's bounds, which a browser cannot send) it falls
  back to the widget's default, and the row says what the page then shows;
- share links: the page's "This link could not be used (...)" warning names
  the bad parameter, and the page shows its defaults;
- the CLI: exit status 2 and one line on stderr naming the flag, no traceback;
- uploaded checkpoints: the CNN lab names the file and says why it refuses
  it (at upload, or when "Resume training" is pressed), and goes on working;
- plugins: the module is skipped with a one-line reason naming the file, and
  the built-in optimizers are untouched;
- environment variables: the value is ignored (or refused) with a message,
  and nothing crashes.

The last test opens malformed URLs in a real browser against a real server,
then checks that the server is healthy and that another browser is unaffected.
"""

from __future__ import annotations

import io
import logging
import math
import os
import pickle
import tempfile
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
import torch
from streamlit.testing.v1 import AppTest

from optlab import caps as caps_module
from optlab.caps import CAPS, Caps, max_running_jobs
from optlab.cli import main
from optlab.links import train_to_params
from optlab.optim import registry as optimizers
from optlab.optim.config import OptimizerConfig
from optlab.optim.plugins import load_plugins
from optlab.train import checkpoint as checkpoint_module
from optlab.train.autosave import Autosave, RunStore, default_runs_dir
from optlab.train.checkpoint import checkpoint_bytes
from optlab.train.data import CIFAR10_URL, DataError, LoadedData, archive_url, load_cifar10
from optlab.train.data.synthetic import SYNTHETIC_CLASSES, synthetic_cifar
from optlab.train.jobs import DONE, JobRegistry
from optlab.train.run import TrainingSession
from optlab.ui.cnn import jobs, settings
from tests.support.resources import APP
from tests.support.server import PATH_NAMES
from tests.support.training import tiny_train_config

TIMEOUT = 120
LINK_FAILED = "This link could not be used"

# --- the table -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """One bad input and the message it must get.

    Attributes:
        surface: Which driver feeds it: widget, url, cli, upload, plugin or env.
        id: The pytest id, ``<surface>-<where>-<what>``.
        input: What is fed in (each driver documents its shape).
        expect: A fragment of the message the user gets.
        where: The page (widgets, links) or the consumer (environment).
    """

    surface: str
    id: str
    input: Any
    expect: str
    where: str = ""


#: `Typed.shown` when the widget must still hold exactly what was typed.
TYPED = object()


@dataclass(frozen=True)
class Typed:
    """A value typed into one widget, after ``prep`` (kind, key, value) was set and run.

    ``box`` is where the message appears: ``error``, ``warning`` or, for a
    value Streamlit replaced with a valid one, ``caption``. ``shown`` is what
    the widget holds afterwards (`TYPED`: the typed value).
    """

    kind: str
    key: str
    value: Any
    prep: tuple[tuple[str, str, Any], ...] = ()
    box: str = "error"
    shown: Any = TYPED


CUSTOM = (("selectbox", "surface", "custom"),)
SWEEP_CUSTOM = (("selectbox", "sw_surface", "custom"),)
CIFAR = (("radio", "cnn_data", "cifar10"),)
LONG_FORMULA = "x+" * 300 + "x"
#: 319 syntax-tree nodes in 327 characters (over the node cap, under the depth cap).
MANY_TERMS = "+".join(["(" + "+".join(["x"] * 40) + ")"] * 4)
HOSTILE = "__import__('os').system('id')"
#: A folder name longer than the system allows (255 bytes a name).
LONG_NAME = "/tmp/" + "a" * 300
TOO_LONG = "cannot be read (File name too long)"
DUNDER = "().__class__.__bases__[0].__subclasses__()"


def widget(id: str, page: str, typed: Typed, expect: str) -> Case:
    return Case("widget", f"widget-{page}-{id}", typed, expect, page)


WIDGETS = [
    # The playground (opened with ?steps=20); slot 0 is SGD + momentum, slot 1 Adam.
    # NaN and inf: Streamlit refuses a non-finite number (a browser cannot send one)
    # and the input falls back to its default, 0, which torch accepts: the page runs it
    # and says what lr = 0 does. Values torch accepts are never refused, only explained.
    widget(
        "lr-nan",
        "playground",
        Typed("number_input", "slot0_lr", math.nan, box="caption", shown=0.0),
        "γ = 0: the parameters never move",
    ),
    widget(
        "lr-inf",
        "playground",
        Typed("number_input", "slot0_lr", math.inf, box="caption", shown=0.0),
        "γ = 0: the parameters never move",
    ),
    widget(
        "lr-negative",
        "playground",
        Typed("number_input", "slot0_lr", -1.0),
        "Invalid lr value: -1 (must be in [0, inf); torch's own check)",
    ),
    widget(
        "lr-zero",
        "playground",
        Typed("number_input", "slot0_lr", 0.0, box="caption"),
        "γ = 0: the parameters never move",
    ),
    widget(
        "lr-huge",
        "playground",
        Typed("number_input", "slot1_lr", 1e300, box="caption"),
        "γ > 1000: far above any usual learning rate",
    ),
    widget(
        "momentum-one",
        "playground",
        Typed("number_input", "slot0_momentum", 1.0, box="caption"),
        "μ ≥ 1: the buffer never forgets a gradient",
    ),
    widget(
        "step-sizes-reversed",
        "playground",
        # Accepted (torch takes it), with what the two values do together.
        Typed(
            "number_input",
            "slot2_step_sizes_0",
            60.0,
            prep=(("selectbox", "slot2_choice", "rprop"),),
            box="caption",
        ),
        "step_sizes: Γmin 60 > Γmax 50: torch clamps every step size to Γmax",
    ),
    widget(
        "betas-negative",
        "playground",
        Typed("number_input", "slot1_betas_0", -0.5),
        "Invalid betas value: -0.5 (betas[0] must be in [0, 1); torch's own check)",
    ),
    widget(
        "steps-zero",
        "playground",
        # Outside the input's bounds (a browser refuses to send it): Streamlit puts
        # the input's minimum in its place, and the page runs that.
        Typed("number_input", "steps", 0, box="caption", shown=1),
        "3 optimizers, 1 steps from the same start",
    ),
    widget(
        "steps-huge",
        "playground",
        Typed("number_input", "steps", 10**12, box="caption", shown=1),
        "3 optimizers, 1 steps from the same start",
    ),
    widget(
        "noise-negative",
        "playground",
        Typed("number_input", "noise", -1.0, box="caption", shown=0.0),
        "noise σ = 0.",
    ),
    widget(
        "start-huge",
        "playground",
        Typed("number_input", "start_x", 1e9),
        "start: must be finite and within ±1e+06, got (1000000000.0, 1.0)",
    ),
    widget(
        "bounds-reversed",
        "playground",
        Typed("number_input", "bounds_x0", 10.0),
        "bounds: xmin must be below xmax, got 10.0 >= 2.0",
    ),
    widget(
        "bounds-huge",
        "playground",
        Typed("number_input", "bounds_x1", 1e300),
        "bounds: x range must stay within ±1e+06",
    ),
    widget(
        "expr-hostile",
        "playground",
        Typed("text_input", "expr", HOSTILE, CUSTOM),
        "expr: attribute access is not allowed",
    ),
    widget(
        "expr-dunder",
        "playground",
        Typed("text_input", "expr", DUNDER, CUSTOM),
        "expr: attribute access is not allowed",
    ),
    widget(
        "expr-power-tower",
        "playground",
        Typed("text_input", "expr", "9**9**9", CUSTOM),
        "expr: exponent too large: 3.8742e+08 (at most 100 in magnitude)",
    ),
    widget(
        "expr-unicode",
        "playground",
        Typed("text_input", "expr", "x² + y²", CUSTOM),
        "expr: syntax error at column 2: invalid character '²' (U+00B2)",
    ),
    widget(
        "expr-very-long",
        "playground",
        Typed("text_input", "expr", LONG_FORMULA, CUSTOM, shown=LONG_FORMULA[:500]),
        "expr: syntax error at the end of the formula: invalid syntax",
    ),
    widget(
        "expr-too-many-terms",
        "playground",
        Typed("text_input", "expr", MANY_TERMS, CUSTOM),
        "expr: the formula is too complex (more than 300 parts)",
    ),
    widget(
        "expr-empty",
        "playground",
        Typed("text_input", "expr", "", CUSTOM),
        "expr: surface 'custom' needs a formula",
    ),
    widget(
        "changes-garbage",
        "playground",
        Typed("text_area", "slot0_changes", "make it faster"),
        "change 'make it faster': expected STEP:NAME=VALUE",
    ),
    widget(
        "changes-nan",
        "playground",
        Typed("text_area", "slot0_changes", "10:lr=nan"),
        "change: the value must be a finite number, got nan",
    ),
    widget(
        "changes-negative-factor",
        "playground",
        Typed("text_area", "slot0_changes", "10:lr*=-2"),
        "change: a factor must be positive, got -2",
    ),
    widget(
        "changes-very-long",
        "playground",
        Typed("text_area", "slot0_changes", "\n".join(["1:lr=0.1"] * 400)),
        "changes: at most 20, got 400",
    ),
    widget(
        "surface-param-out-of-range",
        "playground",
        Typed("number_input", "sp_kappa", 0.5, (("selectbox", "surface", "quadratic"),)),
        "Invalid kappa value: 0.5",
    ),
    # The CNN lab (opened with a tiny synthetic comparison).
    widget(
        "lr-negative",
        "cnn",
        Typed("number_input", "cnn_slot0_lr", -1.0),
        "Cannot train with these settings: Invalid lr value: -1 (must be in [0, inf); "
        "torch's own check)",
    ),
    widget(
        "lr-nan",
        "cnn",
        Typed("number_input", "cnn_slot1_lr", math.nan, box="caption", shown=0.0),
        "γ = 0: the parameters never move",
    ),
    widget(
        "changes-garbage",
        "cnn",
        Typed("text_area", "cnn_slot0_changes", "epochX:lr=1"),
        "change 'epochX:lr=1': expected STEP:NAME=VALUE",
    ),
    widget(
        "data-folder-missing",
        "cnn",
        Typed("text_input", "cnn_data_dir", "/no/such/folder", CIFAR, box="warning"),
        "No CIFAR-10 here: CIFAR-10 folder from data_dir is unusable: /no/such/folder: "
        "not a folder",
    ),
    widget(
        "data-folder-unicode",
        "cnn",
        Typed("text_input", "cnn_data_dir", "/tmp/данные ☃", CIFAR, box="warning"),
        "/tmp/данные ☃: not a folder",
    ),
    widget(
        "data-folder-very-long",
        "cnn",
        Typed("text_input", "cnn_data_dir", LONG_NAME, CIFAR, box="warning"),
        f"No CIFAR-10 here: CIFAR-10 folder from data_dir is unusable: {LONG_NAME}: {TOO_LONG}",
    ),
    widget(
        "data-folder-unknown-home",
        "cnn",
        Typed("text_input", "cnn_data_dir", "~nosuchuser/cifar", CIFAR, box="warning"),
        "~nosuchuser/cifar: cannot be read (Could not determine home directory.)",
    ),
    # The sweeps page (opened with a 4 x 3 sweep of SGD + momentum on Rosenbrock).
    widget(
        "axis-log-zero",
        "sweep",
        Typed("number_input", "sw_x_low", 0.0),
        "Cannot run this sweep: lr: a log axis needs positive bounds",
    ),
    widget(
        "axis-nan",
        "sweep",
        Typed("number_input", "sw_x_high", math.nan, shown=0.0),
        "Cannot run this sweep: lr: a log axis needs positive bounds",
    ),
    widget(
        "axis-empty-range",
        "sweep",
        Typed("number_input", "sw_x_low", 0.01),
        "Cannot run this sweep: lr: low and high must differ",
    ),
    widget(
        "axis-points-huge",
        "sweep",
        Typed("number_input", "sw_x_n", 10**6, box="caption", shown=2),
        "6 configurations × 20 steps",
    ),
    widget(
        "start-huge",
        "sweep",
        Typed("number_input", "sw_start_x", -1e12),
        "Cannot run this sweep: start: must be finite and within ±1e+06, got (-1000000000000.0",
    ),
    widget(
        "expr-hostile",
        "sweep",
        Typed("text_input", "sw_expr", HOSTILE, SWEEP_CUSTOM),
        "Cannot run this sweep: expr: attribute access is not allowed",
    ),
]


def url(id: str, page: str, query: dict[str, str | list[str]], expect: str) -> Case:
    return Case("url", f"url-{page}-{id}", query, expect, page)


CNN = {"page": "cnn", "opt": "adam"}
SWEEP = {"page": "sweep"}
URLS = [
    url(
        "lr-nan",
        "playground",
        {"opt": "adam:lr=nan"},
        "(Invalid lr value: nan (must be finite, OptLab's limit))",
    ),
    url(
        "lr-inf",
        "playground",
        {"opt": "adam:lr=inf"},
        "(Invalid lr value: inf (must be finite, OptLab's limit))",
    ),
    url(
        "lr-negative",
        "playground",
        {"opt": "adam:lr=-1"},
        "(Invalid lr value: -1 (must be in [0, inf); torch's own check))",
    ),
    url("steps-zero", "playground", {"steps": "0"}, "steps: must be between 1 and 5000, got 0"),
    url("steps-huge", "playground", {"steps": "9" * 30}, "steps: must be between 1 and 5000"),
    url("steps-text", "playground", {"steps": "ten"}, "steps: expected a whole number, got 'ten'"),
    url("steps-empty", "playground", {"steps": ""}, "steps: expected a whole number, got ''"),
    url(
        "steps-repeated",
        "playground",
        {"steps": ["10", "20"]},
        "steps: given 2 times, expected once",
    ),
    url("noise-nan", "playground", {"noise": "nan"}, "noise: expected a number, got 'nan'"),
    url("seed-negative", "playground", {"seed": "-1"}, "seed: must be in [0, 2^53), got -1"),
    url(
        "start-nan",
        "playground",
        {"start": "nan,nan"},
        "start: expected 2 finite numbers like -1.5,2, got 'nan,nan'",
    ),
    url(
        "seed-very-long",
        "playground",
        {"seed": "9" * 5000},
        "seed: value too long (5000 characters)",
    ),
    url("surface-unicode", "playground", {"surface": "розенброк"}, "unknown surface 'розенброк'"),
    url(
        "expr-hostile",
        "playground",
        {"surface": "custom", "expr": HOSTILE},
        "(expr: attribute access is not allowed)",
    ),
    url(
        "expr-nul",
        "playground",
        {"surface": "custom", "expr": "x\x00+y"},
        "(expr: syntax error: source code string cannot contain null bytes)",
    ),
    url(
        "too-many-optimizers",
        "playground",
        {"opt": ["adam"] * 9},
        "opt: at most 8 optimizers, the link has 9",
    ),
    url(
        "batch-negative",
        "cnn",
        {**CNN, "batch": "-1"},
        "batch_size: expected a whole number in [1, 1024], got -1",
    ),
    url("batch-nan", "cnn", {**CNN, "batch": "nan"}, "batch: expected a whole number, got 'nan'"),
    url(
        "steps-huge",
        "cnn",
        {**CNN, "steps": "9" * 12},
        "steps: expected a whole number in [1, 100000], got 999999999999",
    ),
    url(
        "train-huge",
        "cnn",
        {**CNN, "train": "99999"},
        "train: expected a whole number in [1, 50000] or all, got 99999",
    ),
    url(
        "test-zero",
        "cnn",
        {**CNN, "test": "0"},
        "test: expected a whole number in [1, 10000] or all, got 0",
    ),
    url("clip-inf", "cnn", {**CNN, "clip": "inf"}, "clip: expected a number, got 'inf'"),
    url(
        "clip-tiny",
        "cnn",
        {**CNN, "clip": "1e-9"},
        "clip: the page takes at least 1e-06, got 1e-09",
    ),
    url(
        "clr-tiny", "cnn", {**CNN, "clr": "0.0001"}, "clr: the page takes 0.001 to 1000, got 0.0001"
    ),
    url("model-unicode", "cnn", {**CNN, "model": "сеть"}, "unknown model 'сеть'"),
    url("opt-empty", "cnn", {"page": "cnn", "opt": ""}, "empty optimizer spec"),
    url("seed-repeated", "cnn", {**CNN, "seed": ["1", "2"]}, "seed: given 2 times, expected once"),
    url("mode-unknown", "sweep", {**SWEEP, "mode": "nowhere"}, "mode: one of sweep, fair, basins"),
    url(
        "steps-text",
        "sweep",
        {**SWEEP, "steps": "abc"},
        "steps: expected a whole number, got 'abc'",
    ),
    url(
        "steps-huge",
        "sweep",
        {**SWEEP, "steps": "999999"},
        "steps: must be in [1, 5000], got 999999",
    ),
    url(
        "starts-huge",
        "sweep",
        {**SWEEP, "starts": "10000"},
        "starts: must be in [2, 200], got 10000",
    ),
    url("noise-negative", "sweep", {**SWEEP, "noise": "-1"}, "noise: must be at least 0, got -1.0"),
    url(
        "axis-log-negative",
        "sweep",
        {**SWEEP, "x": "lr=-1:1:log:5"},
        "lr: a log axis needs positive bounds",
    ),
    url(
        "axis-nan",
        "sweep",
        {**SWEEP, "x": "lr=nan:1:lin:5"},
        "lr: bounds must be finite numbers, got nan",
    ),
    url(
        "opt-not-sweepable",
        "sweep",
        {**SWEEP, "opt": "lbfgs"},
        "opt: L-BFGS cannot be swept",
    ),
    url("x-very-long", "sweep", {**SWEEP, "x": "lr=" + "1" * 2000}, "x: value too long"),
]


def cli(id: str, argv: list[str], expect: str) -> Case:
    return Case("cli", f"cli-{id}", argv, expect)


ROSEN = ["surface", "--surface", "rosenbrock", "--steps", "5"]
ADAM = ["--opt", "adam"]
TRAIN = ["train", "--synthetic", "--opt", "adam", "--steps", "2"]
SWEEP_ARGS = ["sweep", "--surface", "rosenbrock", "--opt", "sgd", "--steps", "5"]
CLIS = [
    cli(
        "surface-lr-nan",
        [*ROSEN, "--opt", "adam:lr=nan"],
        "Invalid lr value: nan (must be finite, OptLab's limit)",
    ),
    cli(
        "surface-lr-inf",
        [*ROSEN, "--opt", "adam:lr=inf"],
        "Invalid lr value: inf (must be finite, OptLab's limit)",
    ),
    cli(
        "surface-steps-negative",
        ["surface", "--surface", "rosenbrock", "--steps", "-5", *ADAM],
        "steps: must be between 1 and 5000, got -5",
    ),
    cli(
        "surface-steps-huge",
        ["surface", "--surface", "rosenbrock", "--steps", "9" * 30, *ADAM],
        "steps: must be between 1 and 5000",
    ),
    cli(
        "surface-steps-text",
        ["surface", "--surface", "rosenbrock", "--steps", "ten", *ADAM],
        "argument --steps: invalid int value: 'ten'",
    ),
    cli(
        "surface-steps-empty",
        ["surface", "--surface", "rosenbrock", "--steps", "", *ADAM],
        "argument --steps: invalid int value: ''",
    ),
    cli("surface-noise-inf", [*ROSEN, *ADAM, "--noise", "inf"], "noise: expected a finite number"),
    cli("surface-seed-huge", [*ROSEN, *ADAM, "--seed", "9" * 30], "seed: must be in [0, 2^53)"),
    cli(
        "surface-expr-hostile",
        ["surface", "--expr", HOSTILE, *ADAM],
        "expr: attribute access is not allowed",
    ),
    cli(
        "surface-expr-unicode",
        ["surface", "--expr", "x² + y²", *ADAM],
        "column 2: invalid character '²'",
    ),
    cli(
        "surface-expr-very-long",
        ["surface", "--expr", LONG_FORMULA, *ADAM],
        "(601 characters; at most 500)",
    ),
    cli(
        "surface-start-nan",
        [*ROSEN, *ADAM, "--start", "nan,0"],
        "start: expected 2 finite numbers like -1.5,2, got 'nan,0'",
    ),
    cli(
        "sweep-axis-nan",
        [*SWEEP_ARGS, "--x", "lr=nan:1:lin:5"],
        "lr: bounds must be finite numbers, got nan",
    ),
    cli(
        "sweep-axis-huge",
        [*SWEEP_ARGS, "--x", "lr=1e-4:1e-2:log:999999"],
        "lr: resolution must be in [2, 200], got 999999",
    ),
    cli(
        "sweep-axis-wrong-type",
        [*SWEEP_ARGS, "--x", "lr=a:b:log:5"],
        "lr: LOW and HIGH must be numbers",
    ),
    cli(
        "train-batch-zero",
        [*TRAIN, "--batch-size", "0"],
        "batch_size: expected a whole number in [1, 1024], got 0",
    ),
    cli(
        "train-epochs-huge",
        ["train", "--synthetic", *ADAM, "--epochs", "1000000000"],
        "epochs: expected a whole number in [1, 200], got 1000000000",
    ),
    cli(
        "train-clip-nan",
        [*TRAIN, "--clip-grad-norm", "nan"],
        "clip_grad_norm: must be a positive number, got nan",
    ),
    cli(
        "train-limit-text",
        [*TRAIN, "--train-limit", "lots"],
        "argument --train-limit: expected a number or 'all', got 'lots'",
    ),
    cli(
        "train-resume-missing",
        [*TRAIN, "--resume", "/no/such/run.pt"],
        "checkpoint: cannot read '/no/such/run.pt' (No such file or directory)",
    ),
    cli(
        "train-resume-not-a-checkpoint",
        [*TRAIN, "--resume", "{tmp}/notes.pt"],
        "checkpoint: not a readable OptLab checkpoint (damaged or another format)",
    ),
    cli(
        "train-data-missing",
        ["train", "--data", "/no/such/folder", *ADAM, "--steps", "2"],
        "CIFAR-10 folder from data_dir is unusable: /no/such/folder: not a folder",
    ),
    cli(
        "train-data-name-too-long",
        ["train", "--data", LONG_NAME, *ADAM, "--steps", "2"],
        f"CIFAR-10 folder from data_dir is unusable: {LONG_NAME}: {TOO_LONG}",
    ),
    cli("list-extra-argument", ["list", "--colour", "red"], "unrecognized arguments: --colour"),
]


@dataclass(frozen=True)
class Upload:
    """A file uploaded as a checkpoint: built from a real one by ``make``.

    ``resume``: the refusal comes when "Resume training" is pressed;
    ``cap_mb``: the checkpoint size cap for this row.
    """

    make: Callable[[bytes], bytes]
    name: str = "upload.pt"
    resume: bool = False
    cap_mb: int | None = None


def torch_file(obj: Any) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def edited(change: Callable[[dict], None]) -> Callable[[bytes], bytes]:
    """A real checkpoint with ``change`` applied to its state."""

    def make(real: bytes) -> bytes:
        state = torch.load(io.BytesIO(real), map_location="cpu", weights_only=True)
        change(state)
        return torch_file(state)

    return make


def _wrong_shapes(state: dict) -> None:
    state["models"] = [{k: torch.zeros(3) for k in sd} for sd in state["models"]]


def _set(path: tuple[Any, ...], value: Any) -> Callable[[dict], None]:
    def change(state: dict) -> None:
        target = state
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value

    return change


#: Made by unpickling `RunsCode`: it must never appear.
PWNED = Path(tempfile.gettempdir()) / f"optlab-pwned-{os.getpid()}"


class RunsCode:
    """Unpickling this runs code (it makes the folder `PWNED`): a hostile "checkpoint"."""

    def __reduce__(self):
        return (os.mkdir, (str(PWNED),))


PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 64
UNREADABLE = "checkpoint: not a readable OptLab checkpoint (damaged or another format)"


def upload(id: str, file: Upload, expect: str) -> Case:
    return Case("upload", f"upload-{id}", file, expect, "cnn")


UPLOADS = [
    upload("empty", Upload(lambda _: b""), UNREADABLE),
    upload("text-file", Upload(lambda _: b"my notes\n", "notes.pt"), UNREADABLE),
    upload("png-image", Upload(lambda _: PNG, "photo.pt"), UNREADABLE),
    upload("truncated", Upload(lambda real: real[: len(real) // 2]), UNREADABLE),
    upload(
        "python-objects",
        Upload(lambda _: torch_file({"f": io.BytesIO})),
        "checkpoint: refused: it holds Python objects, not only tensors and plain data",
    ),
    upload(
        "pickled-code",
        Upload(lambda _: pickle.dumps(RunsCode(), protocol=2)),
        "checkpoint: refused: it holds Python objects, not only tensors and plain data",
    ),
    upload(
        "pickled-code-in-a-torch-file",
        Upload(lambda _: torch_file({"config": RunsCode()})),
        "checkpoint: refused: it holds Python objects, not only tensors and plain data",
    ),
    upload(
        "oversized",
        Upload(lambda _: b"\0" * (3 * 2**20), cap_mb=1),
        "checkpoint: 3 MiB is over the 1 MiB cap",
    ),
    upload(
        "another-model-weights",
        Upload(edited(_wrong_shapes), resume=True),
        "checkpoint: Error(s) in loading state_dict for SeedNet: size mismatch for "
        "features.0.weight: copying a param with shape torch.Size([3]) from checkpoint, "
        "the shape in current model is torch.Size([32, 3, 5, 5]).",
    ),
    upload(
        "another-model-named",
        Upload(edited(_set(("config", "model"), "resnet-huge"))),
        "upload.pt: unknown model 'resnet-huge' (known: seednet, seednet-relu)",
    ),
    upload(
        "lr-nan-inside",
        Upload(edited(_set(("config", "slots", 0, "optimizer"), "adam:lr=nan"))),
        "upload.pt: Invalid lr value: nan (must be finite, OptLab's limit)",
    ),
    upload(
        "step-wrong-type",
        Upload(edited(_set(("step",), "six"))),
        "checkpoint: damaged (bad step or data order)",
    ),
    upload(
        "config-not-a-mapping",
        Upload(edited(_set(("config",), "seednet"))),
        "config: expected a mapping of settings",
    ),
    upload("unicode-name", Upload(lambda _: b"", "модель ☃.pt"), UNREADABLE),
]

PREAMBLE = (
    "import torch\n"
    "from optlab.optim import HParam, OptimizerSpec\n"
    "LR = HParam('lr', 0.1, 0.0, 10.0, log=True, low_open=True)\n"
    "def spec(key='mine', factory=torch.optim.SGD, hparams=(LR,)):\n"
    "    return OptimizerSpec(key=key, label=key, factory=factory, hparams=hparams, rule='x')\n"
)


@dataclass(frozen=True)
class Plugin:
    """A plugin file: ``name`` with ``source`` in a folder (``target="folder"``), the
    file itself named (``"file"``), or a path that does not exist (``"missing"``)."""

    name: str
    source: str = ""
    target: str = "folder"


def plugin(id: str, file: Plugin, expect: str) -> Case:
    return Case("plugin", f"plugin-{id}", file, expect)


STEP_RAISES = (
    "class Bad(torch.optim.SGD):\n"
    "    def step(self, closure=None):\n"
    "        raise RuntimeError('boom in step')\n"
    "OPTLAB_OPTIMIZERS = (spec(factory=Bad),)\n"
)
#: The line of STEP_RAISES's raise in a plugin file that starts with PREAMBLE.
RAISE_LINE = PREAMBLE.count("\n") + 3
PLUGINS = [
    plugin("syntax-error", Plugin("bad.py", "def broken(:\n"), "syntax error (bad.py line 1)"),
    plugin(
        "raises-at-import",
        Plugin("bad.py", "raise RuntimeError('plugin exploded')\n"),
        "import failed: RuntimeError: plugin exploded (bad.py line 1)",
    ),
    plugin(
        "exits-at-import",
        Plugin("bad.py", "raise SystemExit(3)\n"),
        "import failed: SystemExit: 3 (bad.py line 1)",
    ),
    plugin(
        "not-a-tuple",
        Plugin("bad.py", "OPTLAB_OPTIMIZERS = 42\n"),
        "OPTLAB_OPTIMIZERS must be a tuple of OptimizerSpec, not int",
    ),
    plugin(
        "wrong-item-type",
        Plugin("bad.py", "OPTLAB_OPTIMIZERS = ('adam',)\n"),
        "OPTLAB_OPTIMIZERS holds a str, not an OptimizerSpec",
    ),
    plugin(
        "key-clash",
        Plugin("bad.py", PREAMBLE + "OPTLAB_OPTIMIZERS = (spec(key='adam'),)\n"),
        "key 'adam' is already taken by a built-in optimizer",
    ),
    plugin(
        "key-unicode",
        Plugin("bad.py", PREAMBLE + "OPTLAB_OPTIMIZERS = (spec(key='ådam'),)\n"),
        "key 'ådam' is not a lowercase identifier",
    ),
    plugin(
        "default-nan",
        Plugin(
            "bad.py",
            PREAMBLE + "OPTLAB_OPTIMIZERS = (spec(hparams=(HParam('lr', float('nan')),)),)\n",
        ),
        "mine: the default of lr is invalid: Invalid lr value: nan "
        "(must be finite, OptLab's limit)",
    ),
    plugin(
        "default-inf",
        Plugin(
            "bad.py",
            PREAMBLE + "OPTLAB_OPTIMIZERS = (spec(hparams=(HParam('lr', float('inf')),)),)\n",
        ),
        "mine: the default of lr is invalid: Invalid lr value: inf "
        "(must be finite, OptLab's limit)",
    ),
    plugin(
        "default-huge",
        Plugin(
            "bad.py",
            PREAMBLE + "OPTLAB_OPTIMIZERS = (spec(hparams=(HParam('lr', 1e308, 0.0, 10.0),)),)\n",
        ),
        "mine: the default of lr is invalid: Invalid lr value: 1e+308 (must be in [0, 10])",
    ),
    plugin(
        "step-raises",
        Plugin("bad.py", PREAMBLE + STEP_RAISES),
        f"mine: smoke test failed: RuntimeError: boom in step (bad.py line {RAISE_LINE})",
    ),
    plugin(
        "unicode-file-name",
        Plugin("оптимизатор.py", "raise RuntimeError('нет')\n"),
        "import failed: RuntimeError: нет (оптимизатор.py line 1)",
    ),
    plugin("empty-file", Plugin("empty.py", ""), "defines no OPTLAB_OPTIMIZERS"),
    plugin(
        "very-long-error",
        Plugin("bad.py", "raise RuntimeError('x' * 100000)\n"),
        "import failed: RuntimeError: xxxx",
    ),
    plugin("not-python", Plugin("notes.txt", "hello", "file"), "not a folder or a .py file"),
    plugin("missing-path", Plugin("nowhere", target="missing"), "no such file or folder"),
]


def env(id: str, where: str, values: dict[str, str], expect: str) -> Case:
    return Case("env", f"env-{id}", values, expect, where)


CAP = "OPTLAB_CAP_"
ENVS = [
    env(
        "cap-nan",
        "caps",
        {f"{CAP}SURFACE_STEPS": "nan"},
        "OPTLAB_CAP_SURFACE_STEPS='nan' ignored: expected a positive whole number below 2^53",
    ),
    env(
        "cap-inf",
        "caps",
        {f"{CAP}JOB_RUNTIME_S": "inf"},
        "OPTLAB_CAP_JOB_RUNTIME_S='inf' ignored: expected a positive number below 2^53",
    ),
    env(
        "cap-negative",
        "caps",
        {f"{CAP}TRAIN_BATCH": "-3"},
        "OPTLAB_CAP_TRAIN_BATCH='-3' ignored: expected a positive whole number below 2^53",
    ),
    env(
        "cap-zero",
        "caps",
        {f"{CAP}SURFACE_STEPS": "0"},
        "OPTLAB_CAP_SURFACE_STEPS='0' ignored: expected a positive whole number below 2^53",
    ),
    env(
        "cap-huge",
        "caps",
        {f"{CAP}SURFACE_STEPS": "1" + "0" * 30},
        "OPTLAB_CAP_SURFACE_STEPS='1000000000000000000000000000000' ignored: "
        "expected a positive whole number below 2^53",
    ),
    env(
        "cap-huge-float",
        "caps",
        {f"{CAP}PAGE_RUN_S": "1e400"},
        "OPTLAB_CAP_PAGE_RUN_S='1e400' ignored: expected a positive number below 2^53",
    ),
    env(
        "cap-text",
        "caps",
        {f"{CAP}SWEEP_RESOLUTION": "lots"},
        "OPTLAB_CAP_SWEEP_RESOLUTION='lots' ignored: expected a positive whole number below 2^53",
    ),
    env(
        "cap-unicode",
        "caps",
        {f"{CAP}FORMULA_LENGTH": "½"},
        "OPTLAB_CAP_FORMULA_LENGTH='½' ignored: expected a positive whole number below 2^53",
    ),
    # Empty is the same as unset (the usual shell convention): no message.
    env("cap-empty", "caps", {f"{CAP}SURFACE_STEPS": "  "}, ""),
    env(
        "max-jobs-zero",
        "max_jobs",
        {"OPTLAB_MAX_JOBS": "0"},
        "OPTLAB_MAX_JOBS='0' ignored: expected a whole number >= 1; keeping ",
    ),
    env(
        "max-jobs-negative",
        "max_jobs",
        {"OPTLAB_MAX_JOBS": "-2"},
        "OPTLAB_MAX_JOBS='-2' ignored: expected a whole number >= 1; keeping ",
    ),
    env(
        "max-jobs-text",
        "max_jobs",
        {"OPTLAB_MAX_JOBS": "nan"},
        "OPTLAB_MAX_JOBS='nan' ignored: expected a whole number >= 1; keeping ",
    ),
    env(
        "max-jobs-unicode-digit",
        "max_jobs",
        {"OPTLAB_MAX_JOBS": "²"},
        "OPTLAB_MAX_JOBS='²' ignored: expected a whole number >= 1; keeping ",
    ),
    env(
        "max-jobs-huge",
        "max_jobs",
        {"OPTLAB_MAX_JOBS": "9" * 5000},
        f"OPTLAB_MAX_JOBS={'9' * 40!r} ignored: expected a whole number >= 1; keeping ",
    ),
    env(
        "plugins-nowhere",
        "plugins",
        {"OPTLAB_PLUGINS": "/no/such/plugins"},
        "plugin /no/such/plugins: skipped: no such file or folder",
    ),
    env(
        "data-dir-missing",
        "data",
        {"OPTLAB_DATA_DIR": "/no/such/cifar"},
        "CIFAR-10 folder from $OPTLAB_DATA_DIR is unusable: /no/such/cifar: not a folder",
    ),
    env(
        "data-dir-a-file",
        "data",
        {"OPTLAB_DATA_DIR": "{tmp}/notes.txt"},
        "CIFAR-10 folder from $OPTLAB_DATA_DIR is unusable: {tmp}/notes.txt: not a folder",
    ),
    env(
        "data-dir-name-too-long",
        "data",
        {"OPTLAB_DATA_DIR": LONG_NAME},
        f"CIFAR-10 folder from $OPTLAB_DATA_DIR is unusable: {LONG_NAME}: {TOO_LONG}",
    ),
    env(
        "cifar-url-bad-scheme",
        "download",
        {"OPTLAB_CIFAR_URL": "ftp://127.0.0.1/cifar.tar.gz"},
        "download of ftp://127.0.0.1/cifar.tar.gz refused: only http and https URLs are allowed",
    ),
    env(
        "cifar-url-garbage",
        "download",
        {"OPTLAB_CIFAR_URL": "not a url ☃"},
        "download of not a url ☃ refused: only http and https URLs are allowed",
    ),
    env(
        "cifar-url-malformed",
        "download",
        {"OPTLAB_CIFAR_URL": "http://[::1/cifar.tar.gz"},
        "download of http://[::1/cifar.tar.gz refused: not a valid URL",
    ),
    env(
        "cifar-url-malformed-on-the-page",
        "cnn-download",
        {"OPTLAB_CIFAR_URL": "http://[::1/cifar.tar.gz"},
        "download of http://[::1/cifar.tar.gz refused: not a valid URL (Invalid IPv6 URL)",
    ),
    env(
        "cifar-url-host-too-long",
        "download",
        {"OPTLAB_CIFAR_URL": "http://" + "h" * 300 + "/c.tgz"},
        "failed: UnicodeError: encoding with 'idna' codec failed",
    ),
    env("cifar-url-empty", "url", {"OPTLAB_CIFAR_URL": ""}, CIFAR10_URL),
    env(
        "cache-dir-a-file",
        "download",
        {"OPTLAB_CACHE_DIR": "{tmp}/notes.txt", "OPTLAB_CIFAR_URL": "http://127.0.0.1:9/c.tgz"},
        "download of http://127.0.0.1:9/c.tgz failed: cannot write in {tmp}/notes.txt",
    ),
    env(
        "runs-dir-a-file",
        "runs",
        {"OPTLAB_RUNS_DIR": "{tmp}/notes.txt"},
        "autosave failed: Not a directory",
    ),
]

CASES = [*WIDGETS, *URLS, *CLIS, *UPLOADS, *PLUGINS, *ENVS]

# --- shared helpers ------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    """An empty cache folder and no CIFAR-10 settings, so every page starts the same."""
    cache = tmp_path / "cache"
    cache.mkdir()
    monkeypatch.setenv("OPTLAB_CACHE_DIR", str(cache))
    for name in ("OPTLAB_DATA_DIR", "OPTLAB_CIFAR_URL", "OPTLAB_MAX_JOBS"):
        monkeypatch.delenv(name, raising=False)
    jobs._cifar.clear()
    yield
    jobs._cifar.clear()


#: Each page opened small: a short run, a tiny training, a 4 x 3 sweep.
TINY_CNN = tiny_train_config("sgd_momentum:lr=0.01", "adam:lr=0.001", test_limit=100, device="auto")
LINKS: dict[str, dict[str, str | list[str]]] = {
    "playground": {"steps": "20"},
    "cnn": train_to_params(TINY_CNN, "synthetic"),
    "sweep": {
        "page": "sweep",
        "mode": "sweep",
        "surface": "rosenbrock",
        "opt": "sgd:momentum=0.9",
        "x": "lr=0.0001:0.01:log:4",
        "y": "momentum=0:0.9:lin:3",
        "steps": "20",
    },
}
PAGES = {"playground": None, "cnn": "pages/cnn.py", "sweep": "pages/sweep.py"}


def open_page(page: str, query: dict[str, str | list[str]]) -> AppTest:
    """A fresh session on ``page``, opened with the share link ``query``."""
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.query_params.update(query)
    if PAGES[page] is not None:
        at.switch_page(PAGES[page])
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    return at


def texts(at: AppTest, box: str) -> list[str]:
    return [element.value for element in getattr(at, box)]


def same(held: Any, want: Any) -> bool:
    if isinstance(want, float) and math.isnan(want):
        return isinstance(held, float) and math.isnan(held)
    return held == want


def button(at: AppTest, label: str):
    (found,) = [b for b in at.button if b.label == label]
    return found


# --- drivers -------------------------------------------------------------------------------


def check_widget(case: Case) -> None:
    typed: Typed = case.input
    at = open_page(case.where, LINKS[case.where])
    # The sweep's best cell may lie on an edge of its grid: advice, not a problem.
    warnings = [w for w in texts(at, "warning") if "on the edge of" not in w]
    assert not at.error and not warnings, texts(at, "error") + warnings
    for kind, key, value in typed.prep:
        getattr(at, kind)(key=key).set_value(value)
        at.run()
        assert not at.exception, [e.message for e in at.exception]
    getattr(at, typed.kind)(key=typed.key).set_value(typed.value)
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    shown = texts(at, typed.box)
    assert any(case.expect in text for text in shown), shown
    if typed.box == "caption":
        assert not at.error, texts(at, "error")
    held = getattr(at, typed.kind)(key=typed.key).value
    want = typed.value if typed.shown is TYPED else typed.shown
    assert same(held, want), (held, want)


def check_defaults(page: str, at: AppTest) -> None:
    """The page shows its own defaults."""
    if page == "playground":
        rows = at.table[0].value.to_dict("records")
        assert [r["optimizer"] for r in rows] == [
            "SGD (momentum=0.9)",
            "Adam (lr=0.1)",
            "RMSprop",
        ]
        assert at.selectbox(key="surface").value == "rosenbrock"
    elif page == "cnn":
        assert settings.config_from_state(at.session_state) == settings.default_config()
    else:
        state = at.session_state
        assert (state["sw_mode"], state["sw_surface"], state["sw_steps"]) == (
            "sweep",
            "rosenbrock",
            300,
        )
        assert (state["sw_x_name"], state["sw_y_name"]) == ("lr", "momentum")


def check_url(case: Case) -> None:
    at = open_page(case.where, case.input)
    (warning,) = [w for w in texts(at, "warning") if LINK_FAILED in w]
    assert warning.startswith(f"{LINK_FAILED} ("), warning
    assert warning.endswith("); showing the defaults."), warning
    assert case.expect in warning, warning
    assert not at.error, texts(at, "error")
    check_defaults(case.where, at)


def check_cli(case: Case, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    (tmp_path / "notes.pt").write_text("not a checkpoint")
    argv = [arg.replace("{tmp}", str(tmp_path)) for arg in case.input]
    code = main(argv)
    out, err = capsys.readouterr()
    assert code == 2, (code, out, err)
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("optlab: error: "), lines[0]
    assert case.expect in lines[0], lines[0]
    assert "Traceback" not in err
    assert out == ""


@pytest.fixture(scope="module")
def real_checkpoint() -> bytes:
    """A checkpoint of `TINY_CNN` after 2 of its 6 steps, as the CNN page saves them."""
    session = TrainingSession(TINY_CNN, jobs.synthetic_for(256, 100))
    session.run_step()
    session.run_step()
    return checkpoint_bytes(session)


def check_upload(case: Case, real: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    file: Upload = case.input
    if file.cap_mb is not None:
        monkeypatch.setattr(checkpoint_module, "MAX_CHECKPOINT_BYTES", file.cap_mb * 2**20)
    at = open_page("cnn", LINKS["cnn"])
    data = file.make(real)
    at.file_uploader(key="cnn_upload").set_value((file.name, data, "application/octet-stream"))
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    if file.resume:
        assert not at.error, texts(at, "error")
        button(at, "Resume training").click().run()
        assert not at.exception, [e.message for e in at.exception]
        (error,) = texts(at, "error")
        assert error.startswith(f"Cannot resume {file.name}: "), error
        assert "cnn_job" not in at.session_state
    else:
        (error,) = texts(at, "error")
        assert error.startswith(f"{file.name}: "), error
        assert not [b for b in at.button if b.label == "Resume training"]
    assert case.expect in error, error
    assert "\n" not in error
    assert not PWNED.exists(), "an upload ran code"
    # The page goes on working: a comparison can still be started.
    assert not button(at, "Start").disabled


def check_plugin(case: Case, tmp_path: Path) -> None:
    file: Plugin = case.input
    folder = tmp_path / "plugins"
    folder.mkdir()
    path = folder / file.name
    if file.target != "missing":
        path.write_text(file.source, encoding="utf-8")
    before = [spec.key for spec in optimizers.optimizers()]
    results = load_plugins(str(folder if file.target == "folder" else path))
    (result,) = results
    assert not result.loaded and result.spec is None
    assert result.source == str(path)
    assert case.expect in result.reason, result.reason
    assert len(result.reason) <= 300
    assert result.message == f"plugin {path}: skipped: {result.reason}"
    assert "\n" not in result.message
    # The built-in optimizers are intact.
    assert [spec.key for spec in optimizers.optimizers()] == before
    assert OptimizerConfig.from_text("adam:lr=0.01").kwargs["lr"] == 0.01


def _tiny_data() -> LoadedData:
    train, test = synthetic_cifar(n_train=64, n_test=32, seed=1)
    return LoadedData(train, test, tuple(SYNTHETIC_CLASSES), "synthetic", "synthetic (test)")


def check_env(
    case: Case,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    (tmp_path / "notes.txt").write_text("not a folder")
    values = {k: v.replace("{tmp}", str(tmp_path)) for k, v in case.input.items()}
    expect = case.expect.replace("{tmp}", str(tmp_path))
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    where = case.where
    if where == "caps":
        caps, messages = Caps.from_env(values)
        assert caps == Caps(), "a bad value must leave the default in place"
        if expect:
            (message,) = messages
            assert message.startswith(expect), message
            assert message.endswith(f"; keeping {getattr(Caps(), _cap_field(values))}")
        else:
            assert messages == []  # empty: the same as unset
    elif where == "max_jobs":
        with caplog.at_level(logging.WARNING, logger=caps_module.__name__):
            assert max_running_jobs() == CAPS.running_jobs()
        (message,) = [r.getMessage() for r in caplog.records]
        assert message == f"optlab: {expect}{CAPS.running_jobs()}", message
    elif where == "plugins":
        (result,) = load_plugins()
        assert result.message == expect
    elif where == "data":
        with pytest.raises(DataError) as err:
            load_cifar10(download=False, synthetic=False)
        assert str(err.value).startswith(expect), str(err.value)
        assert "\n" not in str(err.value)
    elif where == "download":
        with pytest.raises(DataError) as err:
            load_cifar10(download=True, synthetic=False)
        assert expect in str(err.value), str(err.value)
    elif where == "cnn-download":
        at = open_page("cnn", LINKS["cnn"])
        at.radio(key="cnn_data").set_value("cifar10").run()
        button(at, "Download CIFAR-10").click().run()
        assert not at.exception, [e.message for e in at.exception]
        (error,) = texts(at, "error")
        assert error.startswith("Download failed: ") and expect in error, error
    elif where == "url":
        assert archive_url() == expect
    elif where == "runs":
        store = RunStore(default_runs_dir(), server="here")
        assert store.interrupted() == []
        autosave = Autosave(store, store.new_id(), {"source": "synthetic", "dir": ""}, every=2)
        data = _tiny_data()
        cfg = replace(TINY_CNN, train_limit=64, test_limit=32, steps=4, device="cpu")
        session = TrainingSession(cfg, data)
        session.run_step()
        session.run_step()
        autosave.after_step(session)
        assert autosave.error.startswith(expect), autosave.error
        # Training goes on regardless.
        job = JobRegistry().submit(cfg, data, autosave=autosave)
        assert job.wait(60) and job.state == DONE, job.message
    else:
        raise AssertionError(f"no consumer {where!r}")


def _cap_field(values: dict[str, str]) -> str:
    (name,) = values
    return name.removeprefix("OPTLAB_CAP_").lower()


# --- the table-driven test -----------------------------------------------------------------


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_bad_input_gets_a_clear_message(
    case: Case,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
) -> None:
    if case.surface == "widget":
        check_widget(case)
    elif case.surface == "url":
        check_url(case)
    elif case.surface == "cli":
        check_cli(case, capsys, tmp_path)
    elif case.surface == "upload":
        check_upload(case, request.getfixturevalue("real_checkpoint"), monkeypatch)
    elif case.surface == "plugin":
        check_plugin(case, tmp_path)
    elif case.surface == "env":
        check_env(case, tmp_path, monkeypatch, request.getfixturevalue("caplog"))
    else:
        raise AssertionError(f"no driver for {case.surface!r}")


def test_the_table_covers_every_surface_with_unique_ids() -> None:
    assert {case.surface for case in CASES} == {"widget", "url", "cli", "upload", "plugin", "env"}
    ids = [case.id for case in CASES]
    assert len(ids) == len(set(ids))
    assert all(case.id.startswith(f"{case.surface}-") for case in CASES)


# --- a real server: malformed URLs in a browser -------------------------------------------

DEFAULT_PATHS = '["SGD (momentum=0.9)","Adam (lr=0.1)","RMSprop"]'
#: Malformed links: each with the text its page must show, and the page.
BROWSER_LINKS = [
    ("/?opt=%E0%A4%A&steps=%", LINK_FAILED, "playground"),
    ("/?opt=adam:lr=nan", "Invalid lr value: nan (must be finite, OptLab's limit)", "playground"),
    ("/?opt=adam&seed=" + "9" * 10_000, "seed: value too long (10000 characters)", "playground"),
    ("/?surface=custom&expr=x%00y&opt=adam", "cannot contain null bytes", "playground"),
    (
        "/cnn-lab?page=cnn&opt=adam&batch=-1",
        "batch_size: expected a whole number in [1, 1024], got -1",
        "cnn",
    ),
    ("/sweeps?page=sweep&steps=%FF%FE", LINK_FAILED, "sweep"),
]


def wait_for_defaults(tab, page: str) -> None:
    """Waits until ``page`` has drawn its defaults to the end of its script."""
    if page == "playground":
        tab.wait_for_function(f"() => JSON.stringify(({PATH_NAMES})()) === '{DEFAULT_PATHS}'")
        tab.get_by_role("heading", name="Summary").wait_for()
    elif page == "cnn":
        tab.get_by_text("Pick the data, the model").wait_for()
    else:
        tab.get_by_text("Click a cell to replay its path below").wait_for()


@pytest.mark.browser
def test_malformed_links_leave_the_server_up_and_other_browsers_alone(browser, app_url) -> None:
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    try:
        tab = context.new_page()
        tab.set_default_timeout(60_000)
        for path, text, page in BROWSER_LINKS:
            tab.goto(app_url + path)
            tab.get_by_text(text).first.wait_for()
            assert tab.get_by_text("showing the defaults").count() == 1, path
            wait_for_defaults(tab, page)
            assert tab.locator("[data-testid=stException]").count() == 0, path
    finally:
        context.close()
    with urllib.request.urlopen(f"{app_url}/_stcore/health", timeout=10) as resp:
        assert resp.status == 200
    other = browser.new_context(viewport={"width": 1400, "height": 1000})
    try:
        fresh = other.new_page()
        fresh.set_default_timeout(60_000)
        fresh.goto(app_url)
        wait_for_defaults(fresh, "playground")
        assert fresh.get_by_text(LINK_FAILED).count() == 0
        assert fresh.locator("[data-testid=stException]").count() == 0
    finally:
        other.close()
