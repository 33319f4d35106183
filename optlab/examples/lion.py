"""Lion, written from scratch: the worked example of an OptLab optimizer plugin.

Read this file top to bottom to write your own optimizer. It has two parts:

1. `Lion`, a `torch.optim.Optimizer` subclass. Nothing in it knows about
   OptLab: it is a plain PyTorch optimizer that works in any training loop.
2. `LION_SPEC` and `OPTLAB_OPTIMIZERS`: what OptLab needs to offer it in every
   page and the CLI (its tunable arguments, its update rule in LaTeX, caveats
   and the paper).

Try it by pointing ``OPTLAB_PLUGINS`` at this folder::

    OPTLAB_PLUGINS=$PWD/optlab/examples make run
    OPTLAB_PLUGINS=$PWD/optlab/examples python -m optlab surface --opt lion:lr=0.01

Lion ("EvoLved Sign Momentum") was found by a program search over update
rules: Chen et al., Symbolic Discovery of Optimization Algorithms (2023),
arXiv:2302.06675. With gradient g_t, momentum m (m_0 = 0), learning rate γ
(the paper's η) and decoupled weight decay λ, one step of the paper's
Algorithm 2 is::

    c_t = β1 m_{t-1} + (1 - β1) g_t              # the step's direction
    θ_t = θ_{t-1} - γ (sign(c_t) + λ θ_{t-1})    # a sign step plus decay
    m_t = β2 m_{t-1} + (1 - β2) g_t              # then update the momentum
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch

# A plugin describes itself with the same classes as the built-in optimizers
# in optlab/optim/builtin.py: the plugin API is what optlab.optim exports.
from optlab.optim import HParam, OptimizerSpec, Paper


class Lion(torch.optim.Optimizer):
    """Lion (Chen et al. 2023): the sign of an interpolated momentum, with decoupled decay.

    Args:
        params: The tensors to optimise, or a list of param-group dicts
            (``{"params": [...], "lr": ...}``) to give groups their own values.
        lr: Learning rate γ: every coordinate moves by exactly γ per step
            (plus the decay).
        betas: (β₁, β₂): β₁ mixes the current gradient into the step's
            direction; β₂ is the slower decay of the momentum that is kept.
        weight_decay: Decoupled decay λ: θ shrinks by the factor (1 − γλ)
            each step.
        maximize: Ascend the objective instead of descending it.
    """

    # --- 1. The constructor: check the values, then hand them to the base class.
    #
    # Every hyperparameter is a keyword argument with a default; OptLab's
    # HParams below must use the same names and defaults (a test checks).
    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-4,
        betas: tuple[float, float] = (0.9, 0.99),
        weight_decay: float = 0.0,
        maximize: bool = False,
    ) -> None:
        # Reject bad values now, with torch's wording, not as a NaN three
        # hundred steps later. OptLab also shows these messages to the user
        # when its own range checks let a combination through. (`not x >= 0`
        # rather than `x < 0`: NaN fails every comparison, so it is rejected too.)
        if not lr >= 0.0:
            raise ValueError(f"Invalid learning rate: {lr}")
        if not 0.0 <= betas[0] < 1.0:
            raise ValueError(f"Invalid beta parameter at index 0: {betas[0]}")
        if not 0.0 <= betas[1] < 1.0:
            raise ValueError(f"Invalid beta parameter at index 1: {betas[1]}")
        if not weight_decay >= 0.0:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        # `defaults` holds every hyperparameter by name. The base class splits
        # `params` into `self.param_groups`, a list of dicts: one per group,
        # each with its "params" list plus every key of `defaults` that the
        # group did not set itself. `step` therefore reads the values from the
        # group, never from `self`, so that groups can differ (and so that a
        # learning-rate scheduler, which edits group["lr"], works).
        defaults = dict(lr=lr, betas=betas, weight_decay=weight_decay, maximize=maximize)
        super().__init__(params, defaults)

    # --- 2. Loading an older state_dict.
    #
    # `load_state_dict` restores the param groups as they were saved. If a
    # later version of the class adds a hyperparameter, old checkpoints lack
    # it; torch's optimizers fill such keys in here, and so does this one.
    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        for group in self.param_groups:
            group.setdefault("maximize", False)

    # --- 3. The step.
    #
    # `@torch.no_grad()`: the update itself must not be recorded by autograd
    # (the parameters are leaves that require grad, and in-place changes to
    # them under autograd would raise). `closure` is optional: a function that
    # zeroes the gradients, recomputes the loss, calls backward() and returns
    # the loss. Optimizers that evaluate the function several times per step
    # (LBFGS) need it; for the others it is a convenience, and `step` returns
    # its loss.
    @torch.no_grad()
    def step(self, closure: Callable[[], torch.Tensor] | None = None) -> torch.Tensor | None:
        """Performs one optimisation step; returns the closure's loss, if given."""
        loss = None
        if closure is not None:
            # The closure calls backward(), so it needs autograd back on.
            with torch.enable_grad():
                loss = closure()

        for group in self.param_groups:
            lr = group["lr"]
            beta1, beta2 = group["betas"]
            weight_decay = group["weight_decay"]
            for p in group["params"]:
                # A parameter that took no part in the loss has no gradient:
                # leave it (and its state) alone.
                if p.grad is None:
                    continue
                if p.grad.is_sparse:
                    raise RuntimeError("Lion does not support sparse gradients")
                # Maximising f is minimising -f.
                grad = -p.grad if group["maximize"] else p.grad

                # `self.state` maps each parameter to a dict of its own
                # buffers. It starts empty, so buffers are created lazily on
                # the first step, with the parameter's shape, dtype and device.
                # Keep tensors (and plain numbers) only: `state_dict()` saves
                # this dict and `load_state_dict()` restores it onto the
                # matching parameters, which is the whole round trip.
                state = self.state[p]
                if len(state) == 0:
                    state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                exp_avg = state["exp_avg"]

                # Decoupled weight decay, first: θ ← θ (1 − γλ). Together with
                # the sign step below this is θ − γ (sign(c) + λθ), using θ_{t-1}.
                if weight_decay != 0:
                    p.mul_(1 - lr * weight_decay)

                # c_t = β1 m_{t-1} + (1 − β1) g_t, a new tensor: m itself is
                # updated with a different β below.
                direction = exp_avg.mul(beta1).add_(grad, alpha=1 - beta1)
                # θ_t = θ − γ sign(c_t). Update in place: the parameter tensor
                # must stay the same object (the optimizer, the model and
                # OptLab's plots all hold references to it).
                p.add_(direction.sign_(), alpha=-lr)

                # m_t = β2 m_{t-1} + (1 − β2) g_t, after the step.
                exp_avg.mul_(beta2).add_(grad, alpha=1 - beta2)

        return loss


