"""The built-in optimizers: every `torch.optim` optimizer OptLab offers, as specs.

Adding an optimizer is one entry here plus one line in `_OPTIMIZERS`; it then
shows up in every page, the CLI and the parametrised tests. Variants are
parameters, not copies: Nesterov is SGD with ``nesterov=True``, offered as a
`Preset`.

Notation in the rules: :math:`\\gamma` learning rate, :math:`g_t` the
gradient at :math:`\\theta_{t-1}` (negated when ``maximize``), :math:`\\lambda`
weight decay; every operation is elementwise.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from optlab.optim.hparams import HParam, HValue
from optlab.optim.spec import OptimizerSpec, Paper, Preset

# Shared knobs, written once and reused by every optimizer that has them.
_EPS = "added to the denominator for numerical stability"


def _lr(default: float) -> HParam:
    return HParam("lr", default, 0.0, 1000.0, log=True, low_open=True, help="learning rate γ")


def _wd(default: float = 0.0, help: str = "L2 penalty λ added to the gradient") -> HParam:
    return HParam("weight_decay", default, 0.0, 100.0, help=help)


def _eps(default: float) -> HParam:
    return HParam("eps", default, 0.0, 1.0, log=True, low_open=True, help=f"ε, {_EPS}")


def _betas(default: tuple[float, float] = (0.9, 0.999)) -> HParam:
    return HParam(
        "betas",
        default,
        0.0,
        1.0,
        high_open=True,
        help="(β₁, β₂): decay rates of the first and second moment averages",
    )


_MAXIMIZE = HParam("maximize", False, help="ascend the objective instead of descending it")
_DECOUPLED = HParam(
    "decoupled_weight_decay",
    False,
    help="shrink θ by γλ directly (AdamW-style) instead of adding λθ to the gradient",
)


SGD = OptimizerSpec(
    key="sgd",
    label="SGD",
    factory=torch.optim.SGD,
    hparams=(
        _lr(1e-3),
        HParam("momentum", 0.0, 0.0, 1.0, high_open=True, help="momentum factor μ"),
        HParam("dampening", 0.0, 0.0, 1.0, help="dampening τ applied to new gradients"),
        _wd(),
        HParam("nesterov", False, help="Nesterov momentum (needs μ > 0 and τ = 0)"),
        _MAXIMIZE,
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
        "Momentum multiplies the velocity, and the learning rate is applied after it "
        "(Sutskever et al. form); some texts fold γ into the buffer instead, which "
        "differs when γ changes during training.",
        "Nesterov is the reformulated look-ahead g + μb, not an extra gradient evaluation.",
    ),
    paper=Paper(
        "Sutskever et al., On the importance of initialization and momentum in deep "
        "learning (2013)",
        "https://proceedings.mlr.press/v28/sutskever13.html",
    ),
)

_ADAM_RULE = r"""
\begin{aligned}
{DECAY}
m_t &= \beta_1 m_{t-1} + (1-\beta_1)\, g_t \\
v_t &= \beta_2 v_{t-1} + (1-\beta_2)\, g_t^2 \\
\hat v_t &= \begin{cases} \max(\hat v_{t-1}, v_t) & \text{amsgrad} \\ v_t & \text{otherwise}
\end{cases} \\
\theta_t &= \theta_{t-1} - \frac{\gamma}{1-\beta_1^t}\,
  \frac{m_t}{\sqrt{\hat v_t}\,/\sqrt{1-\beta_2^t} + \epsilon}
