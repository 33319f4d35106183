"""The ``pytorch_optimizer`` pack: a curated set of kozistr/pytorch_optimizer's optimizers.

Loaded when ``OPTLAB_PACKS`` names ``pytorch_optimizer`` and the library is
installed (``pip install -r requirements-extra.txt``, which pins
``pytorch-optimizer==4.1.0``). Every optimizer here is the library's own
class, built and stepped unchanged; only the Muon variants get a thin
subclass that sorts plain parameters into the library's Muon and AdamW groups
(`MuonSplit`). Each key starts with ``po_`` so that none can clash with
torch's optimizers (``muon``), the example plugin (``lion``) or a preset.

What OptLab adds is what it knows about each one: its knobs (the constructor's
names and defaults, with ranges from the library's own checks), the update
rule as the library computes it (read from its 4.1.0 source; where the rule
is too long to show, the rule says so and names the paper), the paper, and a
note. Knobs the pages cannot offer are left out and the notes say which:
``maximize`` (the library keeps it on the optimizer object, not in
``param_groups``, so neither ``state_dict()`` nor the step inspector sees
it), ``foreach`` (an implementation choice, set by the engines), callables
and dtypes.

Protocol flags (`optlab.optim.protocol`): Schedule-Free AdamW is
``averaged`` (``.train()``/``.eval()``), SophiaH needs ``create_graph`` and draws
random probes, Kron draws random numbers; Prodigy's ``d`` is a trace.
"""

from __future__ import annotations

from collections.abc import Mapping

import pytorch_optimizer as po
import torch

from optlab.optim.hparams import HParam, HValue
from optlab.optim.packs import po_knobs as knobs
from optlab.optim.packs.pytorch_optimizer_muon import MUON, NORMUON
from optlab.optim.spec import OptimizerSpec, StateSymbol


def _needs_opt_einsum(values: Mapping[str, HValue]) -> None:
    """Refuses Kron when torch cannot plan its einsums (see KRON's notes)."""
    if not torch.backends.opt_einsum.is_available():
        raise ValueError(
            "Kron needs opt_einsum, or one step can ask for many GiB: "
            "pip install -r requirements-extra.txt"
        )


LION = OptimizerSpec(
    key="po_lion",
    label="Lion (pytorch-optimizer)",
    factory=po.Lion,
    hparams=(
        knobs.lr(1e-4),
        knobs.betas((0.9, 0.99), "(β₁, β₂): β₁ mixes g into the step's sign, β₂ decays m"),
        knobs.decay(),
        knobs.DECOUPLE,
        knobs.FIXED,
    ),
    rule=r"""
\begin{aligned}
\theta_{t-1} &\leftarrow \theta_{t-1}(1-\gamma\lambda) \quad\text{(weight\_decouple)} \\
\theta_t &= \theta_{t-1}
  - \gamma\,\operatorname{sign}\!\big(\beta_1 m_{t-1} + (1-\beta_1) g_t\big) \\
m_t &= \beta_2 m_{t-1} + (1-\beta_2)\, g_t \qquad (m_0 = 0)
\end{aligned}""",
    notes=(
        "The library's Lion: the same rule as the example plugin (optlab/examples/lion.py), "
        "with its decay options; every coordinate moves by γ per step.",
        knobs.LEFT_OUT,
    ),
    paper=knobs.paper(
        "Chen et al., Symbolic Discovery of Optimization Algorithms (2023)", "2302.06675"
    ),
    symbols=(*knobs.SYMBOLS, *knobs.BETA_SYMBOLS),
    state=(StateSymbol("exp_avg", "m_t", "m_{t-1}", "momentum"),),
)

