"""Export as script: the exported file, run on its own, gives the engine's numbers.

Each exported script runs in a fresh interpreter (``sys.executable``, in a
temporary folder, without ``PYTHONPATH``, so nothing of OptLab is importable)
and its last stdout line is compared with the engine as the oracle:
`optlab.surface.trajectory.collect` for surface runs (to 1e-9) and `TrainingSession`
on the same CIFAR-10 subset for a tiny CNN run (float32 tolerance, final
weights included). The surface scripts, one of them written by the CLI, run
side by side to keep this file fast.
"""

from __future__ import annotations

import ast
import contextlib
import dataclasses
import io
import json
import math
import os
import pickle
import runpy
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from optlab.cli import main
from optlab.optim.config import OptimizerConfig
from optlab.optim.hparams import HParam
from optlab.optim.packs import library_of
from optlab.optim.plans import Change, Plan
from optlab.optim.schedulers import SCHEDULERS, SchedulerConfig
from optlab.optim.spec import OptimizerSpec
from optlab.script import data_folder_hint, surface_script, train_script
from optlab.surface import surfaces
from optlab.surface.formula import FUNCTIONS
from optlab.surface.problem import Problem
from optlab.surface.run import SurfaceRunConfig
from optlab.surface.surfaces import Surface
from optlab.surface.trajectory import Trajectory, collect
from optlab.train.data import load_batches_dir, load_cifar10
from optlab.train.models import build_model, param_groups
from optlab.train.optimizers import slot_optimizer
from optlab.train.run import EvalRecord, TrainingSession, TrainRunConfig, TrainSlot
from tests.support.inputs import SURFACES, first_inputs
from tests.support.resources import register, require_cifar_subset
from tests.support.signsgd import SIGNSGD

TIMEOUT = 300
#: What an exported script may import: torch and the standard library, nothing else.
ALLOWED_IMPORTS = {"__future__", "_codecs", "argparse", "collections", "json", "math", "os"}
ALLOWED_IMPORTS |= {"pathlib", "pickle", "sys", "typing", "torch"}

#: Every function a formula may call, folded constants (2^0.5*pi/e, -1/0 = -inf
#: as an operand), unary signs, a constant on either side of each operator, and
#: a comment a hostile share link could try to break out of the script with.
FORMULA = (
    "sin(x) + cos(y) + tan(0.1*x) + asin(0.5*sigmoid(x)) + acos(0.5*sigmoid(y)) + atan(x*y)"
    " + sinh(0.1*x) + cosh(0.1*y) + tanh(x) + exp(-x^2) + log(1 + y^2) + log2(2 + x^2)"
    " + log10(3 + y^2) + sqrt(1 + x^2 + y^2) + abs(x - 1) + softplus(-y) + atan2(y, 2)"
    " + atan2(-2, x + 10) + min(1, x) + max(y, -1) + hypot(x, 3) + max(x, -1/0) - x"
    " + x^2/4 + y**2/4 - 2/(3 + x^2) + 2^0.5*pi/e + 2^x/8 + (-y)^2 * +x/10 - (-(3))"
    ' # """; import os; os.system("echo INJECTED")'
)


def opts(*specs: str) -> tuple[OptimizerConfig, ...]:
    return tuple(OptimizerConfig.from_text(s) for s in specs)


#: The surface runs exported, by name (their configs need signSGD registered).
CASES = (
    "rosenbrock: Adam, SGD with momentum, a diverging SGD and an own optimizer",
    "a custom formula with every function",
    "schedulers and mid-run changes, with noise",
)
#: Noise with a seed (a shared draw per step, and L-BFGS's own per closure
#: call), L-BFGS with strong_wolfe: exported by the CLI, beside the others.
CLI_CASE = "the CLI: noise with a seed, L-BFGS with strong_wolfe"
CLI_ARGS = ["surface", "--surface", "quadratic", "--param", "kappa=50", "--start", "1.5,-1.2"]
CLI_ARGS += ["--steps", "20", "--noise", "0.3", "--seed", "11", "--opt", "adam:lr=0.1"]
CLI_ARGS += ["--opt", "nesterov:lr=0.01", "--opt", "lbfgs:line_search_fn=strong_wolfe"]
CLI_ARGS += ["--opt", "lbfgs:max_iter=5,history_size=3"]


