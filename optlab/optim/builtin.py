"""The built-in optimizers: every `torch.optim` optimizer OptLab offers, as specs.

Adding an optimizer is one entry here (or in `optlab.optim.builtin_adam`,
`optlab.optim.builtin_lbfgs`, `optlab.optim.builtin_muon`) plus one line in
`_OPTIMIZERS`; it then shows up in every page, the CLI and the parametrised tests. Variants are
parameters, not copies: Nesterov is SGD with ``nesterov=True``, offered as a
`Preset`.

Notation in the rules: :math:`\\gamma` learning rate, :math:`g_t` the
gradient at :math:`\\theta_{t-1}` (negated when ``maximize``), :math:`\\lambda`
weight decay; every operation is elementwise. Each spec's ``symbols`` and
``state`` map torch's names to those symbols for the step inspector.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from optlab.optim import knobs
from optlab.optim.builtin_adam import ADAFACTOR, ADAM, ADAMAX, ADAMW, NADAM, RADAM, STEP
from optlab.optim.builtin_lbfgs import LBFGS
from optlab.optim.builtin_muon import MUON
from optlab.optim.hparams import TORCH_CHECK, Caution, HParam, HValue
from optlab.optim.spec import OptimizerSpec, Paper, Preset, StateSymbol

_EPS_OUTSIDE_ROOT = "ε, added to the denominator outside the square root"
_BUFFER = StateSymbol("momentum_buffer", "b_t", "b_{t-1}", "momentum buffer")


def _check_nesterov(values: Mapping[str, HValue]) -> None:
    if values["nesterov"] and (values["momentum"] <= 0 or values["dampening"] != 0):  # type: ignore[operator]
        # torch's own check, said with what to change.
        raise ValueError(
            "Nesterov momentum requires a momentum and zero dampening: set momentum > 0 "
            "and dampening = 0, or turn nesterov off"
        )


SGD = OptimizerSpec(
    key="sgd",
    label="SGD",
    factory=torch.optim.SGD,
    hparams=(
        knobs.lr(1e-3),
        knobs.momentum(
            "momentum factor μ",
            "μ ≥ 1: the buffer never forgets a gradient, so the iterates cannot settle "
            "(μ > 1 diverges): the classic divergence demo",
        ),
        HParam(
            "dampening",
            0.0,
            None,
            None,
            help="dampening τ applied to new gradients",
            origin=TORCH_CHECK,
            cautions=(
                Caution(
                    "τ < 0: new gradients enter the buffer with a weight 1 − τ above 1",
                    high=0,
                    high_open=True,
                ),
                Caution(
                    "τ ≥ 1: after the first step new gradients enter the buffer with a weight "
                    "1 − τ ≤ 0 (τ = 1 ignores them, τ > 1 pushes uphill)",
                    low=1,
                ),
            ),
        ),
        knobs.weight_decay(),
        HParam("nesterov", False, help="Nesterov momentum (needs μ > 0 and τ = 0)"),
        knobs.MAXIMIZE,
    ),
    rule=r"""
\begin{aligned}
g_t &\leftarrow g_t + \lambda\,\theta_{t-1} \\
b_t &= \begin{cases} g_t & t = 1 \\ \mu\, b_{t-1} + (1-\tau)\, g_t & t > 1 \end{cases} \\
d_t &= \begin{cases} g_t + \mu\, b_t & \text{nesterov} \\ b_t & \text{otherwise} \end{cases}
\quad (d_t = g_t \text{ if } \mu = 0) \\
\theta_t &= \theta_{t-1} - \gamma\, d_t
\end{aligned}""",
    notes=(
        "The momentum buffer starts at the first gradient (b₁ = g₁), not at zero, and "
        "dampening is not applied on that first step.",
        "torch's momentum differs from Sutskever et al. (torch's own docs say so): torch "
        "keeps b_t = μb_{t−1} + g_t and steps θ_t = θ_{t−1} − γb_t, while Sutskever et al. "
        "fold the learning rate into the velocity, v_t = μv_{t−1} + γg_t and "
        "θ_t = θ_{t−1} − v_t. The two agree while γ is constant and differ when it "
        "changes during training (a schedule, a mid-run change).",
        "Nesterov is the reformulated look-ahead g + μb, not an extra gradient evaluation.",
    ),
    paper=Paper(
        "Sutskever et al., On the importance of initialization and momentum in deep "
        "learning (2013)",
        "https://proceedings.mlr.press/v28/sutskever13.html",
    ),
    check=_check_nesterov,
    symbols=(
        *knobs.shared_symbols("lr", "weight_decay"),
        ("momentum", r"\mu"),
        ("dampening", r"\tau"),
    ),
    state=(_BUFFER,),
)

ADAGRAD = OptimizerSpec(
    key="adagrad",
    label="Adagrad",
    factory=torch.optim.Adagrad,
    hparams=(
        knobs.lr(1e-2),
        HParam("lr_decay", 0.0, 0.0, None, help="η: γ̃ = γ / (1 + (t−1)η)", origin=TORCH_CHECK),
        knobs.weight_decay(),
        HParam(
            "initial_accumulator_value",
            0.0,
            0.0,
            None,
            help="starting value of the sum s₀",
            origin=TORCH_CHECK,
        ),
        knobs.eps(1e-10, _EPS_OUTSIDE_ROOT),
        knobs.MAXIMIZE,
    ),
    rule=r"""
