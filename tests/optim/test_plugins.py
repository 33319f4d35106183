"""Optimizer plugins (optlab.optim.plugins) and the worked example, Lion (optlab/examples/lion.py).

Lion is checked against the update equations of Chen et al. (2023), Algorithm 2,
computed here by hand and by a plain-Python transcription of the paper. Loading is
checked with the real example folder and with broken plugin files written to tmp_path:
each broken one is skipped with a one-line reason and the others still load.
"""

from __future__ import annotations

import io
import logging
import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from optlab.examples.lion import LION_SPEC, OPTLAB_OPTIMIZERS, Lion
from optlab.optim import registry
from optlab.optim.builtin import BUILTIN_OPTIMIZERS
from optlab.optim.config import OptimizerConfig
from optlab.optim.packs import PACKS_ENV
from optlab.optim.plugins import PLUGINS_ENV, PluginResult, load_plugins
from optlab.optim.registry import get_spec
from optlab.optim.spec import OptimizerSpec
from optlab.surface.problem import Problem
from optlab.surface.run import DONE as RUN_DONE
from optlab.surface.run import SurfaceRunConfig
from optlab.surface.trajectory import collect
from optlab.train.jobs import DONE, FAILED, JobRegistry
from optlab.train.run import TrainRunConfig
from tests.support.resources import ROOT, register
from tests.support.training import tiny_data, tiny_train_config

EXAMPLES = ROOT / "optlab" / "examples"
F64 = torch.float64


# --- Lion against the paper ------------------------------------------------------------


def _sign(v: float) -> float:
    return float((v > 0) - (v < 0))


def paper_lion(
    theta: list[float],
    grads: list[list[float]] | None = None,
    grad_fn=None,
    steps: int = 0,
    lr: float = 1e-4,
    betas: tuple[float, float] = (0.9, 0.99),
    weight_decay: float = 0.0,
    maximize: bool = False,
) -> list[list[float]]:
    """Algorithm 2 of the paper, coordinate by coordinate in plain Python floats.

    The gradients come from ``grads`` (one list per step) or from ``grad_fn(theta)``.
    Returns the path, the start included.
    """
    b1, b2 = betas
    m = [0.0] * len(theta)
    path = [list(theta)]
    for t in range(len(grads) if grads is not None else steps):
        g = list(grads[t]) if grads is not None else grad_fn(theta)
        if maximize:
            g = [-v for v in g]
        c = [b1 * mi + (1 - b1) * gi for mi, gi in zip(m, g, strict=True)]
        theta = [th - lr * (_sign(ci) + weight_decay * th) for th, ci in zip(theta, c, strict=True)]
        m = [b2 * mi + (1 - b2) * gi for mi, gi in zip(m, g, strict=True)]
        path.append(list(theta))
    return path


def _feed(opt: torch.optim.Optimizer, p: torch.Tensor, grads: list[list[float]]) -> list:
    """Steps ``opt`` with the given gradients; returns the path of ``p``."""
    path = [p.detach().tolist()]
    for g in grads:
        p.grad = torch.tensor(g, dtype=F64)
        opt.step()
        path.append(p.detach().tolist())
    return path


def assert_paths_close(got: list, want: list, tol: float) -> None:
    assert len(got) == len(want)
    for step, (a, b) in enumerate(zip(got, want, strict=True)):
        assert a == pytest.approx(b, abs=tol), f"step {step}: {a} != {b}"


def _param(*values: float) -> torch.Tensor:
    return torch.tensor(values, dtype=F64, requires_grad=True)