def surface_cases() -> dict[str, SurfaceRunConfig]:
    configs = (
        SurfaceRunConfig(
            opts("adam:lr=0.05", "sgd:lr=0.001,momentum=0.9", "sgd:lr=1", "signsgd:lr=0.05"),
            problem=Problem(steps=100),
        ),
        SurfaceRunConfig(
            opts("adam:lr=0.05", "rmsprop:lr=0.01,centered=true"),
            problem=Problem(surface="custom", expr=FORMULA, steps=30),
        ),
        SurfaceRunConfig(
            opts("sgd:lr=0.001,momentum=0.9", "adam:lr=0.05", "rmsprop:lr=0.01"),
            plans=(
                Plan.from_text("onecycle|30:momentum=0.5"),
                Plan.from_text("none|20:lr*=0.5"),
                Plan.from_text("plateau:patience=1"),
            ),
            problem=Problem(steps=80, noise=0.2, seed=1),
        ),
    )
    return dict(zip(CASES, configs, strict=True))


def run_script(path: Path, *args: str) -> subprocess.Popen[str]:
    """Starts ``python path`` in its folder, with nothing of OptLab importable."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.Popen(
        [sys.executable, path.name, *args],
        cwd=path.parent,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(proc: subprocess.Popen[str]) -> tuple[str, dict[str, Any]]:
    """Waits for a script; returns its stdout and its last line's JSON."""
    try:
        out, err = proc.communicate(timeout=TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err[-3000:]
    return out, json.loads(out.strip().splitlines()[-1])


def imported_modules(source: str) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            roots.add((node.module or "").split(".")[0])
    return roots


def ends(trajectories: list[Trajectory]) -> list[dict[str, Any]]:
    """Where the engine's runs ended, as the script reports it (non-finite: None)."""
    return [
        {
            "optimizer": tr.optimizer.key,
            "label": tr.optimizer.label,
            "status": tr.status,
            "steps": tr.step[-1],
            "final": [v if math.isfinite(v) else None for v in (tr.x[-1], tr.y[-1])],
            "final_loss": tr.loss[-1] if math.isfinite(tr.loss[-1]) else None,
        }
        for tr in trajectories
    ]


@dataclass
class Exported:
    """One exported run: the engine's ends, the script, and what running it printed."""

    expected: list[dict[str, Any]]
    source: str
    stdout: str
    document: dict[str, Any]


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Exported]:
    """Every case exported, the scripts run side by side, with the engine's ends."""
    folder = tmp_path_factory.mktemp("surface-scripts")
    with pytest.MonkeyPatch.context() as mp:
        register(mp, SIGNSGD)
        cases = surface_cases()
        sources = {name: surface_script(cfg) for name, cfg in cases.items()}
        expected = {name: ends(collect(cfg)) for name, cfg in cases.items()}
    procs = {}
    for i, (name, source) in enumerate(sources.items()):
        path = folder / f"case_{i}.py"
        path.write_text(source, encoding="utf-8")
        procs[name] = run_script(path)

    script, out_json = folder / "cli_script.py", folder / "cli_run.json"
    with contextlib.redirect_stdout(io.StringIO()) as printed:
        status = main([*CLI_ARGS, "--out", str(out_json), "--export-script", str(script)])
    procs[CLI_CASE] = run_script(script)
    assert status == 0 and f"wrote {script}" in printed.getvalue()
    document = json.loads(out_json.read_text())
    sources[CLI_CASE] = script.read_text(encoding="utf-8")
    expected[CLI_CASE] = [
        {
            "optimizer": run["optimizer"],
            "label": run["label"],
            "status": run["status"],
            "steps": len(run["x"]) - 1,
            "final": [run["x"][-1], run["y"][-1]],
            "final_loss": run["loss"][-1],
        }
        for run in document["runs"]
    ]
    return {
        name: Exported(expected[name], sources[name], *finish(proc)) for name, proc in procs.items()
    }