ADOPT = OptimizerSpec(
    key="po_adopt",
    label="ADOPT (pytorch-optimizer)",
    factory=po.ADOPT,
    hparams=(
        knobs.lr(1e-3),
        knobs.betas((0.9, 0.9999), "(β₁, β₂): decay rates of m and v"),
        knobs.decay(),
        knobs.flag("weight_decouple", False, "decoupled decay θ ← θ(1 − γλ) (off: g ← g + λθ)"),
        knobs.FIXED,
        HParam("eps", 1e-6, 0.0, None, log=True, help="ε: floor of √v", origin=knobs.CHECK),
    ),
    rule=r"""
\begin{aligned}
t = 1:\;& v_1 = g_1^2 \quad\text{(no step)} \\
t > 1:\;& m_t = \beta_1 m_{t-1} + (1-\beta_1)\,
  \operatorname{clip}\!\Big(\tfrac{g_t}{\max(\sqrt{v_{t-1}},\, \epsilon)},\, \pm t^{1/4}\Big) \\
& \theta_t = \theta_{t-1} - \gamma\, m_t \\
& v_t = \beta_2 v_{t-1} + (1-\beta_2)\, g_t^2
\end{aligned}""",
    notes=(
        "The gradient is normalised by the previous v (not one that already contains g_t), "
        "which is what gives ADOPT its convergence for any β₂; the first step only fills v.",
        "The clip bound t^{1/4} is the library's default clip_lambda (not offered here).",
        knobs.LEFT_OUT,
    ),
    paper=knobs.paper(
        "Taniguchi et al., ADOPT: Modified Adam Can Converge with Any β₂ (2024)", "2411.02853"
    ),
    symbols=(*knobs.SYMBOLS, *knobs.BETA_SYMBOLS),
    state=(
        StateSymbol("exp_avg", "m_t", "m_{t-1}", "first moment"),
        StateSymbol("exp_avg_sq", "v_t", "v_{t-1}", "second moment"),
    ),
)

PRODIGY = OptimizerSpec(
    key="po_prodigy",
    label="Prodigy (pytorch-optimizer)",
    factory=po.Prodigy,
    hparams=(
        knobs.lr(1.0),
        knobs.betas((0.9, 0.999), "(β₁, β₂): decay rates of the moments"),
        HParam(
            "beta3",
            None,
            0.0,
            1.0,
            optional=True,
            help="β₃: decay of the d estimate's sums (none: √β₂)",
        ),
        knobs.positive("d0", 1e-6, "d₀: the initial step-size estimate"),
        knobs.positive("d_coef", 1.0, "multiplies every new estimate of d"),
        knobs.decay(),
        knobs.DECOUPLE,
        knobs.FIXED,
        knobs.flag("bias_correction", False, "Adam's bias correction on the step d·γ"),
        knobs.flag(
            "safeguard_warmup", False, "leave γ out of the d estimate's sums during warm-up"
        ),
        HParam(
            "eps",
            1e-8,
            0.0,
            None,
            log=True,
            optional=True,
            help="ε in √v + dε (none: atan2 instead of a division)",
        ),
    ),
    rule=r"""
\begin{aligned}
&\text{Adam with moments scaled by } d: \\
&m_t = \beta_1 m_{t-1} + d(1-\beta_1) g_t \\
&v_t = \beta_2 v_{t-1} + d^2(1-\beta_2) g_t^2 \\
&\theta_t = \theta_{t-1} - d\gamma\, \frac{m_t}{\sqrt{v_t} + d\epsilon} \\
&d \leftarrow \max\!\Big(d,\ \frac{\sum \langle g, \theta_0 - \theta\rangle\ \text{(weighted)}}
  {\lVert s_t \rVert_1}\Big)
\end{aligned}""",
    notes=(
        "Prodigy estimates the distance to the solution, d, and steps with d·γ: leave γ at 1. "
        "d only grows; the step inspector plots it. This is a summary of "
        f"{knobs.PACKAGE} (read its prodigy.py for the weights of the sums).",
        "growth_rate (the most d may grow per step; default unbounded) is not offered.",
        knobs.LEFT_OUT,
    ),
    paper=knobs.paper(
        "Mishchenko and Defazio, Prodigy: An Expeditiously Adaptive Parameter-Free Learner (2023)",
        "2306.06101",
    ),
    symbols=(*knobs.SYMBOLS, *knobs.BETA_SYMBOLS, ("d0", "d_0")),
    state=(
        StateSymbol("exp_avg", "m_t", "m_{t-1}", "first moment (scaled by d)"),
        StateSymbol("exp_avg_sq", "v_t", "v_{t-1}", "second moment (scaled by d²)"),
        StateSymbol("s", "s_t", "s_{t-1}", "weighted gradient sum of the d estimate"),
        StateSymbol("p0", r"\theta_0", r"\theta_0", "the start"),
    ),
    traces=(("d", "d, Prodigy's estimate of the distance to the solution"),),
)