def test_two_steps_by_hand() -> None:
    # f = (x^2 + 10 y^2) / 2 from (1, -2): g = (x, 10 y); lr 0.1, betas (0.9, 0.99).
    p = _param(1.0, -2.0)
    opt = Lion([p], lr=0.1)
    # Step 1: g1 = (1, -20), m0 = 0, so c1 = 0.1 g1 = (0.1, -2): each coordinate
    # moves by exactly lr against the sign. m1 = 0.01 g1 = (0.01, -0.2).
    p.grad = torch.tensor([1.0, -20.0], dtype=F64)
    opt.step()
    assert p.tolist() == pytest.approx([0.9, -1.9], abs=1e-15)
    assert opt.state[p]["exp_avg"].tolist() == pytest.approx([0.01, -0.2], abs=1e-15)
    # Step 2: g2 = (0.9, -19); c2 = 0.9 m1 + 0.1 g2 = (0.099, -2.08);
    # m2 = 0.99 m1 + 0.01 g2 = (0.0189, -0.388).
    p.grad = torch.tensor([0.9, -19.0], dtype=F64)
    opt.step()
    assert p.tolist() == pytest.approx([0.8, -1.8], abs=1e-15)
    assert opt.state[p]["exp_avg"].tolist() == pytest.approx([0.0189, -0.388], abs=1e-15)


def test_the_step_follows_the_momentum_not_the_gradient() -> None:
    # betas (0.5, 0.9): g1 = 1 gives c1 = 0.5, m1 = 0.1. Then g2 = -0.05 points the
    # other way, but c2 = 0.5 * 0.1 + 0.5 * (-0.05) = 0.025 > 0: Lion keeps going.
    p = _param(0.0)
    opt = Lion([p], lr=0.1, betas=(0.5, 0.9))
    path = _feed(opt, p, [[1.0], [-0.05]])
    assert_paths_close(path, [[0.0], [-0.1], [-0.2]], 1e-15)
    assert opt.state[p]["exp_avg"].item() == pytest.approx(0.9 * 0.1 + 0.1 * -0.05, abs=1e-15)


def test_decoupled_weight_decay_by_hand() -> None:
    # θ1 = θ0 − lr (sign(c1) + λ θ0) with θ0 = (1, −2), lr 0.1, λ 0.5, g1 = (1, −20):
    # (1 − 0.1 (1 + 0.5), −2 − 0.1 (−1 − 1)) = (0.85, −1.8).
    p = _param(1.0, -2.0)
    opt = Lion([p], lr=0.1, weight_decay=0.5)
    _feed(opt, p, [[1.0, -20.0]])
    assert p.tolist() == pytest.approx([0.85, -1.8], abs=1e-15)


def test_maximize_by_hand() -> None:
    p = _param(1.0, -2.0)
    opt = Lion([p], lr=0.1, maximize=True)
    _feed(opt, p, [[1.0, -20.0]])
    assert p.tolist() == pytest.approx([1.1, -2.1], abs=1e-15)
    # The momentum keeps the negated gradient.
    assert opt.state[p]["exp_avg"].tolist() == pytest.approx([-0.01, 0.2], abs=1e-15)


# f(θ) = ½ θᵀAθ − bᵀθ with a coupled A, so each coordinate's gradient depends on both.
A = ((3.0, 1.0), (1.0, 2.0))
B = (1.0, -1.0)


def _quad_grad(theta: list[float]) -> list[float]:
    return [
        sum(a * t for a, t in zip(row, theta, strict=True)) - b for row, b in zip(A, B, strict=True)
    ]


def _quad_loss(p: torch.Tensor) -> torch.Tensor:
    a = torch.tensor(A, dtype=F64)
    b = torch.tensor(B, dtype=F64)
    return 0.5 * p @ a @ p - b @ p


PAPER_CASES = {
    "defaults": {"lr": 0.05},
    "weight_decay": {"lr": 0.05, "weight_decay": 0.3},
    "maximize": {"lr": 0.02, "maximize": True},
    "betas": {"lr": 0.05, "betas": (0.5, 0.999)},
    "everything": {"lr": 0.03, "betas": (0.8, 0.95), "weight_decay": 1.0, "maximize": True},
}


@pytest.mark.parametrize("values", PAPER_CASES.values(), ids=PAPER_CASES.keys())
def test_matches_the_paper_for_many_steps(values: dict) -> None:
    start = [1.3, -0.7]
    steps = 40
    want = paper_lion(start, grad_fn=_quad_grad, steps=steps, **values)
    p = _param(*start)
    opt = Lion([p], **values)
    path = [list(start)]
    for _ in range(steps):
        opt.zero_grad()
        _quad_loss(p).backward()
        opt.step()
        path.append(p.detach().tolist())
    assert_paths_close(path, want, 1e-12)


