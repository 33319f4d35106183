"""The Studies page's share link: a study round-trips, a bad link is refused clearly."""

from __future__ import annotations

import pytest

from optlab.links.study import MAX_SPACES, study_from_params, study_to_params
from optlab.study.config import StudyConfig
from optlab.study.space import Dimension
from tests.support.training import tiny_train_config

STUDY = StudyConfig(
    tiny_train_config("sgd:momentum=0.9", "adam", augment=True, clip_grad_norm=2.0),
    (
        Dimension("lr", 1.234567e-4, 0.3, "log"),
        Dimension("momentum", 0.8, 0.99, "lin", "sgd"),
        Dimension("weight_decay", 1e-5, 1e-2, "log"),
    ),
    trials=16,
    seeds=3,
    seed=7,
)


def as_lists(params):
    return {k: v if isinstance(v, list) else [v] for k, v in params.items()}


@pytest.mark.parametrize("grid", [False, True])
def test_a_study_round_trips_through_its_link(grid):
    cfg = STUDY if not grid else StudyConfig(STUDY.base, STUDY.dims[:2], trials=9, grid=True)
    params = study_to_params(cfg, "synthetic")
    assert params["page"] == "studies" and params["opt"] == ["sgd:momentum=0.9", "adam"]
    back, data = study_from_params(as_lists(params))
    assert back == cfg and data == "synthetic"
    # Numbers are written so they read back exactly.
    assert back.dims[0].low == 1.234567e-4


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"space": []}, "space: the link names no search space"),
        ({"space": ["lr=1e-3:1:log"] * (MAX_SPACES + 1)}, f"space: at most {MAX_SPACES}"),
        ({"space": ["lr=1:1e-3:log"]}, "is inverted"),
        ({"space": ["lr=1e-3:1:log", "momentum=0.1:0.9:lin"]}, "Adam has no hyperparameter"),
        ({"trials": ["many"]}, "trials: expected a whole number"),
        ({"trials": ["1", "2"]}, "trials: given 2 times"),
        ({"seeds": ["0"]}, "--seeds: expected a whole number in"),
        ({"grid": ["maybe"]}, "grid: true or false"),
        ({"opt": []}, "names no optimizer"),
        ({"space": ["x" * 2000]}, "space: too long"),
    ],
)
def test_bad_study_links_are_refused_clearly(change, fragment):
    params = {**as_lists(study_to_params(STUDY, "synthetic")), **change}
    with pytest.raises(ValueError) as err:
        study_from_params(params)
    assert fragment in str(err.value)
