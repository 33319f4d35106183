"""The Studies page's share link: the CNN lab's training settings plus the search.

::

    studies     page=studies, the CNN lab's keys (data model opt batch steps|epochs
                train test augment clip eval seed device) for the trials' setup,
                space=[KEY:]NAME=LOW:HIGH:log|lin (repeated) trials=8 seeds=2
                grid=true
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from optlab.links.cnn import train_from_params, train_to_params
from optlab.links.table import MAX_VALUE_LENGTH, Params, parse_bool, parse_int
from optlab.study.config import StudyConfig
from optlab.study.space import Dimension

#: The study's own keys (besides the CNN lab's); at most this many ``space`` values.
STUDY_KEYS = ("space", "trials", "seeds", "grid")
MAX_SPACES = 8


def study_to_params(cfg: StudyConfig, data: str) -> Params:
    """The query parameters of ``cfg`` on ``data`` (``cifar10`` or ``synthetic``)."""
    params = train_to_params(cfg.base, data)
    params["page"] = "studies"
    params["space"] = [d.to_text() for d in cfg.dims]
    params["trials"] = str(cfg.trials)
    params["seeds"] = str(cfg.seeds)
    if cfg.grid:
        params["grid"] = "true"
    return params


def _one(params: Mapping[str, Sequence[str]], key: str) -> str | None:
    values = list(params.get(key, ()))
    if len(values) > 1:
        raise ValueError(f"{key}: given {len(values)} times")
    if values and len(values[0]) > MAX_VALUE_LENGTH:
        raise ValueError(f"{key}: too long ({len(values[0])} characters)")
    return values[0] if values else None


def study_from_params(params: Mapping[str, Sequence[str]]) -> tuple[StudyConfig, str]:
    """A study (and its data choice) from a share link, validated like any study.

    Raises:
        ValueError: naming the first bad parameter.
    """
    base, data = train_from_params({k: v for k, v in params.items() if k not in STUDY_KEYS})
    spaces = list(params.get("space", ()))
    if not spaces:
        raise ValueError("space: the link names no search space")
    if len(spaces) > MAX_SPACES:
        raise ValueError(f"space: at most {MAX_SPACES}, the link has {len(spaces)}")
    if any(len(s) > MAX_VALUE_LENGTH for s in spaces):
        raise ValueError("space: too long")
    dims = tuple(Dimension.from_text(s) for s in spaces)
    trials, seeds, grid = (_one(params, k) for k in ("trials", "seeds", "grid"))
    cfg = StudyConfig(
        base,
        dims,
        trials=parse_int(trials, "trials") if trials is not None else 8,
        seeds=parse_int(seeds, "seeds") if seeds is not None else 1,
        seed=base.seed,
        grid=parse_bool(grid, "grid") if grid is not None else False,
    )
    return cfg, data
