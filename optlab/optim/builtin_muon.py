"""Muon (``torch.optim.Muon``) as a spec: momentum orthogonalised by Newton–Schulz.

Read from ``torch/optim/_muon.py`` (torch 2.13), the code, not its docstring:

- The buffer is an exponential average, ``buf.lerp_(grad, 1 - momentum)``:
  B_t = μB_{t-1} + (1−μ)g_t, and the Nesterov update is ``grad.lerp(buf,
  momentum)`` = (1−μ)g_t + μB_t. torch's docstring writes B_t = μB_{t-1} + g_t
  and g_t + μB_t; the code is what runs, so the rule here is the code's.
- Newton–Schulz runs in bfloat16: the update is cast to bfloat16, divided by
  its Frobenius norm (clamped at ε), and iterated ``ns_steps`` times with
  torch's quintic coefficients (a, b, c) = (3.4445, −4.7750, 2.0315); a tall
  matrix is transposed first and back after.
- Weight decay shrinks θ by γλ (the unadjusted γ); the orthogonalised update
  is then scaled by the adjusted γ′ (``adjust_lr_fn``).
- The constructor refuses any parameter that is not a 2-D matrix, so a 2-D
  point is given to Muon as a (1, 2) matrix (`OptimizerSpec.point_shape`).

On one row (a 1 × 2 matrix) the Gram matrix XXᵀ is the 1 × 1 matrix ‖X‖², so
every iteration multiplies X by the scalar a + b‖X‖² + c‖X‖⁴: Newton–Schulz
never turns the row, it only rescales the normalised update. Muon on a
surface is normalised (Nesterov) momentum with a step of fixed length
`ROW_STEP` × γ′. `row_step_length` computes that factor in exact arithmetic;
torch's bfloat16 gives `ROW_STEP_RANGE` (measured, and checked by a test).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from optlab.optim import knobs
from optlab.optim.hparams import TORCH_CHECK, Caution, HParam, HValue, Limit
from optlab.optim.spec import OptimizerSpec, Paper, StateSymbol

#: torch's Newton–Schulz coefficients (a, b, c), from Keller Jordan's Muon.
NS_COEFFICIENTS = (3.4445, -4.7750, 2.0315)
#: torch's default number of Newton–Schulz iterations.
NS_STEPS = 5
#: The length of one Muon step on a single row, in units of γ′, as torch computes
#: it in bfloat16 with its defaults: the smallest and largest over 5,000 random
#: directions with ‖B̃‖ from 1e-4 to 1e4 (mean 0.690); `row_step_length` gives
#: 0.696 in exact arithmetic. A test measures torch against these figures. Tiny
#: momenta stray further (0.730 at ‖B̃‖ = 1e-6 along an axis; up to about 1.15
#: below ε, where the clamped norm no longer normalises).
ROW_STEP_RANGE = (0.680, 0.719)
#: The measured mean of `ROW_STEP_RANGE`'s sample, the figure the pages quote.
ROW_STEP = 0.69


def row_step_length(
    ns_steps: int = NS_STEPS, coefficients: tuple[float, ...] = NS_COEFFICIENTS
) -> float:
    """The norm Newton–Schulz leaves a unit row at, in exact (float64) arithmetic.

    On one row X, XXᵀ = ‖X‖², so each iteration maps the norm s to
    (a + b s² + c s⁴) s, starting from s = 1 (torch normalises first).
    """
    a, b, c = coefficients
    s = 1.0
    for _ in range(ns_steps):
        s = (a + b * s * s + c * s**4) * s
    return s


def _warn(values: Mapping[str, HValue]) -> list[str]:
    out = []
    if values["adjust_lr_fn"] == "match_rms_adamw":
        out.append(
            "adjust_lr_fn: match_rms_adamw scales the update by 0.2·√max(A, B) for an A × B "
            "weight: 0.2·√2 ≈ 0.28 for a 1 × 2 point, where none/original give 1"
        )
    return out


MUON = OptimizerSpec(
    key="muon",
    label="Muon",
    factory=torch.optim.Muon,
    hparams=(
        knobs.lr(1e-3),
        knobs.weight_decay(
            0.1, help="decoupled decay λ: θ shrinks by γλ each step (torch's default is 0.1)"
        ),
        HParam(
            "momentum",
            0.95,
            0.0,
            None,
            help="momentum μ: the buffer averages gradients, B ← μB + (1 − μ)g",
            origin=TORCH_CHECK,
            cautions=(
                Caution(
                    "μ = 1: the buffer stays at zero (gradients enter with weight 1 − μ = 0), "
                    "so θ never moves except by weight decay; μ > 1 gives them a negative weight",
                    low=1.0,
                ),
            ),
        ),
        HParam("nesterov", True, help="step along (1 − μ)g + μB instead of B"),
        HParam(
            "ns_steps",
            NS_STEPS,
            None,
            None,
            integer=True,
            help="Newton–Schulz iterations K (torch's quintic, in bfloat16)",
            origin=TORCH_CHECK,
            limit=Limit(
                "torch's step() refuses 100 or more; its constructor takes them",
                high=99,
                server_cap=False,
            ),
            cautions=(
                Caution(
                    "K ≤ 0: no iteration, the update is B̃ divided by its norm (length 1)",
                    high=0,
                ),
            ),
        ),
        HParam(
            "eps",
            1e-7,
            None,
            None,
            log=True,
            help="ε: the norm B̃ is divided by is clamped to at least ε",
            origin=TORCH_CHECK,
            cautions=(
                Caution(
                    "ε ≤ 0: a zero update divides 0 by 0 (NaN)",
                    high=0.0,
                ),
            ),
        ),
        HParam(
            "adjust_lr_fn",
            None,
            choices=(None, "original", "match_rms_adamw"),
            help="γ′ for an A × B matrix: original γ√max(1, A/B), match_rms_adamw 0.2γ√max(A, B)",
            origin=TORCH_CHECK,
        ),
    ),
    rule=r"""