\end{aligned}"""

_COUPLED = r"g_t &\leftarrow g_t + \lambda\,\theta_{t-1} \quad"
_COUPLED += r"(\text{decoupled: } \theta_{t-1} \leftarrow \theta_{t-1}(1-\gamma\lambda)) \\"
_DECOUPLED_LINE = r"\theta_{t-1} &\leftarrow \theta_{t-1}\,(1 - \gamma\lambda) \\"

ADAM = OptimizerSpec(
    key="adam",
    label="Adam",
    factory=torch.optim.Adam,
    hparams=(
        _lr(1e-3),
        _betas(),
        _eps(1e-8),
        _wd(),
        HParam("amsgrad", False, help="use the running maximum of v (AMSGrad)"),
        _DECOUPLED,
        _MAXIMIZE,
    ),
    rule=_ADAM_RULE.replace("{DECAY}", _COUPLED),
    notes=(
        "ε is added after the bias-corrected square root, as in the paper's Algorithm 1.",
        "With amsgrad, torch keeps the maximum of the raw v_t and bias-corrects it "
        "afterwards with the current step's factor.",
        "Plain weight_decay is an L2 term in the gradient, which Adam then rescales; "
        "decoupled_weight_decay=True gives AdamW.",
    ),
    paper=Paper(
        "Kingma & Ba, Adam: A Method for Stochastic Optimization (2014)",
        "https://arxiv.org/abs/1412.6980",
    ),
)

ADAMW = OptimizerSpec(
    key="adamw",
    label="AdamW",
    factory=torch.optim.AdamW,
    hparams=(
        _lr(1e-3),
        _betas(),
        _eps(1e-8),
        _wd(1e-2, help="decoupled decay λ: θ shrinks by γλ each step"),
        HParam("amsgrad", False, help="use the running maximum of v (AMSGrad)"),
        _MAXIMIZE,
    ),
    rule=_ADAM_RULE.replace("{DECAY}", _DECOUPLED_LINE),
    notes=(
        "torch multiplies the decay by the learning rate (θ ← θ(1 − γλ)); the paper "
        "decouples it from γ with a separate schedule multiplier.",
        "Default weight_decay is 0.01, not 0: AdamW decays unless told otherwise.",
    ),
    paper=Paper(
        "Loshchilov & Hutter, Decoupled Weight Decay Regularization (2017)",
        "https://arxiv.org/abs/1711.05101",
    ),
)

ADAMAX = OptimizerSpec(
    key="adamax",
    label="Adamax",
    factory=torch.optim.Adamax,
    hparams=(_lr(2e-3), _betas(), _eps(1e-8), _wd(), _MAXIMIZE),
    rule=r"""
\begin{aligned}
g_t &\leftarrow g_t + \lambda\,\theta_{t-1} \\
m_t &= \beta_1 m_{t-1} + (1-\beta_1)\, g_t \\
u_t &= \max(\beta_2 u_{t-1},\ |g_t| + \epsilon) \\
\theta_t &= \theta_{t-1} - \frac{\gamma}{1-\beta_1^t}\,\frac{m_t}{u_t}
\end{aligned}""",
    notes=("torch adds ε inside the max (|g| + ε), not to the denominator.",),
    paper=Paper(
        "Kingma & Ba, Adam: A Method for Stochastic Optimization, section 7 (2014)",
        "https://arxiv.org/abs/1412.6980",
    ),
)

NADAM = OptimizerSpec(
    key="nadam",
    label="NAdam",
    factory=torch.optim.NAdam,
    hparams=(
        _lr(2e-3),
        _betas(),
        _eps(1e-8),
        _wd(),
        HParam(
            "momentum_decay",
            4e-3,
            0.0,
            1.0,
            log=False,
            help="ψ: how fast the momentum schedule μ_t warms up",
        ),
        _DECOUPLED,
        _MAXIMIZE,
    ),
    rule=r"""
\begin{aligned}
{DECAY}
\mu_t &= \beta_1\left(1 - \tfrac12\, 0.96^{\,t\psi}\right),\quad
\mu_{t+1} = \beta_1\left(1 - \tfrac12\, 0.96^{\,(t+1)\psi}\right) \\
m_t &= \beta_1 m_{t-1} + (1-\beta_1)\, g_t, \qquad
v_t = \beta_2 v_{t-1} + (1-\beta_2)\, g_t^2 \\
\theta_t &= \theta_{t-1}
 - \frac{\gamma (1-\mu_t)}{1-\prod_{i\le t}\mu_i}\,\frac{g_t}{\sqrt{v_t/(1-\beta_2^t)}+\epsilon}
 - \frac{\gamma\, \mu_{t+1}}{1-\prod_{i\le t+1}\mu_i}\,\frac{m_t}{\sqrt{v_t/(1-\beta_2^t)}+\epsilon}
