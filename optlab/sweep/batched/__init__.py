"""Batched optimizers: one tensor program steps N configurations of a torch optimizer.

Each class in `BATCHED` updates an ``(N, 2)`` float64 tensor of independent
2-D points with per-row hyperparameters, computing for every row what its
`torch.optim` twin computes (see `optlab.sweep.batched.base`). Adding one is a file
in this package plus one line in `_CLASSES`.
"""

from __future__ import annotations

from optlab.optim.config import OptimizerConfig
from optlab.optim.registry import optimizers
from optlab.sweep.batched.adadelta import BatchedAdadelta
from optlab.sweep.batched.adagrad import BatchedAdagrad
from optlab.sweep.batched.adam import BatchedAdam, BatchedAdamW
from optlab.sweep.batched.adamax import BatchedAdamax
from optlab.sweep.batched.base import BatchedOptimizer
from optlab.sweep.batched.muon import BatchedMuon
from optlab.sweep.batched.nadam import BatchedNAdam
from optlab.sweep.batched.radam import BatchedRAdam
from optlab.sweep.batched.rmsprop import BatchedRMSprop
from optlab.sweep.batched.sgd import BatchedSGD

_CLASSES: tuple[type[BatchedOptimizer], ...] = (
    BatchedSGD,
    BatchedAdam,
    BatchedAdamW,
    BatchedAdamax,
    BatchedNAdam,
    BatchedRAdam,
    BatchedAdagrad,
    BatchedAdadelta,
    BatchedRMSprop,
    BatchedMuon,
)

#: The batched optimizers by the registry key of their torch twin.
BATCHED: dict[str, type[BatchedOptimizer]] = {cls.key: cls for cls in _CLASSES}


def batched_for(key: str) -> type[BatchedOptimizer]:
    """The batched twin of a registry optimizer or preset key.

    Raises:
        ValueError: an unknown key, or an optimizer with no batched twin (the
            message lists the keys that have one).
    """
    resolved = OptimizerConfig.create(key).key
    try:
        return BATCHED[resolved]
    except KeyError:
        known = ", ".join(BATCHED)
        raise ValueError(f"optimizer {key!r} has no batched version (batched: {known})") from None


def sweepable() -> list[str]:
    """The registry keys that have a batched version, in registry order."""
    return list(BATCHED)


#: Why an optimizer has no batched twin, where there is more to say than "not yet".
WHY_NOT_BATCHED: dict[str, str] = {
    "lbfgs": "its step(closure) runs its own line search, evaluating f as often as it "
    "needs: every point would need a closure of its own",
}
#: What an optimizer without a batched twin and without a reason above gets.
NOT_YET = "no batched twin yet"


def not_sweepable() -> dict[str, str]:
    """Every registered optimizer without a batched twin: its label -> why."""
    return {
        spec.label: WHY_NOT_BATCHED.get(spec.key, NOT_YET)
        for spec in optimizers()
        if spec.key not in BATCHED
    }


__all__ = [
    "BATCHED",
    "NOT_YET",
    "WHY_NOT_BATCHED",
    "BatchedOptimizer",
    "batched_for",
    "not_sweepable",
    "sweepable",
]
