"""The knobs many built-in optimizers share, each written once with torch's own check.

Every range here is exactly what torch's constructors accept (``lr``:
``if not 0.0 <= lr``, ``betas``: ``if not 0.0 <= beta < 1.0``...), which a
test checks by constructing the real optimizers at and just beyond each
bound. What torch accepts but a learner should hear about is a `Caution`.
"""

from __future__ import annotations

from optlab.optim.hparams import TORCH_CHECK, Caution, HParam

#: lr = 0: what happens for most optimizers (Rprop says otherwise).
LR_ZERO = "γ = 0: the parameters never move"


def lr(default: float, zero: str = LR_ZERO, origin: str = TORCH_CHECK) -> HParam:
    """``lr`` (γ): torch accepts any value ≥ 0 (``origin``: whose check that is)."""
    return HParam(
        "lr",
        default,
        0.0,
        None,
        log=True,
        help="learning rate γ",
        origin=origin,
        cautions=(
            Caution(zero, high=0.0),
            Caution("γ > 1000: far above any usual learning rate", low=1000.0, low_open=True),
        ),
    )


def weight_decay(default: float = 0.0, help: str = "L2 penalty λ added to the gradient") -> HParam:
    """``weight_decay`` (λ): torch accepts any value ≥ 0."""
    return HParam("weight_decay", default, 0.0, None, help=help, origin=TORCH_CHECK)


#: ε = 0 in an optimizer that divides by √v + ε.
EPS_ZERO = "ε = 0: a coordinate whose gradient is exactly 0 gives 0/0 = NaN"


def eps(default: float, help: str, zero: str = EPS_ZERO) -> HParam:
    """``eps`` (ε): torch accepts any value ≥ 0; ``help`` says where ε goes."""
    return HParam(
        "eps",
        default,
        0.0,
        None,
        log=True,
        help=help,
        origin=TORCH_CHECK,
        cautions=(Caution(zero, high=0.0),),
    )


def betas(default: tuple[float, float] = (0.9, 0.999)) -> HParam:
    """``betas`` (β₁, β₂): torch accepts each in [0, 1)."""
    return HParam(
        "betas",
        default,
        0.0,
        1.0,
        high_open=True,
        help="(β₁, β₂): decay rates of the first and second moment averages",
        origin=TORCH_CHECK,
    )


def momentum(help: str, never_settles: str) -> HParam:
    """``momentum`` (μ): torch accepts any value ≥ 0, 1 and above included."""
    return HParam(
        "momentum",
        0.0,
        0.0,
        None,
        help=help,
        origin=TORCH_CHECK,
        cautions=(Caution(never_settles, low=1.0),),
    )


MAXIMIZE = HParam("maximize", False, help="ascend the objective instead of descending it")
DECOUPLED = HParam(
    "decoupled_weight_decay",
    False,
    help="shrink θ by γλ directly (AdamW-style) instead of adding λθ to the gradient",
)

#: The symbols of the shared knobs in every rule (γ, λ, ε, β₁, β₂).
SHARED_SYMBOLS: tuple[tuple[str, str], ...] = (
    ("lr", r"\gamma"),
    ("weight_decay", r"\lambda"),
    ("eps", r"\epsilon"),
    ("betas[0]", r"\beta_1"),
    ("betas[1]", r"\beta_2"),
)


def shared_symbols(*names: str) -> tuple[tuple[str, str], ...]:
    """The rule symbols of the shared knobs ``names`` (``"lr"``, ``"betas[0]"``...)."""
    shared = dict(SHARED_SYMBOLS)
    return tuple((n, shared[n]) for n in names)