def assert_same_ends(expected: list[dict[str, Any]], document: dict[str, Any]) -> None:
    runs = document["runs"]
    assert len(runs) == len(expected)
    for want, got in zip(expected, runs, strict=True):
        numbers = [*want["final"], want["final_loss"]]
        assert {k: got[k] for k in want if k not in ("final", "final_loss")} == {
            k: want[k] for k in want if k not in ("final", "final_loss")
        }
        for value, target in zip([*got["final"], got["final_loss"]], numbers, strict=True):
            if target is None:
                assert value is None  # JSON's null for a non-finite number
            else:
                assert value == pytest.approx(target, rel=0, abs=1e-9)


@pytest.mark.parametrize("case", [*CASES, CLI_CASE])
def test_surface_script_reproduces_the_engine(case: str, exported: dict[str, Exported]) -> None:
    run = exported[case]
    assert_same_ends(run.expected, run.document)
    assert imported_modules(run.source) <= ALLOWED_IMPORTS
    assert "Export as script" in run.source and "python <this file>" in run.source


def test_the_cases_cover_what_they_claim(exported: dict[str, Exported]) -> None:
    first, formula = (exported[name] for name in CASES[:2])
    assert [run["status"] for run in first.document["runs"]] == ["done", "done", "diverged", "done"]
    assert "class SignSGD" in first.source
    # The formula (and the comment in it) reaches the script as a string literal only.
    assert "INJECTED" not in formula.stdout
    literals = [
        node.value
        for node in ast.walk(ast.parse(formula.source))
        if isinstance(node, ast.Constant) and isinstance(node.value, str)
    ]
    assert FORMULA in literals


def test_optimizers_that_cannot_be_rebuilt_are_refused(monkeypatch) -> None:
    def factory(params, lr=1e-2):
        return torch.optim.SGD(params, lr=lr)

    spec = OptimizerSpec(
        key="wrapped",
        label="Wrapped SGD",
        factory=factory,
        hparams=(HParam("lr", 1e-2, 0.0, 1000.0, log=True, low_open=True),),
        rule="",
    )
    register(monkeypatch, spec)
    cfg = SurfaceRunConfig(opts("wrapped"), problem=Problem(steps=3))
    with pytest.raises(ValueError, match=r"Wrapped SGD is not a torch\.optim\.Optimizer class"):
        surface_script(cfg)


# --- CNN runs ----------------------------------------------------------------------------


def tiny_cnn_config() -> TrainRunConfig:
    return TrainRunConfig(
        slots=(
            TrainSlot(
                OptimizerConfig.from_text("sgd:lr=0.05,momentum=0.9"),
                10.0,
                SchedulerConfig.from_text("onecycle"),
                # Manual changes: one by step, one by epoch (4 steps an epoch) for one group.
                (Change(2, "momentum", 0.5), Change(1, "lr", 0.5, True, "classifier", epoch=True)),
            ),
            # The closure path, on the default memory layout, with the plateau scheduler.
            TrainSlot(
                OptimizerConfig.from_text("lbfgs:lr=0.1,max_iter=2"),
                1.0,
                SchedulerConfig.from_text("plateau:patience=0"),
            ),
        ),
        batch_size=32,
        steps=6,
        epochs=None,
        train_limit=128,
        test_limit=64,
        augment=True,
        clip_grad_norm=5.0,
        eval_every=3,
        device="cpu",
    )