def test_param_groups_use_their_own_values() -> None:
    a, b = _param(1.0, -2.0), _param(0.5)
    opt = Lion(
        [{"params": [a]}, {"params": [b], "lr": 0.5, "weight_decay": 0.1, "betas": (0.5, 0.9)}],
        lr=0.1,
    )
    assert opt.param_groups[0]["lr"] == 0.1 and opt.param_groups[0]["betas"] == (0.9, 0.99)
    assert opt.param_groups[1]["maximize"] is False  # filled in from the defaults
    grads_a = [[1.0, -20.0], [0.9, -19.0], [-3.0, 0.5]]
    grads_b = [[2.0], [-0.1], [-4.0]]
    path_a, path_b = [a.tolist()], [b.tolist()]
    for ga, gb in zip(grads_a, grads_b, strict=True):
        a.grad, b.grad = torch.tensor(ga, dtype=F64), torch.tensor(gb, dtype=F64)
        opt.step()
        path_a.append(a.tolist())
        path_b.append(b.tolist())
    assert_paths_close(path_a, paper_lion([1.0, -2.0], grads_a, lr=0.1), 1e-14)
    want_b = paper_lion([0.5], grads_b, lr=0.5, weight_decay=0.1, betas=(0.5, 0.9))
    assert_paths_close(path_b, want_b, 1e-14)


def test_a_parameter_without_gradient_is_left_alone() -> None:
    used, unused = _param(1.0), _param(2.0)
    opt = Lion([used, unused], lr=0.1, weight_decay=0.5)
    used.grad = torch.tensor([1.0], dtype=F64)
    opt.step()
    assert unused.item() == 2.0  # not even decayed
    assert len(opt.state[unused]) == 0 and "exp_avg" in opt.state[used]


def test_step_evaluates_the_closure_with_grad_and_returns_its_loss() -> None:
    p = _param(1.3, -0.7)
    opt = Lion([p], lr=0.05)

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = _quad_loss(p)
        loss.backward()
        return loss

    expected = _quad_loss(p.detach()).item()
    loss = opt.step(closure)
    assert isinstance(loss, torch.Tensor) and loss.item() == pytest.approx(expected)
    assert p.tolist() == pytest.approx(
        paper_lion([1.3, -0.7], grad_fn=_quad_grad, steps=1, lr=0.05)[1]
    )
    assert opt.step() is None


def _run(opt: torch.optim.Optimizer, p: torch.Tensor, steps: int) -> None:
    for _ in range(steps):
        opt.zero_grad()
        _quad_loss(p).backward()
        opt.step()


def test_state_dict_round_trip_continues_identically() -> None:
    values = {"lr": 0.03, "betas": (0.8, 0.95), "weight_decay": 0.2}
    p = _param(1.3, -0.7)
    opt = Lion([p], **values)
    _run(opt, p, 5)
    saved = opt.state_dict()
    assert set(saved["state"][0]) == {"exp_avg"}
    buffer = io.BytesIO()
    torch.save(saved, buffer)
    buffer.seek(0)
    loaded = torch.load(buffer, weights_only=True)

    q = p.detach().clone().requires_grad_(True)
    twin = Lion([q])  # constructor values are replaced by the saved groups
    twin.load_state_dict(loaded)
    assert twin.param_groups[0]["lr"] == 0.03
    assert twin.param_groups[0]["weight_decay"] == 0.2
    _run(opt, p, 7)
    _run(twin, q, 7)
    assert torch.equal(p, q)
    assert torch.equal(opt.state[p]["exp_avg"], twin.state[q]["exp_avg"])


def test_an_old_state_dict_without_maximize_still_loads() -> None:
    p = _param(1.0)
    opt = Lion([p], lr=0.1)
    saved = opt.state_dict()
    del saved["param_groups"][0]["maximize"]
    twin = Lion([_param(1.0)])
    twin.load_state_dict(saved)
    assert twin.param_groups[0]["maximize"] is False


