"""Lessons on update rules: momentum, Adam's bias correction and ε, writing your own
optimizer (lessons 7, 8 and 9 of the Lessons page)."""

from __future__ import annotations

from typing import Any

import torch

from optlab.examples.adam_no_bias import AdamNoBiasCorrection
from optlab.examples.lion import Lion
from optlab.lessons import plots
from optlab.lessons.lesson import Control, Lesson, Results, Values
from optlab.lessons.parts import BOWL, ROSENBROCK, compare, playground, run
from optlab.script.lessons import LessonProgram
from optlab.surface.problem import resolve_surface

# --- 7. Momentum -------------------------------------------------------------------

_MOMENTUM_STEPS = 100
#: The ravine: the bowl with κ = 50, where plain SGD crawls along x.
RAVINE = resolve_surface("quadratic", (("kappa", 50.0),))
_RAVINE_LR = 0.02


def _momentum_runs(v: Values) -> list[dict]:
    mu = v["momentum"]
    return [
        run("SGD, no momentum", torch.optim.SGD, lr=_RAVINE_LR),
        run(f"momentum {mu:g}", torch.optim.SGD, lr=_RAVINE_LR, momentum=mu),
        run(
            f"Nesterov, momentum {mu:g}", torch.optim.SGD, lr=_RAVINE_LR, momentum=mu, nesterov=True
        ),
    ]


def _momentum_programs(v: Values) -> tuple[LessonProgram, ...]:
    return (
        compare(
            "SGD with and without momentum, and Nesterov, in a ravine",
            RAVINE,
            _momentum_runs(v),
            _MOMENTUM_STEPS,
        ),
    )


def _momentum_figures(results: Results, v: Values) -> list[tuple[str, Any]]:
    (r,) = results
    assert r is not None
    return plots.paths_and_curves(
        RAVINE,
        r["runs"],
        ("momentum-paths", "momentum-losses"),
        lambda x: x["losses"],
        y_title="loss",
    )


def _momentum_findings(results: Results, v: Values) -> str:
    (r,) = results
    assert r is not None
    parts = []
    for x in r["runs"]:
        ended = x["losses"][-1]
        stopped = len(x["losses"]) < _MOMENTUM_STEPS
        parts.append(
            f"{x['label']}: "
            + (f"diverged at step {len(x['losses'])}" if stopped else f"loss {ended:.3g}")
        )
    mu = v["momentum"]
    regime = (
        "With μ ≥ 1 the velocity never decays: at μ = 1 the run oscillates forever, and "
        "above 1 it grows without bound (torch accepts any μ ≥ 0)."
        if mu >= 1
        else "Momentum builds speed along the gentle x direction and damps the zig-zag "
        "across the steep y walls."
    )
    return f"After {_MOMENTUM_STEPS} steps: " + "; ".join(parts) + f". {regime}"


MOMENTUM = Lesson(
    key="momentum",
    number=7,
    title="Momentum in a ravine",
    text=(
        "On the ill-conditioned bowl ½(x² + κy²) with κ = 50, the lr must be small "
        "enough for the steep y direction, so plain SGD crawls along x. torch's SGD keeps "
        "a velocity b ← μb + g and steps by lr·b: the x steps add up while the y steps, "
        "alternating in sign, cancel. Nesterov (`nesterov=True`) steps by lr·(g + μb), "
        "looking one step ahead. Push μ to 1 and beyond to see it stop converging."
    ),
    controls=(Control("momentum", "momentum μ", 0.9, 0.0, 1.1),),
    programs=_momentum_programs,
    figures=_momentum_figures,
    findings=_momentum_findings,
    links=lambda v: (
        playground(
            "Open in the playground",
            RAVINE,
            _MOMENTUM_STEPS,
            [
                ("sgd", {"lr": _RAVINE_LR}),
                ("sgd", {"lr": _RAVINE_LR, "momentum": v["momentum"]}),
                ("sgd", {"lr": _RAVINE_LR, "momentum": v["momentum"], "nesterov": True})
                if v["momentum"] > 0
                else ("sgd", {"lr": _RAVINE_LR}),
            ],
        ),
    ),
)

# --- 8. Adam's bias correction, and ε --------------------------------------------

_ADAM_STEPS = 30
#: The scale that makes the bowl's gradients tiny (about 1e-9).
TINY = 1e-9


def _adam_programs(v: Values) -> tuple[LessonProgram, ...]:
    lr = v["lr"]
    first = [
        run("Adam", torch.optim.Adam, lr=lr),
        run("Adam without bias correction", AdamNoBiasCorrection, lr=lr),
    ]
    tiny = [
        run("eps=1e-8 (the default)", torch.optim.Adam, lr=lr),
        run(f"eps={v['eps']:g}", torch.optim.Adam, lr=lr, eps=v["eps"]),
    ]
    return (
        compare("Adam's first steps with and without bias correction", BOWL, first, _ADAM_STEPS),
        compare(
            f"Adam on the bowl scaled by {TINY:g}: tiny gradients, two values of eps",
            BOWL,
            tiny,
            _ADAM_STEPS,
            TINY,
        ),
    )


def _adam_figures(results: Results, v: Values) -> list[tuple[str, Any]]:
    first, tiny = results
    assert first is not None and tiny is not None
    lengths = plots.curves_figure(
        [(x["label"], plots.step_lengths(x["path"])) for x in first["runs"]],
        x_title="step",
        y_title="step length |Δθ|",
        title="The first steps",
        mode="lines+markers",
    )
    lengths.add_hline(y=v["lr"] * 2**0.5, line_dash="dot", line_color="gray")
    eps = plots.curves_figure(
        [(x["label"], plots.step_lengths(x["path"])) for x in tiny["runs"]],
        x_title="step",
        y_title="step length |Δθ|",
        log=True,
        title=f"Gradients of about {TINY:g}: the same bowl × {TINY:g}",
        mode="lines+markers",
    )
    return [("adam-first-steps", lengths), ("adam-eps", eps)]