def test_cnn_script_reproduces_the_engine(tmp_path: Path) -> None:
    subset = require_cifar_subset()
    cfg = tiny_cnn_config()
    source = train_script(cfg, str(subset), data_kind="folder")
    assert imported_modules(source) <= ALLOWED_IMPORTS
    path = tmp_path / "train_script.py"
    path.write_text(source, encoding="utf-8")
    # The folder comes from the command line here; the embedded default is the same one.
    proc = run_script(path, str(subset.parent), "--save", "weights.pt")

    session = TrainingSession(cfg, load_cifar10(data_dir=subset))
    records = list(session.run())
    out, document = finish(proc)

    saved = torch.load(tmp_path / "weights.pt", weights_only=True)
    assert len(document["runs"]) == len(cfg.slots)
    for i, (slot, run) in enumerate(zip(cfg.slots, document["runs"], strict=True)):
        last = [r for r in records if isinstance(r, EvalRecord) and r.index == i][-1]
        assert run["optimizer"] == slot.optimizer.key and run["label"] == slot.label
        assert run["status"] == session.status[i] == "done"
        assert run["final"] is None and run["steps"] == cfg.steps
        assert run["final_loss"] == pytest.approx(last.test_loss, rel=1e-5)
        assert run["final_test_acc"] == pytest.approx(last.test_acc)
        weights = session.models[i].state_dict()
        assert saved["models"][i].keys() == weights.keys()
        for name, value in weights.items():
            torch.testing.assert_close(saved["models"][i][name], value, msg=name)
    assert f"step {cfg.steps}, test loss" in out


def test_synthetic_runs_cannot_be_exported() -> None:
    with pytest.raises(ValueError, match="synthetic"):
        train_script(tiny_cnn_config(), None, data_kind="synthetic")


def test_the_data_folder_hint_is_the_folder_itself(tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "cifar-10-batches-py").mkdir()
    monkeypatch.delenv("OPTLAB_DATA_DIR", raising=False)
    assert data_folder_hint("folder", tmp_path) == str(tmp_path / "cifar-10-batches-py")
    assert data_folder_hint("folder", None) is None
    monkeypatch.setenv("OPTLAB_CACHE_DIR", str(tmp_path))
    assert data_folder_hint("cache") == str(tmp_path / "cifar-10-batches-py")
    assert data_folder_hint("synthetic") is None


# --- The CLI -----------------------------------------------------------------------------