BAD_ARGS = [
    ({"lr": -1.0}, "Invalid learning rate: -1.0"),
    ({"lr": math.nan}, "Invalid learning rate: nan"),
    ({"betas": (1.0, 0.99)}, "Invalid beta parameter at index 0: 1.0"),
    ({"betas": (0.9, -0.1)}, "Invalid beta parameter at index 1: -0.1"),
    ({"weight_decay": -0.1}, "Invalid weight_decay value: -0.1"),
]


@pytest.mark.parametrize(("kwargs", "message"), BAD_ARGS, ids=[m for _, m in BAD_ARGS])
def test_constructor_rejects_bad_values_like_torch(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        Lion([_param(1.0)], **kwargs)


def test_spec_matches_the_class() -> None:
    assert OPTLAB_OPTIMIZERS == (LION_SPEC,)
    assert LION_SPEC.factory is Lion
    opt = LION_SPEC.build([_param(1.0, 2.0)], LION_SPEC.defaults)
    assert {k: v for k, v in opt.param_groups[0].items() if k != "params"} == LION_SPEC.defaults
    rule = LION_SPEC.rule
    assert rule.count(r"\begin{") == rule.count(r"\end{") == 1
    assert r"\operatorname{sign}(c_t)" in rule
    assert LION_SPEC.paper is not None and "2302.06675" in LION_SPEC.paper.url


# --- Loading the example as a plugin ---------------------------------------------------


@pytest.fixture(scope="module")
def example_results() -> list[PluginResult]:
    return load_plugins(str(EXAMPLES))


@pytest.fixture
def lion(example_results, monkeypatch) -> OptimizerSpec:
    """Lion registered as the server registers it (whether or not $OPTLAB_PLUGINS is set)."""
    (result,) = (r for r in example_results if r.spec is not None and r.spec.key == "lion")
    register(monkeypatch, result.spec)
    return result.spec


def test_the_example_folder_loads_lion_and_adam_without_bias_correction(example_results) -> None:
    # Files in name order: adam_no_bias.py (lesson 8's), then lion.py.
    adam, result = example_results
    assert adam.loaded and adam.spec.key == "adam_no_bias"
    assert result.loaded and result.reason == ""
    assert result.source == str(EXAMPLES / "lion.py")
    assert result.spec.key == "lion" and result.spec.factory.__name__ == "Lion"
    # Imported under a private name, apart from optlab.examples.lion.
    assert result.spec.factory.__module__.startswith("_optlab_plugin_")
    assert result.spec.factory.__module__ in sys.modules
    assert [r.message for r in example_results] == [
        f"plugin {EXAMPLES / 'adam_no_bias.py'}: loaded optimizer 'adam_no_bias' "
        "(Adam without bias correction)",
        f"plugin {EXAMPLES / 'lion.py'}: loaded optimizer 'lion' (Lion)",
    ]


def test_lion_is_in_the_registry_and_parses(lion) -> None:
    assert get_spec("lion") is lion
    cfg = OptimizerConfig.from_text("lion:lr=1e-3")
    assert cfg.kwargs == {"lr": 1e-3, "betas": (0.9, 0.99), "weight_decay": 0.0, "maximize": False}
    assert cfg.label == "Lion (lr=0.001)"
    assert OptimizerConfig.from_text(cfg.to_text()) == cfg
    assert OptimizerConfig.from_text("lion:betas=0.95/0.98,maximize=true").kwargs["maximize"]
    with pytest.raises(ValueError, match="Invalid lr value: -1"):
        OptimizerConfig.from_text("lion:lr=-1")
    with pytest.raises(ValueError, match="Invalid betas value: 1"):
        OptimizerConfig.from_text("lion:betas=1/0.99")


def test_lion_descends_the_convex_bowl_in_the_surface_engine(lion) -> None:
    cfg = SurfaceRunConfig(
        (OptimizerConfig.from_text("lion:lr=0.01"),), problem=Problem("quadratic", steps=100)
    )
    (path,) = collect(cfg)
    assert path.status == RUN_DONE and len(path.x) == 101
    assert path.loss[-1] < 0.1 * path.loss[0]
    # x never changes sign on the way: it moves by exactly lr every step.
    assert path.x[-1] == pytest.approx(path.x[0] + 100 * 0.01, abs=1e-9)


def _env(plugins: str) -> dict[str, str]:
    """The environment with these plugins and no pack (the packs' tests are elsewhere)."""
    return {**{k: v for k, v in os.environ.items() if k != PACKS_ENV}, PLUGINS_ENV: plugins}


def _module(*argv: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "optlab", *argv],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=120,
    )