\begin{aligned}
\tilde\gamma &= \gamma / \left(1 + (t-1)\,\eta\right) \\
g_t &\leftarrow g_t + \lambda\,\theta_{t-1} \\
s_t &= s_{t-1} + g_t^2 \qquad (s_0 = \text{initial\_accumulator\_value}) \\
\theta_t &= \theta_{t-1} - \tilde\gamma\, \frac{g_t}{\sqrt{s_t} + \epsilon}
\end{aligned}""",
    notes=("ε is added outside the square root; the default ε is 1e-10, not 1e-8.",),
    paper=Paper(
        "Duchi, Hazan & Singer, Adaptive Subgradient Methods for Online Learning and "
        "Stochastic Optimization (2011)",
        "https://jmlr.org/papers/v12/duchi11a.html",
    ),
    symbols=(
        *knobs.shared_symbols("lr", "weight_decay", "eps"),
        ("lr_decay", r"\eta"),
        ("initial_accumulator_value", "s_0"),
    ),
    state=(STEP, StateSymbol("sum", "s_t", "s_{t-1}", "sum of every g²")),
)

ADADELTA = OptimizerSpec(
    key="adadelta",
    label="Adadelta",
    factory=torch.optim.Adadelta,
    hparams=(
        knobs.lr(1.0),
        HParam(
            "rho",
            0.9,
            0.0,
            1.0,
            help="ρ: decay rate of both running averages",
            origin=TORCH_CHECK,
            cautions=(Caution("ρ = 1: both averages stay 0, so every step is plain γ·g", low=1.0),),
        ),
        knobs.eps(
            1e-6,
            "ε, added inside both square roots (numerator and denominator)",
            zero="ε = 0: the numerator √(u + ε) starts at 0, so Adadelta never moves",
        ),
        knobs.weight_decay(),
        knobs.MAXIMIZE,
    ),
    rule=r"""
\begin{aligned}
g_t &\leftarrow g_t + \lambda\,\theta_{t-1} \\
v_t &= \rho\, v_{t-1} + (1-\rho)\, g_t^2 \\
\Delta_t &= \frac{\sqrt{u_{t-1} + \epsilon}}{\sqrt{v_t + \epsilon}}\, g_t \\
u_t &= \rho\, u_{t-1} + (1-\rho)\, \Delta_t^2 \\
\theta_t &= \theta_{t-1} - \gamma\, \Delta_t
\end{aligned}""",
    notes=(
        "ε sits inside both square roots, √(u_{t−1} + ε) / √(v_t + ε), as in the paper's "
        "RMS[x] = √(E[x²] + ε). In the numerator it is what gets Adadelta moving at all "
        "(u₀ = 0): the first step is about γ·√(ε/(1−ρ))·sign(g), 0.003γ at the defaults.",
        "The paper has no learning rate; torch scales the step by γ (default 1.0, which "
        "recovers the paper).",
    ),
    paper=Paper(
        "Zeiler, ADADELTA: An Adaptive Learning Rate Method (2012)",
        "https://arxiv.org/abs/1212.5701",
    ),
    symbols=(*knobs.shared_symbols("lr", "weight_decay", "eps"), ("rho", r"\rho")),
    state=(
        STEP,
        StateSymbol("square_avg", "v_t", "v_{t-1}", "average of g²"),
        StateSymbol("acc_delta", "u_t", "u_{t-1}", "average of Δ²"),
    ),
)

RMSPROP = OptimizerSpec(
    key="rmsprop",
    label="RMSprop",
    factory=torch.optim.RMSprop,
    hparams=(
        knobs.lr(1e-2),
        HParam(
            "alpha",
            0.99,
            0.0,
            None,
            help="α: smoothing constant of the squared average",
            origin=TORCH_CHECK,
            cautions=(
                Caution("α = 1: v stays 0, so every step is γ·g/ε (enormous)", low=1.0, high=1.0),
                Caution(
                    "α > 1: g² enters v with a negative weight 1 − α; v can turn negative "
                    "and √v NaN",
                    low=1.0,
                    low_open=True,
                ),
            ),
        ),
        knobs.eps(1e-8, _EPS_OUTSIDE_ROOT),
        knobs.weight_decay(),
        knobs.momentum(
            "momentum factor μ",
            "μ ≥ 1: the buffer never forgets a step, so the iterates cannot settle",
        ),
        HParam("centered", False, help="divide by an estimate of the variance, not the 2nd moment"),
        knobs.MAXIMIZE,
    ),
    rule=r"""