def _adam_findings(results: Results, v: Values) -> str:
    first, tiny = results
    assert first is not None and tiny is not None
    adam, raw = (plots.step_lengths(x["path"])[0] for x in first["runs"])
    small, chosen = (plots.step_lengths(x["path"])[0] for x in tiny["runs"])
    return (
        f"Adam's first step is {adam:.3g} long (lr·√2 = {v['lr'] * 2**0.5:.3g}: each "
        f"coordinate moves by lr, the dotted line); without bias correction it is "
        f"{raw:.3g}, (1 − β₁)/√(1 − β₂) ≈ 3.16 times as long, then shrinks as m and v "
        f"fill up. With gradients of about {TINY:g}, √v is about as small, and ε = 1e-8 "
        f"dominates the denominator: the first step is {small:.3g} long instead of "
        f"{chosen:.3g} with ε = {v['eps']:g}. Adam is scale-invariant only while ε ≪ √v."
    )


ADAM_BIAS = Lesson(
    key="adam-bias",
    number=8,
    title="Adam's bias correction, and why ε matters",
    text=(
        "Adam's averages start at zero: after one step m = (1 − β₁)g and "
        "v = (1 − β₂)g², far below g and g². Adam divides them by (1 − β₁ᵗ) and "
        "(1 − β₂ᵗ) (the *bias correction*), so its first step moves each coordinate by "
        "about lr. A small plugin optimizer without the correction "
        "(`optlab/examples/adam_no_bias.py`) shows the difference. Then ε: Adam steps by "
        "lr·m̂/(√v̂ + ε), which ignores the gradients' scale only while ε is far below √v̂."
    ),
    controls=(
        Control("lr", "Learning rate", 0.1, 0.001, 0.5, log=True),
        Control("eps", "ε of the second run", 1e-16, 1e-20, 1e-2, log=True),
    ),
    programs=_adam_programs,
    figures=_adam_figures,
    findings=_adam_findings,
    links=lambda v: (
        playground(
            "Open in the playground",
            BOWL,
            _ADAM_STEPS,
            [("adam", {"lr": v["lr"]}), ("adam_no_bias", {"lr": v["lr"]})],
        ),
    ),
)

# --- 9. Writing your own optimizer ------------------------------------------------

_LION_STEPS = 150


def _lion_programs(v: Values) -> tuple[LessonProgram, ...]:
    runs = [
        run("Lion (the plugin)", Lion, lr=v["lr"], betas=(v["beta1"], 0.99)),
        run("Adam", torch.optim.Adam, lr=v["lr"]),
    ]
    return (compare("Lion, written from scratch, next to Adam", ROSENBROCK, runs, _LION_STEPS),)


def _lion_figures(results: Results, v: Values) -> list[tuple[str, Any]]:
    (r,) = results
    assert r is not None
    return plots.paths_and_curves(
        ROSENBROCK,
        r["runs"],
        ("lion-paths", "lion-steps"),
        lambda x: plots.step_lengths(x["path"]),
        y_title="step length |Δθ|",
        title="Lion's steps are lr·√2 (a sign per coordinate)",
    )


def _lion_findings(results: Results, v: Values) -> str:
    (r,) = results
    assert r is not None
    lion = plots.step_lengths(r["runs"][0]["path"])
    exact = sum(1 for s in lion if abs(s - v["lr"] * 2**0.5) < 1e-12)
    return (
        f"{exact} of Lion's {len(lion)} steps are exactly lr·√2 = {v['lr'] * 2**0.5:.4g} "
        "long (sign(c) is ±1 in both coordinates; a step is shorter only where c is 0). "
        "The code below is the whole optimizer: the class, its constructor checks and "
        "its `step`, embedded from `optlab/examples/lion.py`."
    )


WRITE_YOUR_OWN = Lesson(
    key="your-own",
    number=9,
    title="Writing your own optimizer: Lion",
    text=(
        "An optimizer is a `torch.optim.Optimizer` subclass with two parts. The "
        "constructor checks the hyperparameters and hands them to the base class as "
        "`defaults`, which builds `self.param_groups`. `step()`, under "
        "`@torch.no_grad()`, reads each group's values, creates each parameter's buffers "
        "lazily in `self.state[p]` (which `state_dict()` then saves for free) and updates "
        "`p` in place. Lion (Chen et al. 2023) steps by the *sign* of an interpolated "
        "momentum: read `optlab/examples/lion.py`, embedded in the code below, and change "
        "its lr and β₁ here. To offer it in every page, a module lists its "
        "`OptimizerSpec` in `OPTLAB_OPTIMIZERS` and `OPTLAB_PLUGINS` names the folder."
    ),
    controls=(
        Control("lr", "Learning rate", 0.02, 0.001, 0.2, log=True),
        Control("beta1", "β₁", 0.9, 0.0, 0.99),
    ),
    programs=_lion_programs,
    figures=_lion_figures,
    findings=_lion_findings,
    links=lambda v: (
        playground(
            "Open in the playground",
            ROSENBROCK,
            _LION_STEPS,
            [("lion", {"lr": v["lr"], "betas": (v["beta1"], 0.99)}), ("adam", {"lr": v["lr"]})],
        ),
    ),
)
