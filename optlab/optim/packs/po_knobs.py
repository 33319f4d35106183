"""Knobs shared by the ``pytorch_optimizer`` pack's specs: the library's checks as ranges."""

from __future__ import annotations

from optlab.optim import knobs
from optlab.optim.hparams import HParam, Limit
from optlab.optim.spec import Paper

#: What a knob's ``origin`` says: its range is the library's constructor check.
CHECK = "pytorch-optimizer's own check"
PACKAGE = "pytorch-optimizer 4.1.0's implementation"
LEFT_OUT = "Not offered: maximize (kept outside param_groups by the library) and foreach."


def lr(default: float) -> HParam:
    """``lr`` (γ), as torch's optimizers take it, under the library's own check."""
    return knobs.lr(default, origin=CHECK)


def betas(default: tuple[float, float], help: str) -> HParam:
    return HParam("betas", default, 0.0, 1.0, high_open=True, help=help, origin=CHECK)


def unit(name: str, default: float, help: str, high_open: bool = True) -> HParam:
    return HParam(name, default, 0.0, 1.0, high_open=high_open, help=help, origin=CHECK)


def decay(default: float = 0.0, help: str = "weight decay λ") -> HParam:
    return HParam("weight_decay", default, 0.0, None, help=help, origin=CHECK)


def flag(name: str, default: bool, help: str) -> HParam:
    return HParam(name, default, help=help)


def count(name: str, default: int, low: int, high: int, help: str, why: str) -> HParam:
    return HParam(
        name,
        default,
        float(low),
        None,
        integer=True,
        help=help,
        origin=CHECK,
        limit=Limit(why, high=float(high), server_cap=False),
    )


def positive(name: str, default: float, help: str, log: bool = True) -> HParam:
    return HParam(name, default, 0.0, None, log=log, low_open=True, help=help, origin=CHECK)


DECOUPLE = flag("weight_decouple", True, "decoupled decay θ ← θ(1 − γλ) (off: g ← g + λθ)")
FIXED = flag("fixed_decay", False, "decoupled decay without γ: θ ← θ(1 − λ)")
SYMBOLS = (("lr", r"\gamma"), ("weight_decay", r"\lambda"), ("eps", r"\epsilon"))
BETA_SYMBOLS = (("betas[0]", r"\beta_1"), ("betas[1]", r"\beta_2"))


def paper(title: str, arxiv: str) -> Paper:
    return Paper(title, f"https://arxiv.org/abs/{arxiv}")