\end{aligned}""".replace("{DECAY}", _COUPLED),
    notes=(
        "torch uses Dozat's momentum schedule μ_t with the 0.96 base and ψ = momentum_decay; "
        "the product of all μ_i is kept in the optimizer state.",
    ),
    paper=Paper(
        "Dozat, Incorporating Nesterov Momentum into Adam (2016)",
        "https://openreview.net/forum?id=OM0jvwB8jIp57ZJjtNEZ",
    ),
)

RADAM = OptimizerSpec(
    key="radam",
    label="RAdam",
    factory=torch.optim.RAdam,
    hparams=(_lr(1e-3), _betas(), _eps(1e-8), _wd(), _DECOUPLED, _MAXIMIZE),
    rule=r"""
\begin{aligned}
{DECAY}
m_t &= \beta_1 m_{t-1} + (1-\beta_1)\, g_t, \qquad
v_t = \beta_2 v_{t-1} + (1-\beta_2)\, g_t^2 \\
\rho_\infty &= \tfrac{2}{1-\beta_2} - 1, \qquad
\rho_t = \rho_\infty - \tfrac{2 t \beta_2^t}{1-\beta_2^t} \\
\theta_t &= \begin{cases}
\theta_{t-1} - \gamma\, \frac{m_t}{1-\beta_1^t}\, r_t\,
  \frac{\sqrt{1-\beta_2^t}}{\sqrt{v_t}+\epsilon} & \rho_t > 5 \\
\theta_{t-1} - \gamma\, \frac{m_t}{1-\beta_1^t} & \text{otherwise}
\end{cases} \\
r_t &= \sqrt{\tfrac{(\rho_t-4)(\rho_t-2)\rho_\infty}{(\rho_\infty-4)(\rho_\infty-2)\rho_t}}
\end{aligned}""".replace("{DECAY}", _COUPLED),
    notes=(
        "While the variance estimate is unreliable (ρ_t ≤ 5, the first few steps) RAdam "
        "takes plain momentum-SGD steps; torch's threshold is 5, the paper's 4.",
    ),
    paper=Paper(
        "Liu et al., On the Variance of the Adaptive Learning Rate and Beyond (2019)",
        "https://arxiv.org/abs/1908.03265",
    ),
)

ADAGRAD = OptimizerSpec(
    key="adagrad",
    label="Adagrad",
    factory=torch.optim.Adagrad,
    hparams=(
        _lr(1e-2),
        HParam("lr_decay", 0.0, 0.0, 10.0, help="η: γ̃ = γ / (1 + (t−1)η)"),
        _wd(),
        HParam("initial_accumulator_value", 0.0, 0.0, 100.0, help="starting value of the sum s₀"),
        _eps(1e-10),
        _MAXIMIZE,
    ),
    rule=r"""
