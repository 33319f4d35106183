"""The plugin API's old address, kept so that plugins written for OptLab 0.1 still load.

Plugins once wrote ``from optlab.hparams import HParam``; it now lives in
`optlab.optim` (``from optlab.optim import HParam``).
"""

from optlab.optim.hparams import HParam, HValue

__all__ = ["HParam", "HValue"]