\begin{aligned}
B_t &= \mu B_{t-1} + (1-\mu)\, g_t \\
\tilde B_t &= \begin{cases} (1-\mu)\, g_t + \mu B_t & \text{nesterov} \\ B_t & \text{otherwise}
\end{cases} \\
X_0 &= \frac{\operatorname{bf16}(\tilde B_t)}
{\max(\lVert \operatorname{bf16}(\tilde B_t)\rVert_F,\ \epsilon)}
\quad (X_0^\top \text{ if } \tilde B_t \text{ is taller than wide}) \\
X_{k+1} &= a X_k + \left(b\, X_k X_k^\top + c\,(X_k X_k^\top)^2\right) X_k,
\quad k = 0, \dots, K-1 \\
&\quad (a, b, c) = (3.4445,\ -4.7750,\ 2.0315) \text{, in bfloat16} \\
\gamma' &= \begin{cases} \gamma \sqrt{\max(1, A/B)} & \text{original (none)} \\
0.2\,\gamma \sqrt{\max(A, B)} & \text{match\_rms\_adamw} \end{cases}
\quad (\theta \in \mathbb{R}^{A \times B}) \\
\theta_t &= \theta_{t-1}\,(1 - \gamma\lambda) - \gamma' X_K
\end{aligned}""",
    notes=(
        "torch's code keeps an exponential average, B_t = μB_{t−1} + (1−μ)g_t "
        "(buf.lerp_(grad, 1 − μ)), and Nesterov steps along (1−μ)g_t + μB_t; its docstring "
        "writes μB_{t−1} + g_t and g_t + μB_t. The rule shown is the code's.",
        "The orthogonalisation runs in bfloat16 (8 significant bits): each entry of the update "
        "is rounded to about 0.2%, even for float64 parameters.",
        "Weight decay uses γ, the update the adjusted γ′; for a 1 × 2 point γ′ = γ with "
        "adjust_lr_fn none/original and 0.2√2·γ ≈ 0.28γ with match_rms_adamw.",
        "On a network torch's Muon takes only the 2-D weights (Linear layers); conv kernels, "
        "biases and norms need another optimizer (the CNN lab pairs it with AdamW).",
    ),
    paper=Paper(
        "Jordan et al., Muon: An optimizer for hidden layers in neural networks (2024); "
        "match_rms_adamw: Liu et al., Muon is Scalable for LLM Training (2025, "
        "arXiv:2502.16982)",
        "https://kellerjordan.github.io/posts/muon/",
    ),
    symbols=(
        *knobs.shared_symbols("lr", "weight_decay"),
        ("momentum", r"\mu"),
        ("ns_steps", "K"),
        ("eps", r"\epsilon"),
    ),
    state=(StateSymbol("momentum_buffer", "B_t", "B_{t-1}", "momentum buffer: average of g"),),
    warn=_warn,
    point_shape=(1, 2),
    on_surface=(
        "Muon takes 2-D parameters only (its constructor refuses others), so on a surface the "
        "point is a 1 × 2 matrix. On one row X Xᵀ is the number ‖X‖², so each Newton–Schulz "
        "iteration multiplies X by a + b‖X‖² + c‖X‖⁴: it never turns the row, it only rescales "
        "it. Muon on a surface is therefore normalised (Nesterov) momentum: every step points "
        f"along −B̃_t and is about {ROW_STEP}γ long whatever the gradient's size (torch's "
        f"bfloat16 gives {ROW_STEP_RANGE[0]:.3f}γ to {ROW_STEP_RANGE[1]:.3f}γ over 5,000 "
        "directions with ‖B̃_t‖ from 1e-4 to 1e4; "
        f"{row_step_length():.3f}γ in exact arithmetic), so it never settles closer to a "
        "minimum than a step of that length unless γ decays (a scheduler). torch computes "
        "the orthogonalisation in bfloat16 even for float64 points, which is why the length "
        "varies slightly from step to step; for tiny momenta it varies more (0.73γ at "
        "‖B̃_t‖ = 1e-6 along an axis, and below ε = 1e-7 the clamped norm no longer "
        "normalises B̃_t)."
    ),
)