\begin{aligned}
\tilde\gamma &= \gamma / \left(1 + (t-1)\,\eta\right) \\
g_t &\leftarrow g_t + \lambda\,\theta_{t-1} \\
s_t &= s_{t-1} + g_t^2 \\
\theta_t &= \theta_{t-1} - \tilde\gamma\, \frac{g_t}{\sqrt{s_t} + \epsilon}
\end{aligned}""",
    notes=("ε is added outside the square root; the default ε is 1e-10, not 1e-8.",),
    paper=Paper(
        "Duchi, Hazan & Singer, Adaptive Subgradient Methods for Online Learning and "
        "Stochastic Optimization (2011)",
        "https://jmlr.org/papers/v12/duchi11a.html",
    ),
)

ADADELTA = OptimizerSpec(
    key="adadelta",
    label="Adadelta",
    factory=torch.optim.Adadelta,
    hparams=(
        _lr(1.0),
        HParam("rho", 0.9, 0.0, 1.0, help="ρ: decay rate of both running averages"),
        _eps(1e-6),
        _wd(),
        _MAXIMIZE,
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
        "The paper has no learning rate; torch scales the step by γ (default 1.0, which "
        "recovers the paper).",
    ),
    paper=Paper(
        "Zeiler, ADADELTA: An Adaptive Learning Rate Method (2012)",
        "https://arxiv.org/abs/1212.5701",
    ),
)

RMSPROP = OptimizerSpec(
    key="rmsprop",
    label="RMSprop",
    factory=torch.optim.RMSprop,
    hparams=(
        _lr(1e-2),
        HParam("alpha", 0.99, 0.0, 1.0, help="α: smoothing constant of the squared average"),
        _eps(1e-8),
        _wd(),
        HParam("momentum", 0.0, 0.0, 1.0, high_open=True, help="momentum factor μ"),
        HParam("centered", False, help="divide by an estimate of the variance, not the 2nd moment"),
        _MAXIMIZE,
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
        "with no bias correction, so the first steps are large (1/√(1−α) ≈ 10×g/|g|).",
    ),
    paper=Paper(
        "Hinton, Neural Networks for Machine Learning, lecture 6e (2012)",
        "https://www.cs.toronto.edu/~tijmen/csc321/slides/lecture_slides_lec6.pdf",
    ),
)


def _check_step_sizes(values: Mapping[str, HValue]) -> None:
    low, high = values["step_sizes"]  # type: ignore[misc]
    if low > high:
        # torch accepts this and silently clamps every step to the maximum.
        raise ValueError(
            f"Invalid step_sizes value: {low}/{high} (the minimum exceeds the maximum)"
        )


RPROP = OptimizerSpec(
    key="rprop",
    label="Rprop",
    factory=torch.optim.Rprop,
    hparams=(
        _lr(1e-2),
        HParam(
            "etas",
            (0.5, 1.2),
            0.0,
            10.0,
            low_open=True,
            help="(η⁻, η⁺): step-size shrink and growth factors, 0 < η⁻ < 1 < η⁺",
        ),
        HParam(
            "step_sizes",
            (1e-6, 50.0),
            0.0,
            1000.0,
            log=True,
            low_open=True,
            help="(Γmin, Γmax): bounds on each coordinate's step size",
        ),
        _MAXIMIZE,
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
    check=_check_step_sizes,
    paper=Paper(
        "Riedmiller & Braun, A direct adaptive method for faster backpropagation "
        "learning: the RPROP algorithm (1993)",
        "https://doi.org/10.1109/ICNN.1993.298623",
    ),
)

ASGD = OptimizerSpec(
    key="asgd",
    label="ASGD",
    factory=torch.optim.ASGD,
    hparams=(
        _lr(1e-2),
        HParam("lambd", 1e-4, 0.0, 1.0, help="λ_d: decay term of both θ and η_t"),
        HParam("alpha", 0.75, 0.0, 10.0, help="α: power of the η_t decay"),
        HParam("t0", 1e6, 0.0, 1e9, help="step at which averaging starts"),
        _wd(),
        _MAXIMIZE,
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
)

LBFGS = OptimizerSpec(
    key="lbfgs",
    label="L-BFGS",
    factory=torch.optim.LBFGS,
    hparams=(
        _lr(1.0),
        HParam(
            "max_iter",
            20,
            1,
            200,
            integer=True,
            help="inner iterations per step(closure) call",
        ),
        HParam(
            "tolerance_grad",
            1e-7,
            0.0,
            1.0,
            log=True,
            help="stop the inner loop when max |g| falls below this",
        ),
        HParam(
            "tolerance_change",
            1e-9,
            0.0,
            1.0,
            log=True,
            help="stop the inner loop when the step or loss change falls below this",
        ),
        HParam("history_size", 100, 1, 1000, integer=True, help="curvature pairs kept (m)"),
        HParam(
            "line_search_fn",
            None,
            choices=(None, "strong_wolfe"),
            help="none: fixed step γ; strong_wolfe: a line search for the step length",
        ),
    ),
    rule=r"""
\begin{aligned}
&\text{repeat up to max\_iter times inside one step(closure):} \\
&\quad d_k = -H_k\, g_k \quad \text{(two-loop recursion over the last } m
 \text{ pairs } s_i = \theta_{i+1}-\theta_i,\ y_i = g_{i+1}-g_i) \\
