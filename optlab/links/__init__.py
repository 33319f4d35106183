"""Share links: every page's settings as URL query parameters, one table per page.

A page's table (`PLAYGROUND`, `CNN`, `SWEEP`) says, for each query key, which
setting it carries, how its text is parsed and written, whether it repeats
(one value per optimizer) and the limits a link may not exceed. The tables
drive both directions, and everything a link carries is then validated by
the same config classes as the CLI and the widgets use, so a value is
accepted or refused the same way wherever it comes from, with the same
message. The pages only write widget keys from what a table decodes.

Reading a link is strict: a value over `MAX_VALUE_LENGTH` characters, a
single-valued key given twice, or more repeated values than the page can
show is refused with a `ValueError` naming the key, before anything is
parsed. Unknown keys are ignored (links pick up tracking parameters).

Query parameters, by page::

    playground  surface=rosenbrock  sp=kappa=100 (repeated)  expr=x**2+y**2
                bounds=-5,5,-5,5  start=-1.5,2  steps=300  noise=0  seed=0
                opt=adam:lr=0.05 (repeated, SPEC as the CLI's --opt)
                plan=cosine|200:lr=0.001 (one per opt, when any optimizer has one)
    CNN lab     page=cnn data=cifar10|synthetic model=seednet opt=... (repeated)
                clr=10 plan=... (one per opt, when any differs) batch=64
                steps=500 | epochs=4  train=4000|all  test=1000|all
                augment=true  clip=1  eval=50  seed=0  device=auto
    sweeps      page=sweep mode=sweep|fair|basins surface=... expr=... start=x,y
                steps=300 noise=0 seed=0, then by mode: opt=SPEC x=AXIS y=AXIS
                metric=final_loss (sweep); opt starts=60 (basins);
                fair=adam (repeated) lr=AXIS (fair), AXIS as NAME=LOW:HIGH:log|lin:N
"""

from __future__ import annotations

from optlab.links.cnn import (
    CLIP_MIN,
    CLR_RANGE,
    CNN,
    DATA_SOURCES,
    TRAIN_KEYS,
    CnnLink,
    train_from_params,
    train_to_params,
)
from optlab.links.playground import (
    KNOWN_KEYS,
    PLAYGROUND,
    config_from_params,
    config_to_params,
)
from optlab.links.sweep import MAX_FAIR, SWEEP, SWEEP_MODES, SweepLink, sweep_choices
from optlab.links.table import (
    MAX_VALUE_LENGTH,
    LinkField,
    LinkTable,
    Params,
    format_bounds,
    format_point,
    link_readers,
    parse_bounds,
    parse_float,
    parse_int,
    parse_point,
    parse_surface_values,
)

__all__ = [
    "CLIP_MIN",
    "CLR_RANGE",
    "CNN",
    "DATA_SOURCES",
    "KNOWN_KEYS",
    "MAX_FAIR",
    "MAX_VALUE_LENGTH",
    "PLAYGROUND",
    "SWEEP",
    "SWEEP_MODES",
    "TRAIN_KEYS",
    "CnnLink",
    "LinkField",
    "LinkTable",
    "Params",
    "SweepLink",
    "config_from_params",
    "config_to_params",
    "format_bounds",
    "format_point",
    "link_readers",
    "parse_bounds",
    "parse_float",
    "parse_int",
    "parse_point",
    "parse_surface_values",
    "sweep_choices",
    "train_from_params",
    "train_to_params",
]