def test_cli_lists_and_runs_lion() -> None:
    env = _env(str(EXAMPLES))
    listed = _module("list", env=env)
    assert listed.returncode == 0 and listed.stderr == ""
    lines = listed.stdout.splitlines()
    at = next(i for i, line in enumerate(lines) if line.split()[:1] == ["lion"])
    assert lines[at].split() == ["lion", "Lion"]
    assert lines[at + 2].split()[0] == "betas=0.9/0.99"
    run = _module(
        "surface", "--surface", "rosenbrock", "--opt", "lion:lr=0.01", "--steps", "50", env=env
    )
    assert run.returncode == 0, run.stderr
    assert run.stderr == ""
    row = next(line for line in run.stdout.splitlines() if line.startswith("Lion (lr=0.01)"))
    assert row.split()[-2:] == ["50", "done"]


def test_cli_reports_a_broken_plugin_and_runs_the_rest(tmp_path: Path) -> None:
    (tmp_path / "broken.py").write_text("def broken(:\n")
    listed = _module("list", env=_env(f"{tmp_path}{os.pathsep}{EXAMPLES}"))
    assert listed.returncode == 0
    assert "Lion" in listed.stdout
    (line,) = listed.stderr.splitlines()
    assert line.startswith(f"optlab: plugin {tmp_path / 'broken.py'}: skipped: syntax error")


_ORDER_PROBE = """
import importlib, sys
importlib.import_module(sys.argv[1])
from optlab.optim.builtin import BUILTIN_OPTIMIZERS
from optlab.optim.registry import optimizers, plugin_messages
keys = [s.key for s in optimizers()]
assert keys == [s.key for s in BUILTIN_OPTIMIZERS] + ["adam_no_bias", "lion"], keys
print("\\n".join(plugin_messages()))
"""