\begin{aligned}
g_t &\leftarrow g_t + \lambda\,\theta_{t-1} \\
v_t &= \alpha\, v_{t-1} + (1-\alpha)\, g_t^2 \\
\tilde v_t &= \begin{cases} v_t - \bar g_t^2,\ \ \bar g_t = \alpha \bar g_{t-1} + (1-\alpha) g_t
 & \text{centered} \\ v_t & \text{otherwise} \end{cases} \\
b_t &= \mu\, b_{t-1} + \frac{g_t}{\sqrt{\tilde v_t} + \epsilon} \\
\theta_t &= \theta_{t-1} - \gamma\, b_t \quad (b_t = g_t/(\sqrt{\tilde v_t}+\epsilon)
 \text{ if } \mu = 0)
\end{aligned}""",
    notes=(
        "ε is added outside the square root (TensorFlow puts it inside).",
        "The momentum buffer accumulates the already-normalised step, and v starts at 0 "
        "with no bias correction, so the first step is large: γ·g/(√(1−α)·|g| + ε), about "
        "10γ·sign(g) at α = 0.99 (centered: γ·g/(√(α(1−α))·|g| + ε), about 10.05γ·sign(g)).",
    ),
    paper=Paper(
        "Hinton, Neural Networks for Machine Learning, lecture 6e (2012)",
        "https://www.cs.toronto.edu/~tijmen/csc321/slides/lecture_slides_lec6.pdf",
    ),
    symbols=(
        *knobs.shared_symbols("lr", "weight_decay", "eps"),
        ("alpha", r"\alpha"),
        ("momentum", r"\mu"),
    ),
    state=(
        STEP,
        StateSymbol("square_avg", "v_t", "v_{t-1}", "average of g²"),
        _BUFFER,
        StateSymbol("grad_avg", r"\bar g_t", r"\bar g_{t-1}", "average of g (centered)"),
    ),
)


def _warn_step_sizes(values: Mapping[str, HValue]) -> list[str]:
    low, high = values["step_sizes"]  # type: ignore[misc]
    if low > high:
        return [f"step_sizes: Γmin {low:g} > Γmax {high:g}: torch clamps every step size to Γmax"]
    return []


RPROP = OptimizerSpec(
    key="rprop",
    label="Rprop",
    factory=torch.optim.Rprop,
    hparams=(
        knobs.lr(1e-2, zero="γ = 0: every step size starts at 0 and is clipped up to Γmin"),
        HParam(
            "etas",
            (0.5, 1.2),
            0.0,
            None,
            low_open=True,
            help="(η⁻, η⁺): step-size shrink and growth factors, 0 < η⁻ < 1 < η⁺",
            origin=TORCH_CHECK,
            parts=(
                HParam("etas[0]", 0.5, 0.0, 1.0, low_open=True, high_open=True, origin=TORCH_CHECK),
                HParam("etas[1]", 1.2, 1.0, None, low_open=True, origin=TORCH_CHECK),
            ),
        ),
        HParam(
            "step_sizes",
            (1e-6, 50.0),
            None,
            None,
            log=True,
            help="(Γmin, Γmax): bounds on each coordinate's step size",
            origin=TORCH_CHECK,
            cautions=(
                Caution(
                    "a negative bound gives negative step sizes, which step uphill",
                    high=0.0,
                    high_open=True,
                ),
            ),
        ),
        knobs.MAXIMIZE,
    ),
    rule=r"""
