"""Optimizers as specs: hyperparameters, the built-in entries, plugins, schedulers, plans.

The plugin API is what this package exports: a plugin module writes
``from optlab.optim import HParam, OptimizerSpec, Paper`` and defines
``OPTLAB_OPTIMIZERS`` (see `optlab.optim.plugins` and ``optlab/examples/lion.py``).
Nothing here imports a product (surfaces, sweeps, training).
"""

from optlab.optim.hparams import HParam, HValue
from optlab.optim.spec import OptimizerSpec, Paper, Preset

__all__ = ["HParam", "HValue", "OptimizerSpec", "Paper", "Preset"]
