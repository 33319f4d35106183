"""Search spaces: parsing, validation against each optimizer, and the points tried."""

from __future__ import annotations

import math

import numpy as np
import pytest

from optlab.optim.config import OptimizerConfig
from optlab.study.space import Dimension, check_dimensions, grid_side, study_points, unit_of

SGD = OptimizerConfig.from_text("sgd:momentum=0.9")
ADAM = OptimizerConfig.from_text("adam")
LR = Dimension("lr", 1e-4, 1.0, "log")


def test_a_dimension_reads_its_text_and_writes_it_back():
    dim = Dimension.from_text("sgd:momentum=0.8:0.99:lin")
    assert dim == Dimension("momentum", 0.8, 0.99, "lin", "sgd")
    assert Dimension.from_text(dim.to_text()) == dim
    assert Dimension.from_text("beta1=0.8:0.95:lin").name == "betas.0"
    assert Dimension.from_text(" LR = 1e-4 : 1 : LOG ") == LR


def test_values_follow_the_scale_with_both_ends_included():
    assert LR.value(0) == pytest.approx(1e-4) and LR.value(1) == pytest.approx(1.0)
    assert LR.value(0.5) == pytest.approx(1e-2)
    assert LR.grid(5) == pytest.approx([1e-4, 1e-3, 1e-2, 1e-1, 1.0])
    lin = Dimension("momentum", 0.5, 0.9, "lin")
    assert lin.grid(3) == pytest.approx([0.5, 0.7, 0.9])
    assert unit_of(lin, 0.7) == pytest.approx(0.5) and unit_of(LR, 1e-3) == pytest.approx(0.25)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("lr=1e-4:1", "expected [KEY:]NAME=LOW:HIGH:log|lin"),
        ("lr:1e-4:1:log", "expected [KEY:]NAME=LOW:HIGH:log|lin"),
        ("lr=a:1:log", "LOW and HIGH must be numbers"),
        ("lr=1:1:log", "is empty"),
        ("lr=1:1e-4:log", "is inverted"),
        ("weight_decay=0:0.1:log", "a log range must stay above 0"),
        ("weight_decay=-1e-3:0.1:log", "a log range must stay above 0"),
        ("lr=1e-4:1:lin", "lr is searched on a log scale"),
        ("lr=1e-4:1:cubic", "the scale must be log or lin"),
        ("lr=1e-4:inf:log", "finite numbers"),
    ],
)
def test_bad_dimensions_are_refused_in_one_line(text, fragment):
    with pytest.raises(ValueError, match=None) as err:
        Dimension.from_text(text)
    assert fragment in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize(
    ("dims", "fragment"),
    [
        ((Dimension("momentum", 0.5, 0.9, "lin"),), "needs an lr range"),
        ((LR, Dimension("momentum", 0.5, 0.9, "lin")), "Adam has no hyperparameter momentum"),
        ((LR, Dimension("momentum", 0.5, 0.9, "lin", "rmsprop")), "no --opt is a rmsprop"),
        ((LR, Dimension("lr", 1e-3, 1.0, "log")), "searched twice"),
        ((LR, Dimension("betas.0", 0.5, 1.5, "lin", "adam")), "at 1.5"),
    ],
)
def test_dimensions_an_optimizer_cannot_take_are_refused(dims, fragment):
    with pytest.raises(ValueError) as err:
        check_dimensions([SGD, ADAM], dims)
    assert fragment in str(err.value)


def test_optimizers_sharing_a_dimension_get_the_same_points():
    dims = (
        LR,
        Dimension("momentum", 0.8, 0.99, "lin", "sgd"),
        Dimension("weight_decay", 1e-5, 1e-2),
    )
    sgd, adam = study_points([SGD, ADAM], dims, 16, seed=7)
    assert [p["lr"] for p in sgd] == [p["lr"] for p in adam]
    assert [p["weight_decay"] for p in sgd] == [p["weight_decay"] for p in adam]
    assert all("momentum" not in p for p in adam) and all(0.8 <= p["momentum"] <= 0.99 for p in sgd)
    # Seeded: the same seed gives the same points, another seed others.
    assert study_points([SGD, ADAM], dims, 16, seed=7) == [sgd, adam]
    assert study_points([SGD, ADAM], dims, 16, seed=8)[0] != sgd
    # Quasi-random: 16 Sobol points put exactly one lr in each sixteenth of the range.
    cells = sorted(math.floor(unit_of(LR, p["lr"]) * 16) for p in sgd)
    assert cells == list(range(16))


def test_a_grid_crosses_each_dimension_s_values():
    dims = (LR, Dimension("momentum", 0.5, 0.9, "lin", "sgd"))
    sgd, adam = study_points([SGD, ADAM], dims, 4, seed=0, grid=True)
    got = sorted(v for p in sgd for v in (p["lr"], p["momentum"]))
    want = sorted(v for lr in (1e-4, 1.0) for m in (0.5, 0.9) for v in (lr, m))
    assert got == pytest.approx(want)
    assert len({(p["lr"], p["momentum"]) for p in sgd}) == 4
    assert [p["lr"] for p in adam] == pytest.approx(list(np.geomspace(1e-4, 1.0, 4)))
    assert grid_side(27, 3) == 3
    with pytest.raises(
        ValueError, match=r"--grid: 8 trials is no grid over 2 dimensions \(try 4 or 9\)"
    ):
        grid_side(8, 2)
