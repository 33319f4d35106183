"""The built-in Adam family (Adam, AdamW, Adamax, NAdam, RAdam) and Adafactor, as specs.

`optlab.optim.builtin` lists them with the others. Notation as there:
:math:`\\gamma` learning rate, :math:`g_t` the gradient at
:math:`\\theta_{t-1}` (negated when ``maximize``), :math:`\\lambda` weight
decay; every operation is elementwise.
"""

from __future__ import annotations

import torch

from optlab.optim import knobs
from optlab.optim.hparams import TORCH_CHECK, Caution, HParam
from optlab.optim.spec import OptimizerSpec, Paper, StateSymbol

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

COUPLED = r"g_t &\leftarrow g_t + \lambda\,\theta_{t-1} \quad"
COUPLED += r"(\text{decoupled: } \theta_{t-1} \leftarrow \theta_{t-1}(1-\gamma\lambda)) \\"
_DECOUPLED_LINE = r"\theta_{t-1} &\leftarrow \theta_{t-1}\,(1 - \gamma\lambda) \\"

_EPS_AFTER_ROOT = "ε, added to the denominator after the square root"
_AMSGRAD = HParam("amsgrad", False, help="use the running maximum of v (AMSGrad)")

#: torch's step counter: t after the step, t − 1 before it.
STEP = StateSymbol("step", "t", "t-1", "steps taken (torch's counter)")
_M = StateSymbol("exp_avg", "m_t", "m_{t-1}", "first moment: average of g")
_V = StateSymbol("exp_avg_sq", "v_t", "v_{t-1}", "second moment: average of g²")
_ADAM_STATE = (
    STEP,
    _M,
    _V,
    StateSymbol("max_exp_avg_sq", r"\hat v_t", r"\hat v_{t-1}", "running maximum of v (amsgrad)"),
)
_ADAM_SYMBOLS = knobs.shared_symbols("lr", "betas[0]", "betas[1]", "eps", "weight_decay")

ADAM = OptimizerSpec(
    key="adam",
    label="Adam",
    factory=torch.optim.Adam,
    hparams=(
        knobs.lr(1e-3),
        knobs.betas(),
        knobs.eps(1e-8, _EPS_AFTER_ROOT),
        knobs.weight_decay(),
        _AMSGRAD,
        knobs.DECOUPLED,
        knobs.MAXIMIZE,
    ),
    rule=_ADAM_RULE.replace("{DECAY}", COUPLED),
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
    symbols=_ADAM_SYMBOLS,
    state=_ADAM_STATE,
)