# --- 4. What OptLab needs to know: one OptimizerSpec.
#
# Each HParam is one constructor argument: the same name and default as the
# signature above, the range the pages' widgets and the CLI accept, whether it
# spans decades (log), and one line of help. Values outside the range are
# rejected with "Invalid <name> value: ..." before the optimizer is built.
LION_SPEC = OptimizerSpec(
    # The key names it in the CLI (--opt lion:lr=3e-4), share links and tests:
    # a lowercase identifier that no built-in optimizer or preset uses.
    key="lion",
    label="Lion",
    factory=Lion,
    hparams=(
        HParam(
            "lr",
            1e-4,
            0.0,
            1000.0,
            log=True,
            low_open=True,
            help="learning rate γ: the size of every coordinate's step",
        ),
        HParam(
            "betas",
            (0.9, 0.99),
            0.0,
            1.0,
            high_open=True,
            help="(β₁, β₂): β₁ mixes g into the step's direction, β₂ decays the momentum",
        ),
        HParam(
            "weight_decay",
            0.0,
            0.0,
            100.0,
            help="decoupled decay λ: θ shrinks by γλ each step",
        ),
        HParam("maximize", False, help="ascend the objective instead of descending it"),
    ),
    # The rule as this class computes it, in the registry's notation: γ the
    # learning rate, g_t the gradient at θ_{t-1} (negated when maximize), λ the
    # weight decay, every operation elementwise. The pages render it with KaTeX.
    rule=r"""
\begin{aligned}
c_t &= \beta_1 m_{t-1} + (1-\beta_1)\, g_t \\
\theta_{t-1} &\leftarrow \theta_{t-1}\,(1 - \gamma\lambda) \\
\theta_t &= \theta_{t-1} - \gamma\, \operatorname{sign}(c_t) \\
m_t &= \beta_2 m_{t-1} + (1-\beta_2)\, g_t \qquad (m_0 = 0)
\end{aligned}""",
    notes=(
        "Every coordinate moves by exactly γ per step (sign(c) is ±1), whatever the "
        "gradient's size, so Lion wants a learning rate 3-10x smaller than AdamW's, and a "
        "weight decay 3-10x larger to keep the decay γλ the same.",
        "Two betas with two roles: the step's direction c_t uses β₁ = 0.9, the momentum "
        "kept for later uses β₂ = 0.99 and is updated after the step; the first step is "
        "sign(g₁).",
        "The decay is decoupled and uses θ_{t-1}, as in the paper's Algorithm 2. A "
        "coordinate whose c_t is exactly 0 does not move (sign(0) = 0).",
        "Not part of torch.optim: an OptLab plugin (optlab/examples/lion.py), loaded "
        "through OPTLAB_PLUGINS.",
    ),
    paper=Paper(
        "Chen et al., Symbolic Discovery of Optimization Algorithms (2023)",
        "https://arxiv.org/abs/2302.06675",
    ),
)

# --- 5. Registration: the one name OptLab looks for in a plugin module.
#
# A tuple, so one module can offer several optimizers. Each is checked when the
# server starts (see optlab/plugins.py) and skipped, with a one-line reason in
# the log, if it does not build and step.
OPTLAB_OPTIMIZERS = (LION_SPEC,)