&\quad H_0 = \frac{s^\top y}{y^\top y}\, I, \qquad
\alpha_k = \begin{cases} \min(1, 1/\lVert g\rVert_1)\,\gamma & \text{the optimizer's very first
 iteration} \\ \gamma & \text{afterwards} \end{cases} \\
&\quad \theta_{k+1} = \theta_k + \alpha_k d_k \quad (\alpha_k \text{ from a strong-Wolfe search
 if line\_search\_fn}) \\
&\text{stop early when } \max|g| \le \text{tolerance\_grad or the change}
 \le \text{tolerance\_change}
\end{aligned}""",
    notes=(
        "One OptLab step is one optimizer.step(closure) call, which runs up to max_iter "
        "quasi-Newton iterations and may evaluate the function up to 1.25·max_iter times: "
        "compare it with other optimizers by function evaluations, not steps.",
        "The very first iteration uses the step min(1, 1/‖g‖₁)·γ (the line search's first "
        "guess when there is one).",
        "Pairs with sᵀy ≤ 1e-10 are skipped, which keeps H positive definite on "
        "non-convex surfaces.",
    ),
    paper=Paper(
        "Liu & Nocedal, On the limited memory BFGS method for large scale optimization (1989)",
        "https://doi.org/10.1007/BF01589116",
    ),
    uses_closure=True,
    # torch's default max_eval is max_iter * 5 // 4.
    evals_per_step=lambda values: int(values["max_iter"]) * 5 // 4,
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
]

if hasattr(torch.optim, "Adafactor"):
    _OPTIMIZERS.append(
        OptimizerSpec(
            key="adafactor",
            label="Adafactor",
            factory=torch.optim.Adafactor,
            hparams=(
                _lr(1e-2),
                HParam(
                    "beta2_decay",
                    -0.8,
                    -1.0,
                    0.0,
                    help="c: the second-moment decay is β₂,t = 1 − t^c",
                ),
                HParam("d", 1.0, 1.0, 100.0, help="clipping threshold of the update RMS"),
                _wd(help="decoupled decay λ: θ shrinks by γλ each step"),
                _MAXIMIZE,
            ),
            rule=r"""
\begin{aligned}
\rho_t &= \min(\gamma,\ 1/\sqrt t), \qquad
\alpha_t = \max\!\left(\epsilon_2,\ \mathrm{RMS}(\theta_{t-1})\right) \rho_t \\
\theta_{t-1} &\leftarrow \theta_{t-1}\,(1 - \gamma\lambda) \\
v_t &= (1 - t^{c})\, v_{t-1} + t^{c}\, g_t^2 \\
u_t &= g_t / \sqrt{\max(v_t, \epsilon_1^2)} \\
\theta_t &= \theta_{t-1} - \frac{\alpha_t}{\max(1, \mathrm{RMS}(u_t)/d)}\, u_t
\end{aligned}""",
            notes=(
                "A 2-element parameter is a vector, so the second moment is not factored: "
                "the row/column factorisation only applies to matrices.",
                "The step is relative: α_t scales with the RMS of θ itself (at least ε₂ = "
                "1e-3), so a path starting near the origin moves slowly at first.",
                "torch has no first moment (β₁) and uses ε₁ = machine epsilon by default.",
            ),
            paper=Paper(
                "Shazeer & Stern, Adafactor: Adaptive Learning Rates with Sublinear Memory "
                "Cost (2018)",
                "https://arxiv.org/abs/1804.04235",
            ),
        )
    )

#: The built-in optimizers, in display order. One line in `_OPTIMIZERS` adds one everywhere.
BUILTIN_OPTIMIZERS: tuple[OptimizerSpec, ...] = tuple(_OPTIMIZERS)


PRESETS: tuple[Preset, ...] = (
    Preset("sgd_momentum", "SGD + momentum", "sgd", (("momentum", 0.9),)),
    Preset("nesterov", "Nesterov", "sgd", (("momentum", 0.9), ("nesterov", True))),
)
_PRESET_BY_KEY: dict[str, Preset] = {p.key: p for p in PRESETS}
