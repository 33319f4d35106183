"""L-BFGS as a spec: the one built-in optimizer whose step() takes a closure.

Its evaluation count per step is torch's loop, read from
``torch/optim/lbfgs.py`` and checked against real closure calls by a test:

- Without a line search, each of at most ``max_iter`` iterations but the last
  evaluates f once more, so a step evaluates f at most ``max_iter`` times,
  and stops once ``max_eval`` is reached (checked after each iteration, so
  never below 2 once an iteration ran).
- With ``strong_wolfe``, the line search may use every evaluation left
  (``max_ls = max_eval - current_evals``) plus its first trial point, and the
  count is checked only after it: a step may evaluate f ``max_eval + 1``
  times, one more than torch's default ``max_eval = max_iter * 5 // 4``.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from optlab.caps import CAPS
from optlab.optim import knobs
from optlab.optim.hparams import TORCH_CHECK, Caution, HParam, HValue, Limit
from optlab.optim.spec import OptimizerSpec, Paper, StateSymbol

#: The most iterations, evaluations and kept pairs one step may ask for on a shared
#: server (`optlab.caps`, each with its ``OPTLAB_CAP_LBFGS_*`` override).
MAX_ITER_CAP, MAX_EVAL_CAP, HISTORY_CAP = (
    CAPS.lbfgs_max_iter,
    CAPS.lbfgs_max_eval,
    CAPS.lbfgs_history,
)
_WORK = "to bound the work of one step"


def default_max_eval(max_iter: int) -> int:
    """torch's ``max_eval`` when it is left as None."""
    return max_iter * 5 // 4


def evals_per_step(values: Mapping[str, HValue]) -> int:
    """The most closure calls one ``LBFGS.step(closure)`` makes with ``values``."""
    max_iter = int(values["max_iter"])  # type: ignore[arg-type]
    given = values.get("max_eval")
    max_eval = default_max_eval(max_iter) if given is None else int(given)  # type: ignore[arg-type]
    if max_iter <= 0:
        return 1  # the first evaluation only: the loop never runs
    if values.get("line_search_fn") == "strong_wolfe":
        return max(max_eval, 1) + 1
    return min(max_iter, max(max_eval, 2))


def _tolerance(name: str, default: float, help: str) -> HParam:
    return HParam(
        name,
        default,
        None,
        None,
        log=True,
        help=help,
        origin=TORCH_CHECK,
        cautions=(
            Caution(f"{name} < 0: this test never stops the inner loop", high=0.0, high_open=True),
        ),
    )