@pytest.mark.parametrize(
    "first", ["optlab.optim.plugins", "optlab.optim.registry", "optlab.examples.lion"]
)
def test_any_import_order_loads_the_plugins(first: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", _ORDER_PROBE, first],
        cwd=ROOT,
        env=_env(str(EXAMPLES)),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "loaded optimizer 'lion'" in proc.stdout


# --- Broken plugins are skipped with a reason ------------------------------------------

PREAMBLE = """
import torch
from optlab.optim import HParam, OptimizerSpec

LR = HParam("lr", 0.1, 0.0, 10.0, log=True, low_open=True, help="step size")


def spec(key="mine", factory=torch.optim.SGD, hparams=(LR,)):
    return OptimizerSpec(key=key, label=key, factory=factory, hparams=hparams, rule=r"\\theta")


class Base(torch.optim.Optimizer):
    def __init__(self, params, lr=0.1):
        super().__init__(params, dict(lr=lr))
"""

# Written against the plugin API's old address (optlab.optim, optlab.hparams),
# which plugins made for OptLab 0.1 use and which must keep loading.
GOOD = '''
import torch
from optlab.hparams import HParam
from optlab.optimizers import OptimizerSpec


class SignMomentum(torch.optim.Optimizer):
    """SignSGD with momentum (signum): θ ← θ − γ sign(m), m ← μ m + g."""

    def __init__(self, params, lr=0.01, momentum=0.9):
        super().__init__(params, dict(lr=lr, momentum=momentum))

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state["buf"] = torch.zeros_like(p)
                buf = state["buf"].mul_(group["momentum"]).add_(p.grad)
                p.add_(buf.sign(), alpha=-group["lr"])
        return loss


OPTLAB_OPTIMIZERS = (
    OptimizerSpec(
        key="signum",
        label="Signum",
        factory=SignMomentum,
        hparams=(
            HParam("lr", 0.01, 0.0, 10.0, log=True, low_open=True, help="step size γ"),
            HParam("momentum", 0.9, 0.0, 1.0, high_open=True, help="momentum μ"),
        ),
        rule=r"\\theta_t = \\theta_{t-1} - \\gamma\\,\\operatorname{sign}(m_t)",
    ),
)
'''


#: The line of a bad plugin where the code after PREAMBLE starts.
FIRST = PREAMBLE.count("\n") + 1


def _step_raising(body: str) -> str:
    return f"""
class Bad(Base):
    @torch.no_grad()
    def step(self, closure=None):
{textwrap.indent(textwrap.dedent(body), " " * 8)}

OPTLAB_OPTIMIZERS = (spec(factory=Bad),)
"""


BAD_PLUGINS = {
    "syntax_error": ("def broken(:\n", f"syntax error (bad.py line {FIRST})"),
    "import_error": (
        "import optlab_no_such_module\n",
        "import failed: ModuleNotFoundError: No module named 'optlab_no_such_module'",
    ),
    "raises_on_import": (
        "raise RuntimeError('plugin exploded')\n",
        f"import failed: RuntimeError: plugin exploded (bad.py line {FIRST})",
    ),
    "exits_on_import": (
        "import sys\nsys.exit(3)\n",
        f"import failed: SystemExit: 3 (bad.py line {FIRST + 1})",
    ),
    "missing_attribute": ("X = 1\n", "defines no OPTLAB_OPTIMIZERS"),
    "attribute_not_a_tuple": ("OPTLAB_OPTIMIZERS = spec()\n", "must be a tuple of OptimizerSpec"),
    "empty_tuple": ("OPTLAB_OPTIMIZERS = ()\n", "OPTLAB_OPTIMIZERS is empty"),
    "not_a_spec": ("OPTLAB_OPTIMIZERS = ('mine',)\n", "holds a str, not an OptimizerSpec"),
    "clash_with_adam": (
        "OPTLAB_OPTIMIZERS = (spec(key='adam'),)\n",
        "key 'adam' is already taken by a built-in optimizer",
    ),
    "clash_with_preset": (
        "OPTLAB_OPTIMIZERS = (spec(key='nesterov'),)\n",
        "key 'nesterov' is already taken by a preset",
    ),
    "bad_key": (
        "OPTLAB_OPTIMIZERS = (spec(key='My-Opt'),)\n",
        "key 'My-Opt' is not a lowercase identifier",
    ),
    "factory_not_an_optimizer": (
        "class NotOptimizer:\n    def __init__(self, params, lr=0.1):\n        pass\n"
        "OPTLAB_OPTIMIZERS = (spec(factory=NotOptimizer),)\n",
        "mine: factory NotOptimizer is not a torch.optim.Optimizer subclass",
    ),
    "factory_a_function": (
        "OPTLAB_OPTIMIZERS = (spec(factory=lambda params, lr=0.1: torch.optim.SGD(params, lr)),)\n",
        "factory <lambda> is not a torch.optim.Optimizer subclass",
    ),
    "unknown_argument": (
        "OPTLAB_OPTIMIZERS = (spec(hparams=(LR, HParam('gamma', 0.5, 0.0, 1.0))),)\n",
        "mine: SGD takes no argument 'gamma'",
    ),
    "invalid_default": (
        "OPTLAB_OPTIMIZERS = (spec(hparams=(HParam('lr', -1.0, 0.0, 1.0),)),)\n",
        "mine: the default of lr is invalid: Invalid lr value: -1",
    ),
    "step_raises": (
        _step_raising("raise RuntimeError('boom in step')"),
        f"mine: smoke test failed: RuntimeError: boom in step (bad.py line {FIRST + 4})",
    ),
    "step_gives_nan": (
        _step_raising("for p in self.param_groups[0]['params']:\n    p.fill_(float('nan'))"),
        "mine: smoke test failed: ValueError: one step from (1, -2) on a quadratic gave [nan, nan]",
    ),
    "no_lr_in_groups": (
        "class NoLr(torch.optim.Optimizer):\n"
        "    def __init__(self, params, rate=0.1):\n"
        "        super().__init__(params, dict(rate=rate))\n"
        "OPTLAB_OPTIMIZERS = (spec(factory=NoLr, hparams=(HParam('rate', 0.1, 0.0, 1.0),)),)\n",
        "param_groups have no 'lr'",
    ),
    "state_dict_raises": (
        "class NoState(torch.optim.SGD):\n"
        "    def state_dict(self):\n"
        "        raise NotImplementedError('no state here')\n"
        "OPTLAB_OPTIMIZERS = (spec(factory=NoState),)\n",
        f"mine: smoke test failed: NotImplementedError: no state here (bad.py line {FIRST + 2})",
    ),
}


def _write(folder: Path, name: str, source: str) -> Path:
    path = folder / name
    path.write_text(source, encoding="utf-8")
    return path


@pytest.mark.parametrize(("body", "fragment"), BAD_PLUGINS.values(), ids=BAD_PLUGINS.keys())
def test_a_bad_plugin_is_skipped_with_a_reason_and_the_rest_load(
    tmp_path: Path, body: str, fragment: str, caplog: pytest.LogCaptureFixture
) -> None:
    bad = _write(tmp_path, "bad.py", PREAMBLE + body)
    _write(tmp_path, "good.py", GOOD)
    with caplog.at_level(logging.WARNING, logger="optlab.optim.plugins"):
        results = load_plugins(str(tmp_path))
    assert [r.source for r in results] == [str(bad), str(tmp_path / "good.py")]
    skipped, good = results
    assert not skipped.loaded and skipped.spec is None
    assert fragment in skipped.reason, skipped.reason
    assert skipped.message == f"plugin {bad}: skipped: {skipped.reason}"
    assert "\n" not in skipped.message
    assert good.loaded and good.spec.key == "signum"
    # A skipped module is not kept around; a loaded one is.
    assert not any(name.endswith("_bad") for name in sys.modules)
    assert good.spec.factory.__module__ in sys.modules
    assert [r.getMessage() for r in caplog.records] == [f"optlab: {skipped.message}"]


def test_every_bad_plugin_in_one_folder(tmp_path: Path) -> None:
    for name, (body, _) in BAD_PLUGINS.items():
        _write(tmp_path, f"{name}.py", PREAMBLE + body)
    _write(tmp_path, "good.py", GOOD)
    _write(tmp_path, "_helper.py", "raise SystemExit('a helper is never imported')\n")
    _write(tmp_path, "notes.txt", "not python\n")
    results = load_plugins(str(tmp_path))
    assert [r.spec.key for r in results if r.loaded] == ["signum"]
    reasons = {Path(r.source).stem: r.reason for r in results if not r.loaded}
    assert set(reasons) == set(BAD_PLUGINS)
    for name, (_, fragment) in BAD_PLUGINS.items():
        assert fragment.replace("bad.py", f"{name}.py") in reasons[name]


def test_the_good_plugin_works_after_loading(tmp_path: Path, monkeypatch) -> None:
    _write(tmp_path, "good.py", GOOD)
    (result,) = load_plugins(str(tmp_path))
    register(monkeypatch, result.spec)
    cfg = SurfaceRunConfig(
        (OptimizerConfig.from_text("signum:lr=0.01"),), problem=Problem("quadratic", steps=50)
    )
    (path,) = collect(cfg)
    assert path.status == RUN_DONE and path.loss[-1] < path.loss[0]


def test_one_bad_spec_does_not_take_its_module_mates_down(tmp_path: Path) -> None:
    source = PREAMBLE + "OPTLAB_OPTIMIZERS = (spec(key='adam'), spec(key='mine'))\n"
    _write(tmp_path, "two.py", source)
    clash, mine = load_plugins(str(tmp_path))
    assert "key 'adam' is already taken" in clash.reason
    assert mine.loaded and mine.spec.key == "mine"


def test_two_plugins_with_one_key_first_wins(tmp_path: Path) -> None:
    _write(tmp_path, "a.py", PREAMBLE + "OPTLAB_OPTIMIZERS = (spec(key='twin'),)\n")
    _write(tmp_path, "b.py", PREAMBLE + "OPTLAB_OPTIMIZERS = (spec(key='twin'),)\n")
    first, second = load_plugins(str(tmp_path))
    assert first.loaded
    assert second.reason == f"key 'twin' is already taken by plugin {tmp_path / 'a.py'}"


def test_path_list_entries(tmp_path: Path) -> None:
    folder = tmp_path / "plugins"
    folder.mkdir()
    good = _write(folder, "good.py", GOOD)
    empty = tmp_path / "empty"
    empty.mkdir()
    text = _write(tmp_path, "notes.txt", "hello\n")
    missing = tmp_path / "nope"
    entries = [str(missing), "", str(folder), str(empty), str(text), str(good), " "]
    results = load_plugins(os.pathsep.join(entries))
    assert [(r.source, r.loaded, r.reason) for r in results] == [
        (str(missing), False, "no such file or folder"),
        (str(good), True, ""),
        (str(empty), False, "no plugin modules here (*.py files not starting with _)"),
        (str(text), False, "not a folder or a .py file"),
        # good.py named again, directly: loaded once, no clash with itself.
    ]


def test_a_single_file_may_be_named(tmp_path: Path) -> None:
    good = _write(tmp_path, "_private_but_named.py", GOOD)
    (result,) = load_plugins(str(good))
    assert result.loaded and result.source == str(good)


def test_no_plugins_by_default(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv(PLUGINS_ENV, raising=False)
    assert load_plugins() == []
    assert load_plugins("") == []
    _write(tmp_path, "good.py", GOOD)
    monkeypatch.setenv(PLUGINS_ENV, str(tmp_path))
    assert [r.spec.key for r in load_plugins()] == ["signum"]


def test_the_registry_exposes_its_load_messages() -> None:
    results = registry.plugin_results()
    assert registry.plugin_messages() == tuple(r.message for r in results)
    loaded = tuple(r.spec for r in results if r.loaded)
    n = len(BUILTIN_OPTIMIZERS)
    assert isinstance(registry.optimizers(), tuple)
    assert registry.optimizers()[:n] == BUILTIN_OPTIMIZERS
    assert registry.optimizers()[n:] == loaded


# --- A plugin that fails later, inside a training job ------------------------------------

FLAKY = (
    PREAMBLE
    + '''
class Flaky(Base):
    """Passes the one-step smoke test, then raises on its third step."""

    @torch.no_grad()
    def step(self, closure=None):
        self.calls = getattr(self, "calls", 0) + 1
        if self.calls >= 3:
            raise RuntimeError("flaky optimizer gave up")
        for p in self.param_groups[0]["params"]:
            if p.grad is not None:
                p.add_(p.grad, alpha=-self.param_groups[0]["lr"])


OPTLAB_OPTIMIZERS = (spec(key="flaky", factory=Flaky),)
'''
)


def test_a_plugin_that_raises_in_a_job_fails_the_job_cleanly(tmp_path: Path, monkeypatch) -> None:
    _write(tmp_path, "flaky.py", FLAKY)
    (result,) = load_plugins(str(tmp_path))
    assert result.loaded, result.reason
    register(monkeypatch, result.spec)
    data = tiny_data(64, 16, seed=1)

    def config(opt: str) -> TrainRunConfig:
        return tiny_train_config(opt, batch_size=16, train_limit=64, test_limit=16)

    registry = JobRegistry(max_running=1)
    job = registry.submit(config("flaky:lr=0.01"), data)
    assert job.wait(60)
    snap = job.poll()
    assert snap.state == FAILED
    assert snap.message == "training failed: RuntimeError: flaky optimizer gave up"
    assert snap.step == 2  # the records of the steps before it are kept
    assert registry.active() == []
    # The slot was released: the next job runs.
    after = registry.submit(config("sgd:lr=0.01"), data)
    assert after.wait(60) and after.poll().state == DONE