ADAMW = OptimizerSpec(
    key="adamw",
    label="AdamW",
    factory=torch.optim.AdamW,
    hparams=(
        knobs.lr(1e-3),
        knobs.betas(),
        knobs.eps(1e-8, _EPS_AFTER_ROOT),
        knobs.weight_decay(1e-2, help="decoupled decay λ: θ shrinks by γλ each step"),
        _AMSGRAD,
        knobs.MAXIMIZE,
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
    symbols=_ADAM_SYMBOLS,
    state=_ADAM_STATE,
)

ADAMAX = OptimizerSpec(
    key="adamax",
    label="Adamax",
    factory=torch.optim.Adamax,
    hparams=(
        knobs.lr(2e-3),
        knobs.betas(),
        knobs.eps(
            1e-8,
            "ε, added to |g_t| inside the max, so u_t ≥ ε",
            zero="ε = 0: a coordinate whose gradient has always been 0 gives 0/0 = NaN",
        ),
        knobs.weight_decay(),
        knobs.MAXIMIZE,
    ),
    rule=r"""
\begin{aligned}
g_t &\leftarrow g_t + \lambda\,\theta_{t-1} \\
m_t &= \beta_1 m_{t-1} + (1-\beta_1)\, g_t \\
u_t &= \max(\beta_2 u_{t-1},\ |g_t| + \epsilon) \\
\theta_t &= \theta_{t-1} - \frac{\gamma}{1-\beta_1^t}\,\frac{m_t}{u_t}
\end{aligned}""",
    notes=(
        "torch puts ε inside the max, u_t = max(β₂u_{t−1}, |g_t| + ε), and divides by u_t "
        "alone; the paper's Algorithm 2 has no ε (u_t = max(β₂u_{t−1}, |g_t|)).",
    ),
    paper=Paper(
        "Kingma & Ba, Adam: A Method for Stochastic Optimization, section 7 (2014)",
        "https://arxiv.org/abs/1412.6980",
    ),
    symbols=_ADAM_SYMBOLS,
    state=(
        STEP,
        _M,
        StateSymbol("exp_inf", "u_t", "u_{t-1}", "exponentially weighted infinity norm"),
    ),
)

NADAM = OptimizerSpec(
    key="nadam",
    label="NAdam",
    factory=torch.optim.NAdam,
    hparams=(
        knobs.lr(2e-3),
        knobs.betas(),
        knobs.eps(1e-8, _EPS_AFTER_ROOT),
        knobs.weight_decay(),
        HParam(
            "momentum_decay",
            4e-3,
            0.0,
            None,
            help="ψ: how fast the momentum schedule μ_t warms up",
            origin=TORCH_CHECK,
            cautions=(Caution("ψ = 0: μ_t = β₁/2 at every step", high=0.0),),
        ),
        knobs.DECOUPLED,
        knobs.MAXIMIZE,
    ),
    rule=r"""
\begin{aligned}
{DECAY}
\mu_t &= \beta_1\left(1 - \tfrac12\, 0.96^{\,t\psi}\right),\quad
\mu_{t+1} = \beta_1\left(1 - \tfrac12\, 0.96^{\,(t+1)\psi}\right) \\
\textstyle\prod_{i\le t}\mu_i &= \mu_t \prod_{i\le t-1}\mu_i \\
m_t &= \beta_1 m_{t-1} + (1-\beta_1)\, g_t, \qquad
v_t = \beta_2 v_{t-1} + (1-\beta_2)\, g_t^2 \\
\theta_t &= \theta_{t-1}
 - \frac{\gamma (1-\mu_t)}{1-\prod_{i\le t}\mu_i}\,\frac{g_t}{\sqrt{v_t/(1-\beta_2^t)}+\epsilon} \\
&\quad - \frac{\gamma\, \mu_{t+1}}{1-\prod_{i\le t+1}\mu_i}\,
 \frac{m_t}{\sqrt{v_t/(1-\beta_2^t)}+\epsilon}
\end{aligned}""".replace("{DECAY}", COUPLED),
    notes=(
        "torch uses Dozat's momentum schedule μ_t with the 0.96 base and ψ = momentum_decay; "
        "the product of all μ_i is kept in the optimizer state.",
    ),
    paper=Paper(
        "Dozat, Incorporating Nesterov Momentum into Adam (2016)",
        "https://openreview.net/forum?id=OM0jvwB8jIp57ZJjtNEZ",
    ),
    symbols=(*_ADAM_SYMBOLS, ("momentum_decay", r"\psi")),
    state=(
        STEP,
        StateSymbol(
            "mu_product", r"\prod_{i\le t}\mu_i", r"\prod_{i\le t-1}\mu_i", "product of every μ_i"
        ),
        _M,
        _V,
    ),
)

RADAM = OptimizerSpec(
    key="radam",
    label="RAdam",
    factory=torch.optim.RAdam,
    hparams=(
        knobs.lr(1e-3),
        knobs.betas(),
        knobs.eps(1e-8, _EPS_AFTER_ROOT),
        knobs.weight_decay(),
        knobs.DECOUPLED,
        knobs.MAXIMIZE,
    ),
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
\end{aligned}""".replace("{DECAY}", COUPLED),
    notes=(
        "While the variance estimate is unreliable (ρ_t ≤ 5, the first few steps) RAdam "
        "takes plain momentum-SGD steps; torch's threshold is 5, the paper's 4.",
    ),
    paper=Paper(
        "Liu et al., On the Variance of the Adaptive Learning Rate and Beyond (2019)",
        "https://arxiv.org/abs/1908.03265",
    ),
    symbols=_ADAM_SYMBOLS,
    state=(STEP, _M, _V),
)

ADAFACTOR = (
    OptimizerSpec(
        key="adafactor",
        label="Adafactor",
        factory=torch.optim.Adafactor,
        hparams=(
            knobs.lr(1e-2, zero="γ = 0: ρ_t = 0, so the parameters never move"),
            HParam(
                "beta2_decay",
                -0.8,
                None,
                0.0,
                help="c: the second-moment decay is β₂,t = 1 − t^c",
                origin=TORCH_CHECK,
                cautions=(Caution("c = 0: v_t = g_t² at every step (no averaging)", low=0.0),),
            ),
            HParam(
                "eps",
                (None, 1e-3),
                0.0,
                None,
                log=True,
                help="(ε₁, ε₂): ε₁ floors the second moment (empty: the dtype's machine "
                "epsilon), ε₂ floors the relative step scale",
                origin=TORCH_CHECK,
                parts=(
                    HParam(
                        "eps[0]",
                        None,
                        0.0,
                        None,
                        log=True,
                        help="ε₁ (empty: the dtype's machine epsilon)",
                        optional=True,
                        origin=TORCH_CHECK,
                    ),
                    HParam(
                        "eps[1]",
                        1e-3,
                        0.0,
                        None,
                        log=True,
                        help="ε₂",
                        origin=TORCH_CHECK,
                        cautions=(
                            Caution("ε₂ = 0: a path at θ = 0 never moves (α_t = 0 there)", high=0),
                        ),
                    ),
                ),
            ),
            HParam(
                "d",
                1.0,
                1.0,
                None,
                help="clipping threshold of the update RMS",
                origin=TORCH_CHECK,
            ),
            knobs.weight_decay(help="decoupled decay λ: θ shrinks by γλ each step"),
            knobs.MAXIMIZE,
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
            "The step is relative: α_t scales with the RMS of θ itself (at least ε₂, 1e-3 by "
            "default), so a path starting near the origin moves slowly at first.",
            "torch has no first moment (β₁) and, with ε₁ left empty (None), uses the "
            "dtype's machine epsilon.",
        ),
        paper=Paper(
            "Shazeer & Stern, Adafactor: Adaptive Learning Rates with Sublinear Memory Cost (2018)",
            "https://arxiv.org/abs/1804.04235",
        ),
        symbols=(
            *knobs.shared_symbols("lr", "weight_decay"),
            ("beta2_decay", "c"),
            ("eps[0]", r"\epsilon_1"),
            ("eps[1]", r"\epsilon_2"),
            ("d", "d"),
        ),
        state=(
            STEP,
            StateSymbol("variance", "v_t", "v_{t-1}", "second moment of a vector parameter"),
            StateSymbol("row_var", "", "", "row factor of a matrix's second moment (unused here)"),
            StateSymbol("col_var", "", "", "column factor of a matrix's second moment (unused)"),
        ),
    )
    if hasattr(torch.optim, "Adafactor")
    else None
)
