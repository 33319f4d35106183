"""Tests for the command line, ``python -m optlab``: a stable contract.

Most cases call `optlab.cli.main` in-process (fast); a few run the real module
entry point in a subprocess to prove exit codes and what reaches stderr.
The JSON written by ``--out`` is checked against the engine itself
(`optlab.surface.trajectory.collect` on the same config) as the oracle.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import io
import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from optlab.cli import main
from optlab.optim import registry
from optlab.optim.builtin import PRESETS
from optlab.optim.config import OptimizerConfig
from optlab.surface.hessian import hessian_eigs
from optlab.surface.problem import Problem
from optlab.surface.run import DIVERGED, DONE, MAX_OPTIMIZERS, SurfaceRunConfig
from optlab.surface.surfaces import CUSTOM, ROSENBROCK, SURFACES
from optlab.surface.trajectory import collect
from tests.support.resources import ROOT

TOP_KEYS = {"surface", "expr", "start", "steps", "seed", "noise", "torch_version", "runs"}
RUN_KEYS = {"optimizer", "hparams", "status", "diverged_at", "x", "y", "loss", "evals"}
RUN_KEYS |= {"hessian_eigs"}

STEPS = 40
#: Adam converges slowly, SGD with lr=1 leaves Rosenbrock at once, LBFGS with a
#: line search uses more function evaluations than steps.
SPECS = ("adam:lr=0.05", "sgd:lr=1", "lbfgs:lr=1,line_search_fn=strong_wolfe")
CONTRACT_SPECS = (
    "adam:lr=0.05",
    "sgd:lr=0.001,momentum=0.9,nesterov=true",
    "lbfgs:lr=1,line_search_fn=strong_wolfe",
)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"non-standard JSON constant {name}")


def strict_loads(text: str) -> Any:
    """json.loads that refuses NaN, Infinity and -Infinity."""
    return json.loads(text, parse_constant=_reject_constant)


def call(*argv: str) -> tuple[int, str, str]:
    """Runs the CLI in-process; returns (exit status, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue(), err.getvalue()


def surface_args(*specs: str, steps: int = STEPS, surface: str = "rosenbrock") -> list[str]:
    args = ["surface", "--surface", surface, "--steps", str(steps)]
    for spec in specs:
        args += ["--opt", spec]
    return args


def config(*specs: str, **fields: Any) -> SurfaceRunConfig:
    return SurfaceRunConfig(tuple(OptimizerConfig.from_text(s) for s in specs), Problem(**fields))


def summary_rows(stdout: str) -> list[list[str]]:
    """The summary table's body rows, split into cells."""
    lines = stdout.splitlines()
    rule = next(i for i, line in enumerate(lines) if set(line.strip()) <= {"-", " "} and line)
    rows = []
    for line in lines[rule + 1 :]:
        if line.startswith("wrote "):
            break
        rows.append(re.split(r"\s{2,}", line.strip()))
    return rows


@pytest.fixture(scope="module")
def full_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One CLI run with --out and --csv, shared by the schema tests."""
    folder = tmp_path_factory.mktemp("cli")
    out, csv_path = folder / "run.json", folder / "run.csv"
    code, stdout, stderr = call(*surface_args(*SPECS), "--out", str(out), "--csv", str(csv_path))
    assert (code, stderr) == (0, "")
    return {
        "stdout": stdout,
        "text": out.read_text(encoding="utf-8"),
        "csv": csv_path.read_text(encoding="utf-8"),
        "engine": collect(config(*SPECS, steps=STEPS)),
    }


# --- JSON schema and values ------------------------------------------------------------


def test_out_is_strict_json_with_the_contract_keys(full_run: dict[str, Any]) -> None:
    data = strict_loads(full_run["text"])
    assert set(data) >= TOP_KEYS
    assert data["surface"] == "rosenbrock"
    assert data["expr"] is None
    assert data["start"] == [-1.2, 1.0]
    assert data["steps"] == STEPS
    assert (data["seed"], data["noise"]) == (0, 0.0)
    assert isinstance(data["torch_version"], str) and data["torch_version"]
    assert [r["optimizer"] for r in data["runs"]] == ["adam", "sgd", "lbfgs"]
    for run in data["runs"]:
        assert set(run) >= RUN_KEYS


def test_out_values_equal_the_engine(full_run: dict[str, Any]) -> None:
    data = strict_loads(full_run["text"])
    for run, tr in zip(data["runs"], full_run["engine"], strict=True):
        assert run["status"] == tr.status
        assert run["diverged_at"] == tr.diverged_at
        assert run["x"] == list(tr.x)
        assert run["y"] == list(tr.y)
        assert run["loss"] == list(tr.loss)
        assert run["evals"] == list(tr.evals)


def test_hessian_eigs_equal_the_engines_at_every_recorded_point(full_run: dict[str, Any]) -> None:
    data = strict_loads(full_run["text"])
    for run, tr in zip(data["runs"], full_run["engine"], strict=True):
        assert len(run["hessian_eigs"]) == len(run["x"]) == len(tr.x)
        eigvals, _ = hessian_eigs(ROSENBROCK, np.column_stack([tr.x, tr.y]))
        expected = [[v if math.isfinite(v) else None for v in row] for row in eigvals.tolist()]
        assert run["hessian_eigs"] == expected
        assert all(a <= b for a, b in run["hessian_eigs"] if a is not None and b is not None)


@pytest.mark.parametrize(
    ("expr", "eigenvalues"),
    [
        ("x**2 + 10*y**2", [2.0, 20.0]),
        # (x + y)² + 4(x − y)²: Hessian [[10, −6], [−6, 10]], axes along (1, ±1).
        ("(x + y)**2 + 4*(x - y)**2", [4.0, 16.0]),
    ],
)
def test_hessian_eigs_of_quadratics_are_their_analytic_values(
    tmp_path: Path, expr: str, eigenvalues: list[float]
) -> None:
    out = tmp_path / "quadratic.json"
    argv = ["surface", "--expr", expr, "--start", "1.5,-1", "--steps", "25"]
    argv += ["--opt", "sgd:lr=0.02", "--opt", "adam:lr=0.1", "--opt", "sgd:lr=0.3"]
    code, _, err = call(*argv, "--out", str(out))
    assert (code, err) == (0, "")
    runs = strict_loads(out.read_text(encoding="utf-8"))["runs"]
    assert len(runs) == 3 and runs[2]["status"] == DIVERGED  # 0.3 > 2/λ_max for both
    for run in runs:
        assert len(run["hessian_eigs"]) == len(run["x"])
        for pair in run["hessian_eigs"]:
            assert pair == pytest.approx(eigenvalues, rel=1e-12)


def test_finished_runs_hold_start_plus_every_step(full_run: dict[str, Any]) -> None:
    data = strict_loads(full_run["text"])
    finished = [r for r in data["runs"] if r["status"] == DONE]
    assert [r["optimizer"] for r in finished] == ["adam", "lbfgs"]
    for run in finished:
        assert run["diverged_at"] is None
        for column in ("x", "y", "loss", "evals"):
            assert len(run[column]) == STEPS + 1, column
        assert [run["x"][0], run["y"][0]] == data["start"]
        assert all(isinstance(v, float) and math.isfinite(v) for v in run["loss"])


def test_diverged_run_is_cut_short_with_its_step(full_run: dict[str, Any]) -> None:
    run = strict_loads(full_run["text"])["runs"][1]
    assert run["status"] == DIVERGED
    assert isinstance(run["diverged_at"], int) and not isinstance(run["diverged_at"], bool)
    assert 1 <= run["diverged_at"] < STEPS
    for column in ("x", "y", "loss", "evals"):
        assert len(run[column]) == run["diverged_at"] + 1


def test_hparams_hold_every_value_with_defaults_filled(full_run: dict[str, Any]) -> None:
    runs = strict_loads(full_run["text"])["runs"]
    by_key = {spec.key: spec for spec in registry.optimizers()}
    for run in runs:
        assert list(run["hparams"]) == [hp.name for hp in by_key[run["optimizer"]].hparams]
    adam = runs[0]["hparams"]
    assert adam["lr"] == 0.05
    assert adam["betas"] == [0.9, 0.999]
    assert adam["eps"] == 1e-8
    assert adam["amsgrad"] is False
    lbfgs = runs[2]["hparams"]
    assert lbfgs["line_search_fn"] == "strong_wolfe"
    assert lbfgs["max_iter"] == 20
    assert lbfgs["history_size"] == 100


def test_default_start_of_a_formula_lies_where_it_is_defined() -> None:
    (tr,) = collect(
        SurfaceRunConfig(
            (OptimizerConfig("adam"),), problem=Problem(surface=CUSTOM, expr="sqrt(x)")
        )
    )
    assert tr.x[0] >= 0 and tr.status == "done"


def test_nan_at_the_start_is_written_as_null(tmp_path: Path) -> None:
    # sqrt(x) is NaN at x < 0: the run diverges at step 0 and the loss has no
    # JSON number.
    out = tmp_path / "nan.json"
    argv = ["surface", "--expr", "sqrt(x)", "--start", "-1,1", "--opt", "adam"]
    code, _, err = call(*argv, "--out", str(out))
    assert (code, err) == (0, "")
    data = strict_loads(out.read_text(encoding="utf-8"))
    assert data["surface"] == CUSTOM and data["expr"] == "sqrt(x)"
    (run,) = data["runs"]
    assert (run["status"], run["diverged_at"]) == (DIVERGED, 0)
    assert run["loss"] == [None]
    assert run["hessian_eigs"] == [[None, None]]
    assert [run["x"][0], run["y"][0]] == data["start"]


def test_noise_seed_start_and_bounds_reach_the_run(tmp_path: Path) -> None:
    out = tmp_path / "noisy.json"
    argv = ["surface", "--expr", "x**2 + 10*y**2", "--bounds=-3,3,-2,2", "--start", "2.5,-1.5"]
    argv += ["--steps", "30", "--opt", "sgd:lr=0.01", "--noise", "0.5", "--seed", "7"]
    code, _, err = call(*argv, "--out", str(out))
    assert (code, err) == (0, "")
    data = strict_loads(out.read_text(encoding="utf-8"))
    assert (data["noise"], data["seed"], data["start"]) == (0.5, 7, [2.5, -1.5])
    assert data["bounds"] == [[-3.0, 3.0], [-2.0, 2.0]]
    cfg = config(
        "sgd:lr=0.01",
        surface=CUSTOM,
        expr="x**2 + 10*y**2",
        bounds=((-3.0, 3.0), (-2.0, 2.0)),
        start=(2.5, -1.5),
        steps=30,
        noise=0.5,
        seed=7,
    )
    (tr,) = collect(cfg)
    assert data["runs"][0]["x"] == list(tr.x)
    assert data["runs"][0]["y"] == list(tr.y)
    quiet = collect(dataclasses.replace(cfg, problem=dataclasses.replace(cfg.problem, noise=0.0)))[
        0
    ]
    assert list(quiet.x) != data["runs"][0]["x"], "the noise did not change the path"


def test_surface_param_changes_the_surface(tmp_path: Path) -> None:
    paths = {}
    for kappa in ("10", "100"):
        out = tmp_path / f"k{kappa}.json"
        code, _, err = call(
            *surface_args("sgd:lr=0.01", steps=5, surface="quadratic"),
            "--param",
            f"kappa={kappa}",
            "--out",
            str(out),
        )
        assert (code, err) == (0, "")
        paths[kappa] = strict_loads(out.read_text(encoding="utf-8"))["runs"][0]["loss"]
    # f = (x² + κy²)/2 at the start (-1.8, 1.2).
    assert paths["10"][0] == pytest.approx(0.5 * (1.8**2 + 10 * 1.2**2))
    assert paths["100"][0] == pytest.approx(0.5 * (1.8**2 + 100 * 1.2**2))


def test_surface_key_is_case_insensitive() -> None:
    code, stdout, _ = call(*surface_args("adam", steps=2, surface="Rosenbrock"))
    assert code == 0
    assert stdout.startswith("Rosenbrock: 2 steps from (-1.2, 1)")


NEGATIVE_FIRST = [
    (
        "start",
        ["--surface", "rosenbrock", "--start", "-1.5,2"],
        "Rosenbrock: 2 steps from (-1.5, 2)",
    ),
    ("bounds", ["--surface", "rosenbrock", "--bounds", "-5,5,-5,5"], "Rosenbrock: 2 steps from"),
    ("expr", ["--expr", "-x**2+y**2"], "f(x, y) = -x**2+y**2: 2 steps from"),
]


@pytest.mark.parametrize(
    ("where", "first_line"), [c[1:] for c in NEGATIVE_FIRST], ids=[c[0] for c in NEGATIVE_FIRST]
)
def test_values_starting_with_a_minus_are_accepted(where: list[str], first_line: str) -> None:
    code, stdout, stderr = call("surface", *where, "--steps", "2", "--opt", "adam")
    assert (code, stderr) == (0, "")
    assert stdout.startswith(first_line)


def test_values_starting_with_a_minus_work_with_equals() -> None:
    code, stdout, _ = call(*surface_args("adam", steps=2), "--start=-1.5,2", "--bounds=-5,5,-5,5")
    assert code == 0
    assert stdout.startswith("Rosenbrock: 2 steps from (-1.5, 2)")


# --- CSV -------------------------------------------------------------------------------


def test_csv_has_a_header_and_one_row_per_optimizer_step(full_run: dict[str, Any]) -> None:
    rows = list(csv.DictReader(io.StringIO(full_run["csv"])))
    engine = full_run["engine"]
    assert len(rows) == sum(len(tr.step) for tr in engine)
    header = next(csv.reader(io.StringIO(full_run["csv"])))
    assert {"step", "x", "y", "loss", "evals", "status"} <= set(header)
    for i, tr in enumerate(engine):
        mine = [r for r in rows if r["label"] == tr.optimizer.label]
        assert [int(r["step"]) for r in mine] == list(tr.step)
        assert [float(r["x"]) for r in mine] == list(tr.x)
        assert [float(r["loss"]) for r in mine] == list(tr.loss)
        assert mine[-1]["status"] == tr.status, i


# --- Summary on stdout -----------------------------------------------------------------


def test_summary_has_one_row_per_optimizer(full_run: dict[str, Any]) -> None:
    stdout = full_run["stdout"]
    assert stdout.startswith(f"Rosenbrock: {STEPS} steps from (-1.2, 1)")
    header = next(line for line in stdout.splitlines() if line.startswith("optimizer"))
    assert "steps to" in header and "status" in header and "evals" in header
    rows = summary_rows(stdout)
    labels = [tr.optimizer.label for tr in full_run["engine"]]
    assert [r[0] for r in rows] == labels
    statuses = [r[-1] for r in rows]
    sgd = full_run["engine"][1]
    assert statuses == ["done", f"diverged at step {sgd.diverged_at}", "done"]
    assert "wrote" in stdout


def test_summary_steps_to_and_evals_columns(full_run: dict[str, Any]) -> None:
    rows = summary_rows(full_run["stdout"])
    header = next(
        re.split(r"\s{2,}", line.strip())
        for line in full_run["stdout"].splitlines()
        if line.startswith("optimizer")
    )
    steps_to = header.index(next(h for h in header if h.startswith("steps to")))
    evals = header.index("evals")
    adam, sgd, lbfgs = rows
    assert adam[steps_to] == "-" and sgd[steps_to] == "-"
    # LBFGS with a line search reaches Rosenbrock's minimum within a few steps
    # and spends more function evaluations than steps.
    lbfgs_tr = full_run["engine"][2]
    assert int(lbfgs[steps_to]) == lbfgs_tr.steps_to_reach(0.0)
    assert int(lbfgs[steps_to]) < STEPS
    assert int(lbfgs[evals]) > STEPS
    assert int(adam[evals]) == STEPS


def test_contract_example_runs() -> None:
    argv = ["surface", "--surface", "rosenbrock", "--steps", "60"]
    for spec in CONTRACT_SPECS:
        argv += ["--opt", spec]
    code, stdout, err = call(*argv)
    assert (code, err) == (0, "")
    labels = [r[0] for r in summary_rows(stdout)]
    assert labels == [
        "Adam (lr=0.05)",
        "SGD (momentum=0.9, nesterov)",
        "L-BFGS (line_search_fn=strong_wolfe)",
    ]
    assert [r[-1] for r in summary_rows(stdout)] == ["done"] * 3


def test_presets_work_as_opt_keys() -> None:
    code, stdout, _ = call(*surface_args(*(p.key for p in PRESETS), steps=3))
    assert code == 0
    assert [r[0] for r in summary_rows(stdout)] == [
        OptimizerConfig.create(p.key).label for p in PRESETS
    ]


# --- Bad input -------------------------------------------------------------------------

ROSEN = ["surface", "--surface", "rosenbrock", "--steps", "5"]
ADAM = ["--opt", "adam"]
BAD_INPUTS = [
    ("unknown surface", ["surface", "--surface", "nope", *ADAM], "unknown surface 'nope'"),
    ("traversal surface", ["surface", "--surface", "../x", *ADAM], "unknown surface"),
    ("unknown optimizer", [*ROSEN, "--opt", "foo"], "unknown optimizer 'foo'"),
    (
        "one cycle without momentum",
        [*ROSEN, "--opt", "adagrad", "--plan", "onecycle"],
        "OneCycleLR cannot drive Adagrad: ",
    ),
    ("lr negative", [*ROSEN, "--opt", "adam:lr=-1"], "Invalid lr value: -1"),
    ("lr nan", [*ROSEN, "--opt", "adam:lr=nan"], "Invalid lr value: nan"),
    ("lr inf", [*ROSEN, "--opt", "adam:lr=inf"], "Invalid lr value"),
    ("momentum negative", [*ROSEN, "--opt", "sgd:momentum=-0.5"], "Invalid momentum value: -0.5"),
    ("max_iter over the cap", [*ROSEN, "--opt", "lbfgs:max_iter=201"], "this server's cap"),
    ("unknown hparam", [*ROSEN, "--opt", "sgd:foo=1"], "no hyperparameter 'foo'"),
    (
        "bad bool",
        [*ROSEN, "--opt", "sgd:momentum=0.9,nesterov=maybe"],
        "Invalid nesterov value: 'maybe'",
    ),
    ("bad tuple", [*ROSEN, "--opt", "adam:betas=0.9"], "Invalid betas value"),
    ("bad choice", [*ROSEN, "--opt", "lbfgs:line_search_fn=foo"], "line_search_fn"),
    ("float for int", [*ROSEN, "--opt", "lbfgs:max_iter=1.5"], "max_iter"),
    ("nesterov w/o momentum", [*ROSEN, "--opt", "sgd:nesterov=true"], "Nesterov"),
    ("item without =", [*ROSEN, "--opt", "adam:lr"], "expected name=value"),
    ("hparam twice", [*ROSEN, "--opt", "adam:lr=0.1,lr=0.2"], "twice"),
    ("empty spec", [*ROSEN, "--opt", " "], "empty optimizer spec"),
    ("formula import", ["surface", "--expr", "__import__('os')", *ADAM], "__import__"),
    ("formula attribute", ["surface", "--expr", "x.real", *ADAM], "attribute"),
    ("formula power tower", ["surface", "--expr", "9**9**9", *ADAM], "too large"),
    ("formula unknown name", ["surface", "--expr", "z", *ADAM], "unknown name 'z'"),
    ("formula syntax", ["surface", "--expr", "x +", *ADAM], "expr"),
    ("formula too long", ["surface", "--expr", "x" * 600, *ADAM], "too long"),
    ("formula empty", ["surface", "--expr", "", *ADAM], "needs a formula"),
    ("formula nowhere finite", ["surface", "--expr", "log(-1-x**2)", *ADAM], "not finite"),
    ("steps zero", ["surface", "--surface", "rosenbrock", "--steps", "0", *ADAM], "steps"),
    ("steps too many", ["surface", "--surface", "rosenbrock", "--steps", "5001", *ADAM], "5000"),
    ("steps text", ["surface", "--surface", "rosenbrock", "--steps", "abc", *ADAM], "--steps"),
    ("missing opt", ROSEN, "--opt"),
    ("surface and expr", [*ROSEN, "--expr", "x**2", *ADAM], "not allowed with"),
    ("neither surface nor expr", ["surface", *ADAM], "--surface"),
    ("start one number", [*ROSEN, *ADAM, "--start", "1"], "start: expected 2 finite numbers"),
    ("start letters", [*ROSEN, *ADAM, "--start", "a,b"], "start: expected 2 finite numbers"),
    ("start nan", [*ROSEN, *ADAM, "--start", "nan,0"], "start: expected 2 finite numbers"),
    ("start far", [*ROSEN, *ADAM, "--start", "1e9,0"], "start"),
    ("bounds three", [*ROSEN, *ADAM, "--bounds", "1,2,3"], "bounds: expected 4 finite numbers"),
    ("bounds reversed", [*ROSEN, *ADAM, "--bounds", "1,0,0,1"], "xmin must be below xmax"),
    ("bounds inf", [*ROSEN, *ADAM, "--bounds", "-inf,1,0,1"], "bounds"),
    (
        "param out of range",
        ["surface", "--surface", "quadratic", *ADAM, "--param", "kappa=0.5"],
        "Invalid kappa value: 0.5",
    ),
    (
        "param unknown",
        ["surface", "--surface", "quadratic", *ADAM, "--param", "foo=1"],
        "no parameter 'foo'",
    ),
    (
        "param without =",
        ["surface", "--surface", "quadratic", *ADAM, "--param", "kappa"],
        "expected name=value",
    ),
    ("param on paramless surface", [*ROSEN, *ADAM, "--param", "kappa=2"], "no parameter 'kappa'"),
    (
        "param on custom",
        ["surface", "--expr", "x**2", *ADAM, "--param", "kappa=2"],
        "do not apply to a custom formula",
    ),
    ("noise nan", [*ROSEN, *ADAM, "--noise", "nan"], "noise"),
    ("noise negative", [*ROSEN, *ADAM, "--noise", "-1"], "noise"),
    ("noise huge", [*ROSEN, *ADAM, "--noise", "1e9"], "noise"),
    ("seed negative", [*ROSEN, *ADAM, "--seed", "-1"], "seed"),
    ("too many opts", [*ROSEN, *ADAM * (MAX_OPTIMIZERS + 1)], f"at most {MAX_OPTIMIZERS}"),
    ("unknown subcommand", ["frobnicate"], "invalid choice: 'frobnicate'"),
    ("no subcommand", [], "required"),
    ("unknown option", [*ROSEN, *ADAM, "--colour", "red"], "--colour"),
]


@pytest.mark.parametrize(
    ("argv", "fragment"), [c[1:] for c in BAD_INPUTS], ids=[c[0] for c in BAD_INPUTS]
)
def test_bad_input_exits_2_with_one_line(argv: list[str], fragment: str) -> None:
    code, stdout, stderr = call(*argv)
    assert code == 2
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert lines[0].startswith("optlab: error: ")
    assert fragment in lines[0]
    assert "Traceback" not in stderr
    assert stdout == "", "a rejected run must not print a half summary"


def test_values_torch_accepts_run_with_one_warning_line_each() -> None:
    """lr = 0 and momentum ≥ 1 are torch's to take (they used to be refused): the run
    goes on, and stderr says what each unusual value does, naming its optimizer."""
    code, stdout, stderr = call(
        *ROSEN,
        "--steps",
        "5",
        "--opt",
        "adam:lr=0",
        "--opt",
        "sgd:lr=1e-5,momentum=1.2",
        "--plan",
        "none",
        "--plan",
        "onecycle",
    )
    assert code == 0, stderr
    assert stderr.splitlines() == [
        "warning: Adam (lr=0): lr: γ = 0: the parameters never move",
        "warning: SGD (lr=1e-05, momentum=1.2): momentum: μ ≥ 1: the buffer never forgets "
        "a gradient, so the iterates cannot settle (μ > 1 diverges): the classic divergence demo",
        "warning: SGD (lr=1e-05, momentum=1.2): OneCycleLR replaces SGD's momentum with its "
        "own cycle, 0.95 → 0.85 → 0.95 (cycle_momentum=true, torch's default)",
    ]
    assert "Adam (lr=0)" in stdout


@pytest.mark.parametrize("option", ["--out", "--csv"])
def test_output_into_a_missing_folder_fails_before_running(tmp_path: Path, option: str) -> None:
    target = tmp_path / "missing" / "run.file"
    code, stdout, stderr = call(*surface_args("adam", steps=5), option, str(target))
    assert code == 2
    assert stdout == ""
    assert stderr.count("\n") == 1
    assert option in stderr and "does not exist" in stderr
    assert not target.parent.exists()


def test_output_onto_a_folder_is_rejected(tmp_path: Path) -> None:
    code, _, stderr = call(*surface_args("adam", steps=5), "--out", str(tmp_path))
    assert code == 2
    assert "is a folder" in stderr
    assert stderr.count("\n") == 1


def test_rejected_run_writes_no_file(tmp_path: Path) -> None:
    out = tmp_path / "run.json"
    code, _, _ = call(*surface_args("adam:lr=-1", steps=5), "--out", str(out))
    assert code == 2
    assert list(tmp_path.iterdir()) == []


def test_rerun_replaces_the_output_file(tmp_path: Path) -> None:
    out = tmp_path / "run.json"
    out.write_text("old contents", encoding="utf-8")
    code, _, _ = call(*surface_args("adam", steps=3), "--out", str(out))
    assert code == 0
    assert strict_loads(out.read_text(encoding="utf-8"))["steps"] == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.json"]


# --- list ------------------------------------------------------------------------------


def test_list_names_every_optimizer_hparam_preset_and_surface() -> None:
    code, stdout, stderr = call("list")
    assert (code, stderr) == (0, "")
    words = set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", stdout))
    for spec in registry.optimizers():
        assert spec.key in words, spec.key
        for hp in spec.hparams:
            assert f"{hp.name}=" in stdout, (spec.key, hp.name)
    for preset in PRESETS:
        assert preset.key in words
    for surface in SURFACES:
        assert surface.key in words
        for hp in surface.params:
            assert f"--param {hp.name}=" in stdout
    assert CUSTOM in words


def test_list_names_each_surface_s_global_minima_and_counts_the_local_ones() -> None:
    _, stdout, _ = call("list")
    lines = {line.split()[0]: line for line in stdout.splitlines() if line.startswith("  ")}
    for surface in SURFACES:
        line = lines[surface.key]
        n = len(surface.local_minima)
        assert (f"; {n} local minim" in line) == (n > 0), line
        for m in surface.minima:
            assert f"f({m.x:.6g}, {m.y:.6g}) = {m.value:.10g}" in line, line
    assert "; 120 local minima" in lines["rastrigin"]
    assert "f(-2.90353, -2.90353) = -78.33233141; 3 local minima" in lines["styblinski_tang"]
    assert "no minimum" in lines["saddle"]
    assert "estimated" in lines[CUSTOM]


def test_list_shows_hparams_under_their_optimizer() -> None:
    _, stdout, _ = call("list")
    lines = stdout.splitlines()
    for spec in registry.optimizers():
        at = next(i for i, line in enumerate(lines) if line.split()[:1] == [spec.key])
        block = lines[at + 1 : at + 1 + len(spec.hparams)]
        names = [line.split("=", 1)[0].strip() for line in block]
        assert names == [hp.name for hp in spec.hparams], spec.key


# --- The real entry point --------------------------------------------------------------


def run_module(*argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "optlab", *argv],
        cwd=ROOT,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=120,
        env=env,
    )


def test_module_entry_point_runs_and_writes_json(tmp_path: Path) -> None:
    out = tmp_path / "run.json"
    argv = ["surface", "--surface", "rosenbrock", "--steps", "20"]
    for spec in CONTRACT_SPECS:
        argv += ["--opt", spec]
    proc = run_module(*argv, "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    data = strict_loads(out.read_text(encoding="utf-8"))
    assert [r["status"] for r in data["runs"]] == [DONE] * 3
    engine = collect(config(*CONTRACT_SPECS, steps=20))
    assert [r["x"] for r in data["runs"]] == [list(tr.x) for tr in engine]
    assert f"wrote {out}" in proc.stdout


def test_module_entry_point_bad_input_is_one_line_exit_2() -> None:
    proc = run_module("surface", "--surface", "rosenbrock", "--opt", "adam:lr=-1")
    assert proc.returncode == 2
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert lines == ["optlab: error: Invalid lr value: -1 (must be in [0, inf); torch's own check)"]
    assert proc.stdout == ""


def test_module_entry_point_list() -> None:
    proc = run_module("list")
    assert proc.returncode == 0 and proc.stderr == ""
    assert all(spec.key in proc.stdout for spec in registry.optimizers())
    assert all(surface.key in proc.stdout for surface in SURFACES)


def test_list_survives_a_stdout_that_cannot_encode_greek() -> None:
    env = {**os.environ, "PYTHONIOENCODING": "cp1252"}
    proc = subprocess.run(
        [sys.executable, "-m", "optlab", "list"],
        cwd=ROOT,
        capture_output=True,
        timeout=120,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr.decode("cp1252", "replace")
    assert b"Surfaces:" in proc.stdout


def test_huge_integer_in_a_spec_exits_2_with_one_line() -> None:
    code, out, err = call(
        "surface", "--surface", "rosenbrock", "--opt", "lbfgs:max_iter=" + "9" * 400
    )
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and "far too large" in err and "Traceback" not in err