SCHEDULE_FREE_ADAMW = OptimizerSpec(
    key="po_sf_adamw",
    label="Schedule-Free AdamW (pytorch-optimizer)",
    factory=po.ScheduleFreeAdamW,
    hparams=(
        knobs.lr(2.5e-3),
        HParam(
            "betas",
            (0.9, 0.999),
            0.0,
            1.0,
            high_open=True,
            help="(β₁, β₂): β₁ interpolates y between z and x; β₂ decays v",
            origin=knobs.CHECK,
            parts=(
                HParam(
                    "betas[0]", 0.9, 0.0, 1.0, low_open=True, high_open=True, origin=knobs.CHECK
                ),
                HParam("betas[1]", 0.999, 0.0, 1.0, high_open=True, origin=knobs.CHECK),
            ),
        ),
        knobs.decay(help="weight decay λ, added to the normalised gradient at y"),
        HParam("r", 0.0, 0.0, None, help="the averaging weight grows as t^r"),
        HParam(
            "weight_lr_power",
            2.0,
            0.0,
            None,
            help="the averaging weight grows as max γ^power",
        ),
        knobs.count(
            "warmup_steps",
            0,
            0,
            100_000,
            "linear warm-up of γ over this many steps",
            "a run's length",
        ),
        knobs.count(
            "decoupling_c",
            0,
            0,
            1000,
            "0: plain averaging; c > 0 caps c_t at c(1 − β₁)c_t",
            "a sane range",
        ),
        knobs.flag("ams_bound", False, "divide by the running maximum of v (AMSGrad)"),
        HParam("eps", 1e-8, 0.0, None, log=True, help="ε added to √v̂", origin=knobs.CHECK),
    ),
    rule=r"""
\begin{aligned}
v_t &= \beta_2 v_{t-1} + (1-\beta_2) g_t^2,\quad
  \hat g_t = \frac{g_t}{\sqrt{v_t/(1-\beta_2^t) + 10^{-15}} + \epsilon}
  + \lambda y_{t-1} \\
c_t &= \frac{t^r \gamma_{\max}^{p}}{\sum_{i\le t} i^r \gamma_{\max}^{p}} \\
y_t &= (1-c_t)\, y_{t-1} + c_t z_{t-1} + \gamma\big(\beta_1(1-c_t) - 1\big)\hat g_t \\
z_t &= z_{t-1} - \gamma\, \hat g_t,\qquad
  x_t = \frac{y_t - (1-\beta_1) z_t}{\beta_1}\ \text{(optimizer.eval())}
\end{aligned}""",
    notes=(
        "Three sequences: the gradient is taken at y (the parameters while training), z is the "
        "SGD-like base sequence (state 'z'), and x, the running average, is what "
        "optimizer.eval() puts in the parameters. OptLab draws and records x (the point to "
        "use) and trains at y; the step inspector shows all three.",
        "No learning-rate schedule is needed (or wanted): the averaging replaces it.",
        knobs.LEFT_OUT,
    ),
    paper=knobs.paper("Defazio et al., The Road Less Scheduled (2024)", "2405.15682"),
    symbols=(*knobs.SYMBOLS, *knobs.BETA_SYMBOLS, ("weight_lr_power", "p")),
    state=(
        StateSymbol("z", "z_t", "z_{t-1}", "the base sequence"),
        StateSymbol("exp_avg_sq", "v_t", "v_{t-1}", "second moment"),
    ),
    averaged=True,
)

