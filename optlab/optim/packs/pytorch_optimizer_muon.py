"""The ``pytorch_optimizer`` pack's Muon variants: the library's Muon and NorMuon.

Both take param groups flagged ``use_muon``; `MuonSplit` and `NorMuonSplit`
are thin subclasses that build those groups from plain parameters or OptLab's
param groups (`muon_groups`), so every engine can build them like any optimizer.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable, Mapping
from typing import Any

import pytorch_optimizer as po

from optlab.optim.hparams import HParam
from optlab.optim.packs import po_knobs as knobs
from optlab.optim.spec import OptimizerSpec, Paper, StateSymbol


def _muon_knobs(lr: float = 0.02) -> tuple[HParam, ...]:
    return (
        knobs.lr(lr),
        knobs.unit("momentum", 0.95, "momentum μ of the Muon part"),
        knobs.decay(help="weight decay λ of the Muon part"),
        knobs.flag("nesterov", True, "Nesterov momentum: orthogonalise (1 − μ)g + μb"),
        knobs.count("ns_steps", 5, 1, 20, "Newton-Schulz iterations", "the work of one step"),
        knobs.flag(
            "use_adjusted_lr",
            False,
            "Moonlight's 0.2√max(rows, cols) scale (off: √max(1, rows/cols))",
        ),
        knobs.positive("adamw_lr", 3e-4, "learning rate of the AdamW part (vectors)"),
        HParam(
            "adamw_betas",
            (0.9, 0.95),
            0.0,
            1.0,
            high_open=True,
            help="(β₁, β₂) of the AdamW part",
            origin=knobs.CHECK,
        ),
        HParam(
            "adamw_wd", 0.0, 0.0, None, help="weight decay of the AdamW part", origin=knobs.CHECK
        ),
    )


def muon_groups(params: Iterable[Any]) -> list[dict[str, Any]]:
    """The library's Muon groups for plain parameters or OptLab's param groups.

    Its recipe: matrices and kernels (``ndim ≥ 2``) to Muon (``use_muon``),
    vectors (biases) to AdamW. When no parameter is a matrix (the 2-D
    playground's point) the vectors go to Muon, which treats an n-vector as an
    n × 1 matrix: otherwise "Muon" there would be AdamW alone. A group's own
    ``lr`` is kept for its Muon part only; its AdamW part is named
    ``"<name> (AdamW)"``, uses ``adamw_lr`` and comes after every Muon part.
    """
    items = list(params)
    groups = items if items and isinstance(items[0], Mapping) else [{"params": items}]
    has_matrix = any(p.ndim >= 2 for g in groups for p in g["params"])
    muon_parts: list[dict[str, Any]] = []
    adamw_parts: list[dict[str, Any]] = []
    for group in groups:
        members = list(group["params"])
        rest = {k: v for k, v in group.items() if k != "params"}
        muon = [p for p in members if p.ndim >= 2 or not has_matrix]
        adamw = [p for p in members if not (p.ndim >= 2 or not has_matrix)]
        if muon:
            muon_parts.append({**rest, "params": muon, "use_muon": True})
        if adamw:
            other = {k: v for k, v in rest.items() if k != "lr"}
            if "name" in other:
                other["name"] = f"{other['name']} (AdamW)"
            adamw_parts.append({**other, "params": adamw, "use_muon": False})
    # The Muon parts first: group i of the caller stays group i (the CNN lab's
    # charts label the first groups features and classifier).
    return muon_parts + adamw_parts


class MuonSplit(po.Muon):
    """pytorch-optimizer's Muon over plain parameters, split by `muon_groups`."""

    def __init__(self, params: Iterable[Any], **kwargs: Any) -> None:
        super().__init__(muon_groups(params), **kwargs)


class NorMuonSplit(po.NorMuon):
    """pytorch-optimizer's NorMuon over plain parameters, split by `muon_groups`."""

    def __init__(self, params: Iterable[Any], **kwargs: Any) -> None:
        super().__init__(muon_groups(params), **kwargs)


# Their signatures are the library's: the checks and the UI read the arguments from it.
MuonSplit.__signature__ = inspect.signature(po.Muon)  # type: ignore[attr-defined]
NorMuonSplit.__signature__ = inspect.signature(po.NorMuon)  # type: ignore[attr-defined]


_MUON_NOTES = (
    "Not torch.optim.Muon (key muon): the library's own, which takes vectors too. OptLab "
    "gives it the library's recipe: weights with ≥ 2 dimensions (conv kernels flattened to "
    "out × in·k·k) to Muon, biases to its AdamW part (adamw_lr, adamw_betas, adamw_wd). On "
    "the 2-D point, a vector, there is no matrix, so the point is Muon's as a 2 × 1 matrix: "
    "Newton-Schulz then only normalises the momentum, and the step is scaled by √2.",
    "Newton-Schulz runs in bfloat16, as in Keller Jordan's recipe.",
    knobs.LEFT_OUT + " Nor ns_coeffs and ns_method (the library's defaults).",
)

MUON = OptimizerSpec(
    key="po_muon",
    label="Muon (pytorch-optimizer)",
    factory=MuonSplit,
    hparams=_muon_knobs(),
    rule=r"""
\begin{aligned}
b_t &= \mu b_{t-1} + (1-\mu) g_t,\quad
  u_t = \begin{cases} (1-\mu) g_t + \mu b_t & \text{nesterov} \\
  b_t & \text{otherwise}\end{cases} \\
O_t &= \operatorname{NewtonSchulz}_5(u_t) \approx U V^\top \ (u_t = U\Sigma V^\top) \\
\theta_t &= \theta_{t-1}(1-\gamma\lambda) - \gamma \sqrt{\max(1, \text{rows}/\text{cols})}\; O_t
\end{aligned}""",
    notes=_MUON_NOTES,
    paper=Paper(
        "Jordan et al., Muon: An optimizer for hidden layers in neural networks (2024)",
        "https://kellerjordan.github.io/posts/muon/",
    ),
    symbols=(("lr", r"\gamma"), ("weight_decay", r"\lambda"), ("momentum", r"\mu")),
    state=(StateSymbol("momentum_buffer", "b_t", "b_{t-1}", "momentum buffer"),),
)

NORMUON = OptimizerSpec(
    key="po_normuon",
    label="NorMuon (pytorch-optimizer)",
    factory=NorMuonSplit,
    hparams=(
        *_muon_knobs(),
        knobs.unit("beta2", 0.95, "β₂: decay of the per-row second moment of O"),
        HParam(
            "eps", 1e-10, 0.0, None, log=True, help="ε in the row normalisation", origin=knobs.CHECK
        ),
    ),
    rule=r"""
\begin{aligned}
&O_t = \operatorname{NewtonSchulz}_5(u_t) \text{ as in Muon (rows of the matrix)} \\
&v_t = \beta_2 v_{t-1} + (1-\beta_2)\, \operatorname{mean}_{\text{row}}(O_t^2),\quad
  \hat O_t = \frac{O_t}{\sqrt{v_t} + \epsilon}\cdot
  \frac{\lVert O_t\rVert}{\lVert O_t/(\sqrt{v_t}+\epsilon)\rVert + \epsilon} \\
&\theta_t = \theta_{t-1}(1-\gamma\lambda) - \gamma\sqrt{\max(1, \text{rows}/\text{cols})}\;\hat O_t
\end{aligned}""",
    notes=(
        "Muon with a per-neuron (row) second moment, the library's default update_scale "
        "(preserve_norm) keeping the orthogonalised update's norm.",
        *_MUON_NOTES,
    ),
    paper=knobs.paper(
        "Li et al., NorMuon: Making Muon more efficient and scalable (2025)", "2510.05491"
    ),
    symbols=(("lr", r"\gamma"), ("weight_decay", r"\lambda"), ("momentum", r"\mu")),
    state=(StateSymbol("momentum_buffer", "b_t", "b_{t-1}", "momentum buffer"),),
)
