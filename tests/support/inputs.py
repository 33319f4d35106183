"""The optimizer inputs every generic test runs: one table, keyed by registry key.

As torch's own ``OptimizerInfo`` lists each optimizer's inputs
(``optim_inputs_func``) and its tests run them all, `INPUTS` lists, for each
registered optimizer, the configurations that exercise its knobs: every
hyperparameter is set away from torch's default by some input (a test
checks it). The engine test (the lockstep engine against the textbook loop),
the batched test (a sweep's rows against torch.optim), the plan test and the
export test all take their configurations from here. An optimizer with no
entry (a plugin) is run with its defaults.

Each input names the surfaces it is stable on (finite and inside the
divergence box for 300 steps from the surface's start): inputs that
maximize climb, so they run on `CAP` (bounded above) or with a step too
small to leave the bounds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from optlab.optim import registry
from optlab.optim.config import OptimizerConfig
from optlab.surface.problem import Problem

#: The surfaces inputs run on, by name: three of the registry's, and a cap (a
#: surface bounded above, so that ascent converges and maximize can be checked).
SURFACES: dict[str, Problem] = {
    "rosenbrock": Problem("rosenbrock"),
    "himmelblau": Problem("himmelblau"),
    "styblinski_tang": Problem("styblinski_tang"),
    "cap": Problem("custom", expr="-(x**2 + y**2)", start=(-4.0, 3.0)),
}
#: Where an input runs unless it says otherwise.
EVERYWHERE = ("rosenbrock", "himmelblau", "styblinski_tang")


@dataclass(frozen=True)
class OptimizerInput:
    """One configuration of a registered optimizer, as the generic tests run it.

    Attributes:
        key: The optimizer's registry key.
        desc: A short name, unique for the optimizer (a test id).
        values: Constructor keyword arguments (torch's names); the rest are defaults.
        surfaces: Names in `SURFACES` the configuration is stable on.
        finite: Further surfaces where it stays finite but leaves the divergence
            box: a sweep's rows are compared with torch there, while the engine
            stops such a run (so its comparison with the textbook loop does not).
    """

    key: str
    desc: str
    values: tuple[tuple[str, Any], ...] = ()
    surfaces: tuple[str, ...] = EVERYWHERE
    finite: tuple[str, ...] = ()

    @property
    def config(self) -> OptimizerConfig:
        """The validated config."""
        return OptimizerConfig.create(self.key, **dict(self.values))

    @property
    def id(self) -> str:
        """``key-desc``, for test ids."""
        return f"{self.key}-{self.desc}"


def _inputs(key: str, rows: list[tuple]) -> tuple[OptimizerInput, ...]:
    """Rows of ``(desc, values, surfaces)``, or ``(desc, values, surfaces, finite)``."""
    return tuple(OptimizerInput(key, row[0], tuple(row[1].items()), *row[2:]) for row in rows)


E, ROSEN, CAP = EVERYWHERE, ("rosenbrock",), ("cap",)
#: Stable on Himmelblau and Styblinski-Tang; on Rosenbrock finite but out of the box.
CLIMBS = (("himmelblau", "styblinski_tang"), ("rosenbrock",))

INPUTS: dict[str, tuple[OptimizerInput, ...]] = {
    "sgd": _inputs(
        "sgd",
        [
            ("defaults", {}, E),
            ("momentum", {"momentum": 0.9}, E),
            ("momentum_lr", {"lr": 5e-4, "momentum": 0.9}, E),
            ("nesterov_lr", {"lr": 5e-4, "momentum": 0.9, "nesterov": True}, E),
            ("dampening", {"lr": 5e-4, "momentum": 0.8, "dampening": 0.3}, E),
            ("dampening_decay", {"momentum": 0.5, "dampening": 0.3, "weight_decay": 0.05}, E),
            ("full_dampening", {"momentum": 0.9, "dampening": 1.0}, E),
            ("nesterov", {"momentum": 0.9, "nesterov": True}, E),
            ("nesterov_decay", {"momentum": 0.6, "nesterov": True, "weight_decay": 0.1}, E),
            ("weight_decay", {"lr": 1e-3, "weight_decay": 0.1}, E),
            ("strong_decay", {"weight_decay": 0.5}, E),
            ("maximize", {"lr": 1e-6, "maximize": True}, E),
            (
                "maximize_nesterov",
                {
                    "lr": 1e-6,
                    "momentum": 0.7,
                    "nesterov": True,
                    "maximize": True,
                    "weight_decay": 0.2,
                },
                E,
            ),
            ("maximize_cap", {"lr": 0.1, "momentum": 0.5, "maximize": True}, CAP),
        ],
    ),
    "adam": _inputs(
        "adam",
        [
            ("defaults", {}, E),
            ("lr", {"lr": 0.05}, E),
            ("amsgrad", {"amsgrad": True}, E),
            ("amsgrad_decay", {"lr": 0.05, "amsgrad": True, "weight_decay": 0.01}, E),
            ("amsgrad_betas", {"lr": 0.02, "amsgrad": True, "betas": (0.8, 0.99)}, E),
            ("weight_decay", {"weight_decay": 0.1}, E),
            ("decoupled", {"weight_decay": 0.3, "decoupled_weight_decay": True}, E),
            ("decoupled_lr", {"lr": 0.05, "weight_decay": 0.1, "decoupled_weight_decay": True}, E),
            (
                "decoupled_amsgrad",
                {"weight_decay": 0.1, "decoupled_weight_decay": True, "amsgrad": True},
                E,
            ),
            ("maximize_amsgrad", {"maximize": True, "amsgrad": True, "weight_decay": 0.05}, E),
            ("maximize_betas", {"lr": 0.01, "betas": (0.5, 0.0), "maximize": True}, E),
            ("maximize_cap", {"lr": 0.05, "maximize": True}, CAP),
            ("no_first_moment", {"betas": (0.0, 0.5), "eps": 1e-3}, E),
            ("large_eps", {"lr": 0.05, "betas": (0.95, 0.9999), "eps": 0.1}, E),
        ],
    ),
    "adamw": _inputs(
        "adamw",
        [
            ("defaults", {}, E),
            ("lr", {"lr": 0.05}, E),
            ("no_decay", {"weight_decay": 0.0}, E),
            ("strong_decay", {"lr": 0.01, "weight_decay": 0.5}, E),
            ("amsgrad_betas", {"lr": 0.05, "amsgrad": True, "betas": (0.8, 0.99)}, E),
            ("amsgrad_decay", {"amsgrad": True, "weight_decay": 0.2, "betas": (0.8, 0.99)}, E),
            ("maximize", {"maximize": True, "amsgrad": True}, E),
            ("no_first_moment", {"lr": 0.05, "betas": (0.0, 0.9), "eps": 1e-2}, E),
            ("unit_decay", {"lr": 0.02, "betas": (0.95, 0.9999), "weight_decay": 1.0}, E),
        ],
    ),
    "adamax": _inputs(
        "adamax",
        [
            ("defaults", {}, E),
            ("lr", {"lr": 0.05}, E),
            ("betas", {"betas": (0.5, 0.9)}, E),
            ("no_first_moment", {"betas": (0.0, 0.999), "lr": 0.01}, E),
            ("no_memory", {"betas": (0.95, 0.0), "lr": 0.01}, E),
            ("large_eps", {"eps": 0.1, "lr": 0.05}, E),
            ("weight_decay", {"weight_decay": 0.1}, E),
            ("decay_betas", {"weight_decay": 0.5, "betas": (0.8, 0.99), "lr": 0.01}, E),
            ("maximize", {"maximize": True, "weight_decay": 0.05, "lr": 0.01}, E),
        ],
    ),
    "nadam": _inputs(
        "nadam",
        [
            ("defaults", {}, E),
            ("lr", {"lr": 0.05}, E),
            ("betas", {"betas": (0.5, 0.9)}, E),
            ("no_first_moment", {"betas": (0.0, 0.99), "lr": 0.01}, E),
            ("no_momentum_decay", {"momentum_decay": 0.0}, E),
            (
                "fast_momentum_decay",
                {"momentum_decay": 1.0, "betas": (0.95, 0.9999), "eps": 1e-3},
                E,
            ),
            ("weight_decay", {"weight_decay": 0.1}, E),
            ("decoupled", {"weight_decay": 0.3, "decoupled_weight_decay": True, "lr": 0.01}, E),
            ("decoupled_lr", {"lr": 0.02, "weight_decay": 0.1, "decoupled_weight_decay": True}, E),
            (
                "maximize",
                {"maximize": True, "weight_decay": 0.05, "decoupled_weight_decay": True},
                E,
            ),
            ("large_eps", {"eps": 0.1, "lr": 0.05, "betas": (0.8, 0.0)}, E),
        ],
    ),
    "radam": _inputs(
        "radam",
        [
            ("defaults", {}, E),
            ("lr", {"lr": 5e-4}, E),
            ("betas", {"betas": (0.5, 0.9)}, E),
            ("no_first_moment", {"betas": (0.0, 0.99), "lr": 0.01}, *CLIMBS),
            ("short_memory", {"betas": (0.9, 0.5), "lr": 5e-4}, E),
            ("no_memory", {"betas": (0.9, 0.0)}, E),
            ("large_eps", {"eps": 0.1, "lr": 0.01}, *CLIMBS),
            ("weight_decay", {"weight_decay": 0.1}, E),
            (
                "decoupled",
                {"weight_decay": 0.3, "decoupled_weight_decay": True, "lr": 0.01},
                *CLIMBS,
            ),
            (
                "maximize",
                {"maximize": True, "weight_decay": 0.05, "decoupled_weight_decay": True},
                E,
            ),
            ("long_memory", {"lr": 0.02, "betas": (0.95, 0.9999)}, *CLIMBS),
        ],
    ),
    "rmsprop": _inputs(
        "rmsprop",
        [
            ("defaults", {}, E),
            ("alpha_eps", {"alpha": 0.5, "eps": 1e-3}, E),
            ("momentum", {"momentum": 0.9, "lr": 1e-3}, E),
            ("centered", {"centered": True}, E),
            ("centered_momentum", {"centered": True, "momentum": 0.5, "lr": 3e-3}, E),
            ("centered_momentum_slow", {"lr": 1e-3, "centered": True, "momentum": 0.5}, E),
            ("decay_centered", {"weight_decay": 0.1, "centered": True, "alpha": 0.95}, E),
            ("decay_alpha", {"lr": 1e-3, "weight_decay": 0.01, "alpha": 0.9}, E),
            (
                "maximize",
                {"maximize": True, "momentum": 0.3, "centered": True, "lr": 1e-3},
                E,
            ),
            ("maximize_cap", {"lr": 0.01, "maximize": True}, CAP),
            ("no_memory", {"alpha": 0.0, "lr": 1e-3}, E),
            ("frozen_average", {"alpha": 1.0, "eps": 0.5, "lr": 1e-3}, E),
        ],
    ),
    "adagrad": _inputs(
        "adagrad",
        [
            ("defaults", {}, E),
            ("lr_decay", {"lr": 0.1, "lr_decay": 0.01}, E),
            ("lr_decay_fast", {"lr": 0.05, "lr_decay": 1.0}, E),
            ("lr_decay_large_lr", {"lr": 0.3, "lr_decay": 0.01}, E),
            ("accumulator", {"initial_accumulator_value": 0.5, "lr": 0.1}, E),
            ("accumulator_large_lr", {"lr": 0.3, "initial_accumulator_value": 0.1}, E),
            (
                "accumulator_eps",
                {"initial_accumulator_value": 10.0, "lr": 0.3, "eps": 1e-3},
                E,
            ),
            ("decay", {"weight_decay": 0.5, "lr_decay": 0.1, "lr": 0.2}, E),
            (
                "maximize",
                {"maximize": True, "lr_decay": 0.05, "initial_accumulator_value": 1.0},
                E,
            ),
            ("large_eps", {"eps": 0.5, "lr": 0.1, "weight_decay": 0.1}, E),
        ],
    ),
    "adadelta": _inputs(
        "adadelta",
        [
            ("defaults", {}, E),
            ("large_lr", {"lr": 10.0}, E),
            ("short_memory", {"rho": 0.5, "lr": 5.0}, E),
            ("no_memory", {"rho": 0.0}, E),
            ("frozen_average", {"rho": 1.0, "lr": 1e-4}, E),
            ("eps", {"eps": 1e-2, "rho": 0.95, "lr": 0.5}, E),
            ("rho_decay", {"rho": 0.95, "weight_decay": 0.01}, E),
            ("strong_decay", {"weight_decay": 1.0, "rho": 0.8}, E),
            ("maximize", {"maximize": True, "weight_decay": 0.2, "lr": 3.0}, *CLIMBS),
        ],
    ),
    "rprop": _inputs(
        "rprop",
        [
            ("defaults", {}, ROSEN),
            ("etas", {"etas": (0.3, 1.5), "step_sizes": (1e-4, 0.5)}, ROSEN),
            ("lr", {"lr": 1e-3}, ROSEN),
            ("maximize_cap", {"maximize": True}, CAP),
        ],
    ),
    "asgd": _inputs(
        "asgd",
        [
            ("averaging", {"lr": 5e-4, "t0": 50}, ROSEN),
            (
                "decay",
                {"lr": 1e-3, "lambd": 1e-3, "alpha": 0.5, "t0": 10, "weight_decay": 0.01},
                ROSEN,
            ),
            ("maximize_cap", {"lr": 0.01, "maximize": True}, CAP),
        ],
    ),
    "lbfgs": _inputs(
        "lbfgs",
        [
            ("fixed_step", {"lr": 0.1, "max_iter": 3}, ROSEN),
            ("strong_wolfe", {"line_search_fn": "strong_wolfe"}, ROSEN),
            (
                "tolerances",
                {
                    "line_search_fn": "strong_wolfe",
                    "max_iter": 4,
                    "history_size": 3,
                    "tolerance_grad": 1e-5,
                    "tolerance_change": 1e-6,
                },
                ROSEN,
            ),
            ("max_eval", {"line_search_fn": "strong_wolfe", "max_iter": 10, "max_eval": 8}, ROSEN),
        ],
    ),
    # Muon's steps are normalised (about 0.69γ long), so no configuration diverges.
    "muon": _inputs(
        "muon",
        [
            ("defaults", {}, E),
            ("lr", {"lr": 0.05}, E),
            ("plain_momentum", {"lr": 0.02, "nesterov": False, "weight_decay": 0.0}, E),
            ("few_ns_steps", {"lr": 0.03, "ns_steps": 2, "eps": 1e-3, "momentum": 0.8}, E),
            ("no_ns_steps", {"lr": 0.01, "ns_steps": 0}, E),
            ("match_rms_adamw", {"lr": 0.05, "adjust_lr_fn": "match_rms_adamw"}, E),
            ("original", {"lr": 0.04, "adjust_lr_fn": "original", "momentum": 0.0}, E),
        ],
    ),
    "adafactor": _inputs(
        "adafactor",
        [
            ("lr", {"lr": 0.05}, ROSEN),
            ("decay_clip", {"lr": 0.05, "weight_decay": 0.1, "d": 2.0}, ROSEN),
            ("slow_decay", {"lr": 0.05, "beta2_decay": -0.5}, ROSEN),
            # ε₂ floors the step scale at max(ε₂, RMS(θ)): above RMS(θ) it sets the step.
            ("eps", {"lr": 0.05, "eps": (1e-3, 1.5)}, ROSEN),
            ("maximize_cap", {"lr": 0.05, "maximize": True}, CAP),
        ],
    ),
}


def inputs(key: str) -> tuple[OptimizerInput, ...]:
    """The inputs of optimizer ``key``: its table entries, else its defaults."""
    return INPUTS.get(key) or (OptimizerInput(key, "defaults", (), EVERYWHERE),)


def all_inputs() -> list[OptimizerInput]:
    """Every input of every registered optimizer (plugins included), in registry order."""
    return [found for spec in registry.optimizers() for found in inputs(spec.key)]


def first_inputs() -> list[OptimizerInput]:
    """One input of each registered optimizer: its first (the one that moves it most
    plainly), for the tests whose cost grows with every input."""
    return [inputs(spec.key)[0] for spec in registry.optimizers()]