SOAP = OptimizerSpec(
    key="po_soap",
    label="SOAP (pytorch-optimizer)",
    factory=po.SOAP,
    hparams=(
        knobs.lr(3e-3),
        knobs.betas((0.95, 0.95), "(β₁, β₂): Adam's decay rates, in the eigenbasis"),
        HParam(
            "shampoo_beta",
            None,
            0.0,
            1.0,
            optional=True,
            help="decay of Shampoo's statistics GGᵀ (none: β₂)",
        ),
        knobs.decay(0.01),
        knobs.count(
            "precondition_frequency",
            10,
            1,
            10_000,
            "steps between eigenbasis updates",
            "a run's length",
        ),
        knobs.count(
            "max_precondition_dim",
            10000,
            1,
            10000,
            "larger dimensions are not preconditioned",
            "an eigendecomposition's cost",
        ),
        knobs.flag("merge_dims", False, "merge small dimensions before preconditioning"),
        knobs.flag("precondition_1d", False, "precondition vectors too (the 2-D point is one)"),
        knobs.flag("correct_bias", True, "Adam's bias correction"),
        knobs.flag("normalize_gradient", False, "divide the update by its mean square"),
        HParam(
            "eps", 1e-8, 0.0, None, log=True, help="ε in Adam's denominator", origin=knobs.CHECK
        ),
    ),
    rule=r"""
\begin{aligned}
&\text{Adam run in the eigenbasis } Q \\
&\text{of Shampoo's preconditioner } (GG^\top, G^\top G), \\
&Q \text{ refreshed every precondition\_frequency steps} \\
&\text{(}
  \text{"""
    + knobs.PACKAGE
    + r"""}\text{)}
\end{aligned}""",
    notes=(
        "On the 2-D point (a vector) with precondition_1d off, no dimension is preconditioned "
        "and SOAP is Adam with decoupled decay; turn precondition_1d on to see the "
        "eigenbasis at work. On the CNN it preconditions every weight matrix and kernel.",
        "The rule is a summary: SOAP's update is the paper's Algorithm 3 as the library "
        "implements it (soap.py); OptLab does not restate it symbol by symbol.",
        knobs.LEFT_OUT + " Nor data_format.",
    ),
    paper=knobs.paper(
        "Vyas et al., SOAP: Improving and Stabilizing Shampoo using Adam (2024)", "2409.11321"
    ),
    symbols=(*knobs.SYMBOLS, *knobs.BETA_SYMBOLS),
    state=(
        StateSymbol("exp_avg", "m_t", "m_{t-1}", "first moment (in the eigenbasis)"),
        StateSymbol("exp_avg_sq", "v_t", "v_{t-1}", "second moment (in the eigenbasis)"),
    ),
)

KRON = OptimizerSpec(
    key="po_kron",
    label="Kron / PSGD (pytorch-optimizer)",
    factory=po.Kron,
    hparams=(
        knobs.lr(1e-3),
        knobs.unit("momentum", 0.9, "momentum β of the gradient average"),
        knobs.decay(),
        knobs.flag("weight_decouple", True, "decoupled decay (on ≥ 2-D weights only)"),
        HParam(
            "pre_conditioner_update_probability",
            None,
            0.0,
            1.0,
            low_open=True,
            optional=True,
            help="how often Q is updated (none: the library's schedule, 1 → 0.03)",
        ),
        knobs.count(
            "max_size_triangular",
            8192,
            1,
            8192,
            "larger dimensions get a diagonal factor",
            "memory",
        ),
        knobs.count(
            "min_ndim_triangular",
            2,
            0,
            8,
            "tensors with fewer dimensions get diagonal factors",
            "a sane range",
        ),
        HParam(
            "memory_save_mode",
            None,
            choices=(None, "smart_one_diag", "one_diag", "all_diag"),
            help="which factors are diagonal (none: every factor up to max_size is triangular)",
            origin=knobs.CHECK,
        ),
        knobs.flag("momentum_into_precondition_update", True, "fit Q to the momentum (off: to g)"),
        knobs.unit("balance_prob", 0.01, "probability of rebalancing the factors' scales", False),
    ),
    rule=r"""
\begin{aligned}
m_t &= \beta m_{t-1} + (1-\beta) g_t,\quad \hat m_t = m_t / (1-\beta^t) \\
P &= Q^\top Q \text{ (Kronecker factors } Q_i\text{, fitted with random probes)} \\
u_t &= P \hat m_t \cdot \min\!\big(1, 1.1/\operatorname{RMS}(P\hat m_t)\big),\qquad
\theta_t = \theta_{t-1} - \gamma\, u_t
\end{aligned}""",
    notes=(
        "Kron's einsums need opt_einsum (requirements-extra.txt pins it): without it torch "
        "contracts them left to right, and one step on SeedNet's 64×1024 Linear weight asked "
        "for 16 GiB (measured), so the pack skips Kron when opt_einsum is missing. On the "
        "2-D point (a vector) every factor is diagonal.",
        "Q is updated with random probes and, by default, with a probability that decays "
        "from 1 to 0.03: OptLab seeds those draws from the run's seed, so runs repeat.",
        knobs.LEFT_OUT + " Nor mu_dtype and precondition_dtype (float32).",
    ),
    paper=knobs.paper("Li, Preconditioned Stochastic Gradient Descent (2015)", "1512.04202"),
    symbols=(("lr", r"\gamma"), ("weight_decay", r"\lambda"), ("momentum", r"\beta")),
    state=(StateSymbol("momentum_buffer", "m_t", "m_{t-1}", "gradient average"),),
    random=True,
    check=_needs_opt_einsum,
)