LBFGS = OptimizerSpec(
    key="lbfgs",
    label="L-BFGS",
    factory=torch.optim.LBFGS,
    hparams=(
        knobs.lr(1.0),
        HParam(
            "max_iter",
            20,
            None,
            None,
            integer=True,
            help="inner iterations per step(closure) call",
            origin=TORCH_CHECK,
            limit=Limit(_WORK, high=MAX_ITER_CAP),
            cautions=(Caution("max_iter ≤ 0: step() evaluates f once and never moves", high=0),),
        ),
        HParam(
            "max_eval",
            None,
            None,
            None,
            integer=True,
            help="most f evaluations per step(closure) (empty: torch's max_iter·5//4)",
            optional=True,
            origin=TORCH_CHECK,
            limit=Limit(_WORK, high=MAX_EVAL_CAP),
            cautions=(
                Caution(
                    "max_eval ≤ 1: torch checks the count after each iteration, so a step() "
                    "still evaluates f twice",
                    high=1,
                ),
            ),
        ),
        _tolerance("tolerance_grad", 1e-7, "stop the inner loop when max |g| falls below this"),
        _tolerance(
            "tolerance_change",
            1e-9,
            "stop the inner loop when the step or loss change falls below this",
        ),
        HParam(
            "history_size",
            100,
            None,
            None,
            integer=True,
            help="curvature pairs kept (m)",
            origin=TORCH_CHECK,
            limit=Limit(
                "torch's step() fails with 0 and keeps every pair when it is negative; "
                f"{HISTORY_CAP} bounds the memory of one run",
                low=1,
                high=HISTORY_CAP,
                server_cap=False,
            ),
        ),
        HParam(
            "line_search_fn",
            None,
            choices=(None, "strong_wolfe"),
            help="none: fixed step γ; strong_wolfe: a line search for the step length",
            origin="torch's step() supports only these",
        ),
    ),
    rule=r"""
\begin{aligned}
&\text{repeat up to } \text{max\_iter} \text{ times inside one step(closure):} \\
&\quad d_k = -H_k\, g_k \quad \text{(two-loop recursion over the last } m \text{ pairs:} \\
&\qquad s_i = \theta_{i+1}-\theta_i,\ y_i = g_{i+1}-g_i,\ \rho_i = 1/(y_i^\top s_i)) \\
&\quad H_0 = \frac{s^\top y}{y^\top y}\, I \\
&\quad \alpha_k = \begin{cases} \min(1, 1/\lVert g\rVert_1)\,\gamma
 & \text{the optimizer's very first iteration} \\ \gamma & \text{afterwards} \end{cases} \\
&\quad \theta_{k+1} = \theta_k + \alpha_k d_k \\
&\qquad (\alpha_k \text{ from a strong-Wolfe search if line\_search\_fn}) \\
&\text{stop early when } \max|g| \le \text{tolerance\_grad}
 \text{ or the change } \le \text{tolerance\_change}, \\
&\quad \text{or after } \text{max\_eval} \text{ evaluations}
\end{aligned}""",
    notes=(
        "One OptLab step is one optimizer.step(closure) call, which runs up to max_iter "
        "quasi-Newton iterations: compare it with other optimizers by function "
        "evaluations, not steps.",
        "Without a line search a step evaluates f at most max_iter times. With "
        "strong_wolfe it may evaluate f max_eval + 1 times: the line search may use every "
        "evaluation left plus its first trial, and torch checks the count only after it "
        "(max_eval defaults to max_iter·5//4, so 26 evaluations at max_iter = 20).",
        "The very first iteration uses the step min(1, 1/‖g‖₁)·γ (the line search's first "
        "guess when there is one).",
        "Pairs with sᵀy ≤ 1e-10 are skipped, which keeps H positive definite on "
        "non-convex surfaces. torch names the lists old_dirs (the y_i) and old_stps (the s_i).",
    ),
    paper=Paper(
        "Liu & Nocedal, On the limited memory BFGS method for large scale optimization (1989)",
        "https://doi.org/10.1007/BF01589116",
    ),
    uses_closure=True,
    evals_per_step=evals_per_step,
    symbols=(
        ("lr", r"\gamma"),
        ("max_iter", r"\text{max\_iter}"),
        ("max_eval", r"\text{max\_eval}"),
        ("tolerance_grad", r"\text{tolerance\_grad}"),
        ("tolerance_change", r"\text{tolerance\_change}"),
        ("history_size", "m"),
    ),
    state=(
        StateSymbol("func_evals", "", "", "f evaluations so far, all steps"),
        StateSymbol("n_iter", "", "", "inner iterations so far, all steps"),
        StateSymbol("d", "d_k", "", "the last search direction"),
        StateSymbol("t", r"\alpha_k", "", "the last step length"),
        StateSymbol("old_dirs", "y_i", "", "gradient changes kept (torch's name: old_dirs)"),
        StateSymbol("old_stps", "s_i", "", "steps kept (torch's name: old_stps)"),
        StateSymbol("ro", r"\rho_i", "", "1/(yᵀs) of each kept pair"),
        StateSymbol("al", "", "", "the two-loop recursion's coefficients"),
        StateSymbol(
            "H_diag", r"\frac{s^\top y}{y^\top y}", "", "scale of H_0, from the newest pair"
        ),
        StateSymbol("prev_flat_grad", "g_k", "", "g where the last iteration started"),
        StateSymbol("prev_loss", "", "", "f where the last iteration started"),
    ),
)
