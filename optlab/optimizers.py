"""The plugin API's old address, kept so that plugins written for OptLab 0.1 still load.

Plugins once wrote ``from optlab.optimizers import OptimizerSpec, Paper``; the
specs now live in `optlab.optim` (``from optlab.optim import OptimizerSpec``).
"""

from optlab.optim.spec import OptimizerSpec, Paper, Preset

__all__ = ["OptimizerSpec", "Paper", "Preset"]