SOPHIA_H = OptimizerSpec(
    key="po_sophiah",
    label="SophiaH (pytorch-optimizer)",
    factory=po.SophiaH,
    hparams=(
        knobs.lr(6e-2),
        knobs.betas((0.96, 0.99), "(β₁, β₂): decay of the momentum and of the Hessian estimate"),
        knobs.decay(),
        knobs.DECOUPLE,
        knobs.FIXED,
        HParam(
            "p",
            1e-2,
            0.0,
            None,
            log=True,
            help="ρ: each coordinate's step is clipped to ±γρ",
            origin=knobs.CHECK,
        ),
        knobs.count(
            "update_period", 10, 1, 10_000, "steps between Hessian estimates", "a run's length"
        ),
        knobs.count(
            "num_samples", 1, 1, 16, "Hutchinson probes per estimate", "the work of one step"
        ),
        HParam(
            "hessian_distribution",
            "gaussian",
            choices=("gaussian", "rademacher"),
            help="the probes' distribution",
            origin=knobs.CHECK,
        ),
        HParam(
            "eps",
            1e-12,
            0.0,
            None,
            log=True,
            help="ε: floor of the Hessian estimate",
            origin=knobs.CHECK,
        ),
    ),
    rule=r"""
\begin{aligned}
m_t &= \beta_1 m_{t-1} + (1-\beta_1) g_t \\
h_t &= \beta_2 h_{t-k} + (1-\beta_2)\, u \odot (\nabla^2 f\, u),\ u \sim \mathcal N(0, I) \\
  &\quad\text{every } k \text{ steps (else } h_t = h_{t-1}) \\
\theta_t &= \theta_{t-1} - \gamma\,
  \operatorname{clip}\!\Big(\frac{m_t}{\max(h_t, \epsilon)},\ \pm\rho\Big)
\end{aligned}""",
    notes=(
        "The Hessian-vector product differentiates the gradient, so OptLab computes the "
        "gradient with create_graph=True for SophiaH (on surfaces and the CNN). The probes "
        "come from torch's global generator, which OptLab seeds from the run's seed.",
        "k is update_period; with num_samples > 1 the estimate is the probes' mean. Where "
        "the estimate is ≤ ε (negative curvature) the clip decides: the step is ±γρ.",
        knobs.LEFT_OUT,
    ),
    paper=knobs.paper(
        "Liu et al., Sophia: A Scalable Stochastic Second-order Optimizer for Language Model "
        "Pre-training (2023)",
        "2305.14342",
    ),
    symbols=(*knobs.SYMBOLS, *knobs.BETA_SYMBOLS, ("p", r"\rho"), ("update_period", "k")),
    state=(
        StateSymbol("momentum", "m_t", "m_{t-1}", "momentum"),
        StateSymbol("hessian_moment", "h_t", "h_{t-1}", "Hessian diagonal estimate"),
    ),
    create_graph=True,
    random=True,
)


OPTLAB_OPTIMIZERS: tuple[OptimizerSpec, ...] = (
    LION,
    ADOPT,
    PRODIGY,
    SCHEDULE_FREE_ADAMW,
    SOAP,
    KRON,
    SOPHIA_H,
    MUON,
    NORMUON,
)