\begin{aligned}
s_t &= \begin{cases}
\eta^+ & g_t\, g_{t-1} > 0 \\
\eta^-,\ \ g_t \leftarrow 0 & g_t\, g_{t-1} < 0 \\
1 & \text{otherwise}
\end{cases} \qquad g_0 = 0,\ \eta_0 = \gamma \\
\eta_t &= \operatorname{clip}\left(\eta_{t-1}\, s_t,\ \Gamma_{\min},\ \Gamma_{\max}\right) \\
\theta_t &= \theta_{t-1} - \eta_t\, \operatorname{sign}(g_t)
\end{aligned}""",
    notes=(
        "Each coordinate has its own step size; the learning rate is only its initial value, "
        "and it is clipped into [Γmin, Γmax] from the first step on.",
        "After a sign change the gradient is zeroed, so that coordinate pauses for one step "
        "(the iRprop⁻ variant).",
        "Rprop is a full-batch method: gradient noise makes the signs flip at random.",
    ),
    paper=Paper(
        "Riedmiller & Braun, A direct adaptive method for faster backpropagation "
        "learning: the RPROP algorithm (1993)",
        "https://doi.org/10.1109/ICNN.1993.298623",
    ),
    warn=_warn_step_sizes,
    symbols=(
        ("lr", r"\gamma"),
        ("etas[0]", r"\eta^-"),
        ("etas[1]", r"\eta^+"),
        ("step_sizes[0]", r"\Gamma_{\min}"),
        ("step_sizes[1]", r"\Gamma_{\max}"),
    ),
    state=(
        STEP,
        StateSymbol("prev", "g_t", "g_{t-1}", "the last gradient (0 where its sign flipped)"),
        StateSymbol("step_size", r"\eta_t", r"\eta_{t-1}", "each coordinate's step size"),
    ),
)

ASGD = OptimizerSpec(
    key="asgd",
    label="ASGD",
    factory=torch.optim.ASGD,
    hparams=(
        knobs.lr(1e-2),
        HParam(
            "lambd",
            1e-4,
            None,
            None,
            help="λ_d: decay term of both θ and η_t",
            origin=TORCH_CHECK,
            cautions=(
                Caution(
                    "λ_d < 0: η_t grows, and once 1 + λ_dγt ≤ 0 its power is meaningless "
                    "(torch casts a complex number to real; exactly 0 makes step() fail)",
                    high=0.0,
                    high_open=True,
                ),
            ),
        ),
        HParam(
            "alpha",
            0.75,
            None,
            None,
            help="α: power of the η_t decay",
            origin=TORCH_CHECK,
            cautions=(
                Caution("α < 0: η_t grows with t instead of decaying", high=0.0, high_open=True),
            ),
        ),
        HParam("t0", 1e6, None, None, help="step at which averaging starts", origin=TORCH_CHECK),
        knobs.weight_decay(),
        knobs.MAXIMIZE,
    ),
    rule=r"""
\begin{aligned}
g_t &\leftarrow g_t + \lambda\,\theta_{t-1} \\
\theta_t &= \theta_{t-1}\,(1 - \lambda_d\, \eta_t) - \eta_t\, g_t \\
\bar\theta_t &= \begin{cases} \theta_t & \mu_t = 1 \\ \bar\theta_{t-1}
 + \mu_t (\theta_t - \bar\theta_{t-1}) & \text{otherwise} \end{cases} \\
\eta_{t+1} &= \gamma / (1 + \lambda_d \gamma t)^{\alpha}, \qquad
\mu_{t+1} = 1 / \max(1,\ t - t_0), \qquad \eta_1 = \gamma,\ \mu_1 = 1
\end{aligned}""",
    notes=(
        "The averaged iterate θ̄ lives in the optimizer state ('ax'); the parameters "
        "themselves follow θ_t, so the drawn path is the non-averaged one.",
        "With the default t0 = 1e6 averaging never starts in a short run.",
    ),
    paper=Paper(
        "Polyak & Juditsky, Acceleration of Stochastic Approximation by Averaging (1992)",
        "https://doi.org/10.1137/0330046",
    ),
    symbols=(
        *knobs.shared_symbols("lr", "weight_decay"),
        ("lambd", r"\lambda_d"),
        ("alpha", r"\alpha"),
        ("t0", "t_0"),
    ),
    state=(
        STEP,
        StateSymbol("eta", r"\eta_{t+1}", r"\eta_t", "the step size of the next step"),
        StateSymbol("mu", r"\mu_{t+1}", r"\mu_t", "the averaging weight of the next step"),
        StateSymbol("ax", r"\bar\theta_t", r"\bar\theta_{t-1}", "the averaged iterate"),
    ),
)

_OPTIMIZERS: list[OptimizerSpec] = [
    SGD,
    ADAM,
    ADAMW,
    ADAMAX,
    NADAM,
    RADAM,
    ADAGRAD,
    ADADELTA,
    RMSPROP,
    RPROP,
    ASGD,
    LBFGS,
    MUON,
]

if ADAFACTOR is not None:  # torch >= 2.5
    _OPTIMIZERS.append(ADAFACTOR)

#: The built-in optimizers, in display order. One line in `_OPTIMIZERS` adds one everywhere.
BUILTIN_OPTIMIZERS: tuple[OptimizerSpec, ...] = tuple(_OPTIMIZERS)


PRESETS: tuple[Preset, ...] = (
    Preset("sgd_momentum", "SGD + momentum", "sgd", (("momentum", 0.9),)),
    Preset("nesterov", "Nesterov", "sgd", (("momentum", 0.9), ("nesterov", True))),
)
_PRESET_BY_KEY: dict[str, Preset] = {p.key: p for p in PRESETS}
