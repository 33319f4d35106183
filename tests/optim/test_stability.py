"""The SGD stability threshold from param-group values (recorded or live)."""

from __future__ import annotations

import pytest
import torch

from optlab.optim.stability import sgd_threshold_formula, sgd_threshold_of
from optlab.train.sharpness import sgd_threshold


@pytest.mark.parametrize(
    ("group", "expected"),
    [
        ({"lr": 0.095}, 2 / 0.095),
        ({"lr": 0.11, "momentum": 0.0}, 2 / 0.11),
        ({"lr": 0.01, "momentum": 0.9}, 3.8 / 0.01),
        ({"lr": 0.01, "momentum": 0.9, "dampening": 0.5}, 3.8 / 0.005),
        ({"lr": 0.01, "momentum": 0.9, "nesterov": True}, 3.8 / (2.8 * 0.01)),
        ({"lr": 0.1, "maximize": True}, None),
        ({"lr": 0.0}, None),
        ({"lr": 0.1, "momentum": 0.5, "dampening": 1.0}, None),
    ],
)
def test_the_threshold_of_a_param_groups_values(group, expected) -> None:
    assert sgd_threshold_of(group) == (None if expected is None else pytest.approx(expected))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"lr": 0.05},
        {"lr": 0.05, "momentum": 0.8},
        {"lr": 0.05, "momentum": 0.8, "dampening": 0.3},
        {"lr": 0.05, "momentum": 0.8, "nesterov": True},
    ],
)
def test_a_live_sgd_gets_the_same_threshold_as_its_param_group(kwargs) -> None:
    optimizer = torch.optim.SGD([torch.zeros(2)], **kwargs)
    assert sgd_threshold(optimizer) == sgd_threshold_of(optimizer.param_groups[0])


@pytest.mark.parametrize(
    ("group", "formula"),
    [
        ({"lr": 0.1}, "2/η"),
        ({"lr": 0.1, "momentum": 0.9}, "(2+2μ)/η"),
        ({"lr": 0.1, "momentum": 0.9, "dampening": 0.5}, "(2+2μ)/((1−τ)η)"),
        ({"lr": 0.1, "momentum": 0.9, "nesterov": True}, "(2+2μ)/((1+2μ)η)"),
        ({"lr": 0.1, "maximize": True}, None),
    ],
)
def test_the_formula_names_the_branch_the_threshold_took(group, formula) -> None:
    assert sgd_threshold_formula(group) == formula