def test_cli_train_on_synthetic_data_refuses_to_export(tmp_path: Path, capsys) -> None:
    script = tmp_path / "train_script.py"
    argv = ["train", "--synthetic", "--opt", "adam", "--steps", "1", "--batch-size", "8"]
    argv += ["--train-limit", "16", "--test-limit", "8", "--device", "cpu"]
    assert main([*argv, "--export-script", str(script)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and "synthetic" in lines[0], captured.err
    assert not script.exists()


@pytest.mark.parametrize("protocol", [2, 4, 5])
@pytest.mark.parametrize("labels_as", ["list", "array", "scalars"])
def test_the_scripts_loader_reads_batches_as_optlab_does(tmp_path: Path, protocol, labels_as):
    """Batches re-saved by numpy today load as the official ones do (torch only)."""
    np = pytest.importorskip("numpy")
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    rng = np.random.default_rng(protocol)
    for i, name in enumerate([*(f"data_batch_{k}" for k in range(1, 6)), "test_batch"]):
        data = rng.integers(0, 256, size=(3 + i, 3072), dtype=np.uint8)
        labels = rng.integers(0, 10, size=3 + i)
        if labels_as == "list":
            labels = labels.tolist()
        elif labels_as == "scalars":
            labels = list(labels)
        with open(folder / name, "wb") as f:
            pickle.dump({b"data": data, "labels": labels}, f, protocol=protocol)
    cfg = dataclasses.replace(tiny_cnn_config(), train_limit=None, test_limit=None)
    script = tmp_path / "loader.py"
    script.write_text(train_script(cfg, None, data_kind="folder"), encoding="utf-8")
    # Run for its definitions only: main() is behind the __name__ guard.
    namespace = runpy.run_path(str(script), run_name="exported")
    mine = namespace["load_cifar10"](folder, namespace["SETTINGS"])
    train, test = load_batches_dir(folder)
    for got, want in zip(mine, (train.images, train.labels, test.images, test.labels), strict=True):
        assert got.dtype == want.dtype
        assert torch.equal(got, want)


def test_every_formula_function_can_be_exported() -> None:
    for name, spec in FUNCTIONS.items():
        args = ", ".join(["x", "y"][: spec.arity])
        cfg = SurfaceRunConfig(
            opts("adam"), problem=Problem(surface="custom", expr=f"{name}({args}) + x^2", steps=1)
        )
        assert "def f(xy: Tensor)" in surface_script(cfg), name


def run(xy: torch.Tensor) -> torch.Tensor:
    """A surface whose function has the name of the script's own ``run``."""
    return (xy**2).sum(-1)


def test_a_name_clash_fails_the_export_not_the_script(monkeypatch) -> None:
    clash = Surface("clash", "Clash", run, ((-1.0, 1.0), (-1.0, 1.0)), (0.5, 0.5))
    monkeypatch.setitem(surfaces._BY_KEY, clash.key, clash)
    cfg = SurfaceRunConfig(opts("adam"), problem=Problem(surface="clash", steps=1))
    with pytest.raises(ValueError, match="'run' would be defined twice"):
        surface_script(cfg)


@pytest.mark.parametrize("key", [spec.key for spec in SCHEDULERS])
def test_every_scheduler_is_written_as_optlab_builds_it(tmp_path: Path, key: str) -> None:
    slot = TrainSlot(OptimizerConfig.from_text("sgd:lr=0.1"), 2.0, SchedulerConfig(key))
    cfg = dataclasses.replace(tiny_cnn_config(), slots=(slot,), steps=12)
    script = tmp_path / "schedule.py"
    script.write_text(train_script(cfg, None, data_kind="folder"), encoding="utf-8")
    mine = runpy.run_path(str(script), run_name="exported")
    model = mine["build_model"](mine["make_model"], mine["SETTINGS"]["seed"])
    optimizer, scheduler = mine["setup_1"](model, cfg.steps)

    reference = build_model(cfg.model, cfg.seed)
    torch.testing.assert_close(model.state_dict(), reference.state_dict(), rtol=0, atol=0)
    engine_optimizer = slot.optimizer.build(param_groups(reference, 0.1, 2.0))
    engine_scheduler = slot.scheduler.build(engine_optimizer, cfg.steps)
    assert type(scheduler) is type(engine_scheduler)
    for step in range(cfg.steps):
        lrs = [group["lr"] for group in optimizer.param_groups]
        assert lrs == [group["lr"] for group in engine_optimizer.param_groups], step
        if scheduler is None:
            continue
        optimizer.step()
        engine_optimizer.step()
        if slot.scheduler.spec.on_plateau:
            scheduler.step(1.0)  # no improvement: the lr drops after `patience`
            engine_scheduler.step(1.0)
        else:
            scheduler.step()
            engine_scheduler.step()


@pytest.mark.parametrize("found", first_inputs(), ids=lambda i: i.id)
def test_every_optimizer_s_script_runs_its_path(found, tmp_path: Path) -> None:
    """The table's first input of each optimizer (plugins included), exported and run in
    this process: the script's own loop (`optlab.script.runtime.surface`, embedded)
    ends where the engine does."""
    problem = dataclasses.replace(SURFACES[found.surfaces[0]], steps=40)
    cfg = SurfaceRunConfig((found.config,), problem)
    library = library_of(found.config.spec.factory)
    if library is not None:  # an optimizer pack's: refused, saying why
        with pytest.raises(ValueError, match=f"comes from the {library} library"):
            surface_script(cfg)
        return
    script = tmp_path / "one.py"
    script.write_text(surface_script(cfg), encoding="utf-8")
    mine = runpy.run_path(str(script), run_name="exported")  # main() stays behind its guard
    (result,) = [mine["run"](opt, mine["f"], mine["SETTINGS"]) for opt in mine["OPTIMIZERS"]]
    assert_same_ends(ends(collect(cfg)), {"runs": [result]})


#: Values only a text form can carry: an optional number (torch's None or a number),
#: a pair with an optional element, and OneCycleLR's momentum cycle set away from torch's.
NEW_KNOBS = [
    ("lbfgs:line_search_fn=strong_wolfe,max_eval=8", "none"),
    ("adafactor:lr=0.05,eps=none/0.01", "none"),
    ("adafactor:lr=0.05,eps=1e-20/0.01", "none"),
    (
        "sgd:lr=0.001,momentum=0.9",
        "onecycle:base_momentum=0.7,max_momentum=0.9,anneal_strategy=linear,three_phase=true",
    ),
    ("adam:lr=0.01", "onecycle:cycle_momentum=false,div_factor=5"),
]


@pytest.mark.parametrize(("text", "plan"), NEW_KNOBS, ids=[f"{t}|{p}" for t, p in NEW_KNOBS])
def test_optional_values_and_one_cycle_knobs_reach_the_script(text, plan, tmp_path) -> None:
    cfg = SurfaceRunConfig(
        opts(text), plans=(Plan.from_text(plan),), problem=Problem(surface="rosenbrock", steps=30)
    )
    script = tmp_path / "knobs.py"
    script.write_text(surface_script(cfg), encoding="utf-8")
    mine = runpy.run_path(str(script), run_name="exported")
    (result,) = [mine["run"](opt, mine["f"], mine["SETTINGS"]) for opt in mine["OPTIMIZERS"]]
    assert_same_ends(ends(collect(cfg)), {"runs": [result]})


def test_a_muon_slot_is_written_as_muon_and_adamw_stepped_together(tmp_path: Path) -> None:
    """The script's setup builds the engine's pair (Muon on the Linear weights, AdamW on
    the rest, each with its own classifier lr) and steps it to the same weights."""
    slot = TrainSlot(
        OptimizerConfig.from_text("muon:lr=0.02,nesterov=false"),
        2.0,
        SchedulerConfig("cosine"),
        companion=OptimizerConfig.from_text("adamw:lr=0.001,betas=0.8/0.99"),
    )
    cfg = dataclasses.replace(tiny_cnn_config(), slots=(slot,), steps=3)
    source = train_script(cfg, None, data_kind="folder")
    assert imported_modules(source) <= ALLOWED_IMPORTS
    script = tmp_path / "muon.py"
    script.write_text(source, encoding="utf-8")
    mine = runpy.run_path(str(script), run_name="exported")
    model = mine["build_model"](mine["make_model"], mine["SETTINGS"]["seed"])
    optimizer, scheduler = mine["setup_1"](model, cfg.steps)
    muon, adamw = optimizer.parts
    assert type(muon) is torch.optim.Muon and type(adamw) is torch.optim.AdamW
    assert [g["lr"] for g in optimizer.param_groups] == [0.04, 0.001, 0.002]

    reference = build_model(cfg.model, cfg.seed)
    engine_optimizer = slot_optimizer(slot, reference)
    engine_scheduler = slot.scheduler.build(engine_optimizer, cfg.steps)
    gen = torch.Generator().manual_seed(0)
    for _ in range(cfg.steps):
        x = torch.randn(8, 3, 32, 32, generator=gen)
        y = torch.randint(0, 10, (8,), generator=gen)
        for net, opt, sched in (
            (model, optimizer, scheduler),
            (reference, engine_optimizer, engine_scheduler),
        ):
            opt.zero_grad()
            nn.functional.cross_entropy(net(x), y).backward()
            opt.step()
            sched.step()
    for (name, a), b in zip(
        model.state_dict().items(), reference.state_dict().values(), strict=True
    ):
        assert torch.equal(a, b), name
