"""The caps: one object, documented defaults, environment overrides the engine itself enforces."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import fields

import pytest

from optlab import caps as caps_module
from optlab.caps import CAPS, ENV_PREFIX, Caps
from tests.support.resources import ROOT


def test_every_cap_is_documented_with_its_default():
    doc = caps_module.__doc__
    for f in fields(Caps):
        line = next((ln for ln in doc.splitlines() if ln.startswith(f.name + " ")), None)
        assert line is not None, f.name
        assert str(f.default).split(".")[0] in line.replace("_", ""), (f.name, line)


def test_overrides_are_read_and_bad_ones_ignored_with_a_message():
    caps, messages = Caps.from_env(
        {
            f"{ENV_PREFIX}SURFACE_STEPS": "50",
            f"{ENV_PREFIX}JOB_IDLE_S": "12.5",
            f"{ENV_PREFIX}SWEEP_RESOLUTION": "lots",
            f"{ENV_PREFIX}TRAIN_BATCH": "-3",
            f"{ENV_PREFIX}JOBS_RUNNING": "0",
            "UNRELATED": "1",
        }
    )
    assert caps.surface_steps == 50 and caps.job_idle_s == 12.5 and caps.jobs_running == 0
    assert caps.sweep_resolution == Caps().sweep_resolution
    assert caps.train_batch == Caps().train_batch
    ignored = [m for m in messages if "ignored" in m]
    assert len(ignored) == 2 and all("expected a positive" in m for m in ignored)
    assert caps.running_jobs() >= 1


def test_the_default_caps_are_those_the_modules_use():
    from optlab.surface import formula, problem
    from optlab.sweep import config as sweep
    from optlab.train import checkpoint
    from optlab.train import run as train_run

    assert CAPS.surface_steps == problem.MAX_STEPS
    assert CAPS.sweep_resolution == sweep.MAX_RESOLUTION
    assert CAPS.train_batch == train_run.MAX_BATCH
    assert CAPS.formula_length == formula.MAX_FORMULA_LENGTH
    assert (CAPS.checkpoint_mb + CAPS.snapshot_mb) * 2**20 == checkpoint.MAX_CHECKPOINT_BYTES


@pytest.mark.parametrize(
    ("env", "argv", "fragment"),
    [
        (
            {"OPTLAB_CAP_SURFACE_STEPS": "100"},
            ["surface", "--surface", "rosenbrock", "--opt", "adam", "--steps", "101"],
            "steps: must be between 1 and 100",
        ),
        (
            {"OPTLAB_CAP_SWEEP_RESOLUTION": "10"},
            ["sweep", "--surface", "rosenbrock", "--opt", "sgd", "--x", "lr=1e-4:1e-2:log:11"],
            "resolution must be in [2, 10]",
        ),
        (
            {"OPTLAB_CAP_FORMULA_LENGTH": "10"},
            ["surface", "--expr", "x**2 + y**2 + 1", "--opt", "adam", "--steps", "5"],
            "10",
        ),
    ],
)
def test_the_engine_enforces_an_overridden_cap(env, argv, fragment):
    proc = subprocess.run(
        [sys.executable, "-m", "optlab", *argv],
        cwd=ROOT,
        env={**__import__("os").environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert fragment in proc.stderr
