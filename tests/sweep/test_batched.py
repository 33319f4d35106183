"""Tests for optlab.sweep.batched: N configurations of a torch optimizer as one tensor program.

Every test that concerns "each batched optimizer" enumerates `BATCHED`, and the
trajectories come from the optimizer-input table (`tests.support.inputs`), so a new batched
optimizer is
tested with no new test code. The reference is always a plain single-tensor
`torch.optim` run of one row's configuration.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Mapping, Sequence

import pytest
import torch
from torch import Tensor

from optlab.optim import registry
from optlab.optim.config import OptimizerConfig
from optlab.optim.registry import get_spec
from optlab.surface.surfaces import Surface, get_surface
from optlab.sweep.batched import (
    BATCHED,
    NOT_YET,
    BatchedOptimizer,
    batched_for,
    not_sweepable,
    sweepable,
)
from optlab.sweep.batched.sgd import BatchedSGD
from tests.support.inputs import inputs

KEYS = list(BATCHED)
STEPS = 300
TOLERANCE = 1e-9
# A curved valley, a four-minimum polynomial and a quartic with a tilt, all cheap to
# differentiate. The table's inputs say where they stay finite (maximize climbs).
SURFACES = ("rosenbrock", "himmelblau", "styblinski_tang")

Values = dict[str, object]


def rows_on(key: str, surface: str) -> list[Values]:
    """The table's inputs of ``key`` that stay finite on ``surface``, as keyword values."""
    return [dict(found.values) for found in inputs(key) if surface in found.surfaces + found.finite]


def _stack(cls: type[BatchedOptimizer], rows: Sequence[Mapping[str, object]]) -> Values:
    """Per-row tensors for every knob any row sets; the others stay torch's defaults.
    A choice knob (one value for every row) is passed as that value."""
    defaults = cls.spec.defaults
    out: Values = {}
    for name in sorted({name for row in rows for name in row}):
        column = [row.get(name, defaults[name]) for row in rows]
        kind = cls.spec.hparam(name).kind
        if kind == "choice":
            (out[name],) = set(column)
            continue
        dtype = torch.bool if kind == "bool" else torch.float64
        out[name] = torch.tensor(column, dtype=dtype)
    return out


def _by_choices(cls: type[BatchedOptimizer], rows: list[Values]) -> list[list[Values]]:
    """``rows`` in batches that share their choice knobs' values (which cannot vary
    per row)."""
    choices = [hp.name for hp in cls.spec.hparams if hp.kind == "choice"]
    defaults = cls.spec.defaults
    batches: dict[tuple, list[Values]] = {}
    for row in rows:
        batches.setdefault(tuple(row.get(n, defaults[n]) for n in choices), []).append(row)
    return list(batches.values())


def _gradient(surface: Surface, points: Tensor) -> Tensor:
    """Every row's gradient from one backward pass (the rows are independent)."""
    leaf = points.detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(surface(leaf).sum(), leaf)
    return grad


def _batched_path(
    cls: type[BatchedOptimizer], values: Mapping[str, object], surface: Surface, n: int, steps: int
) -> Tensor:
    """``(steps + 1, n, 2)``: every row's trajectory from the surface's start."""
    points = torch.tensor([surface.start] * n, dtype=torch.float64)
    opt = cls(points, values)
    path = [points.clone()]
    for _ in range(steps):
        opt.step(_gradient(surface, points))
        path.append(points.clone())
    assert opt.t == steps
    return torch.stack(path)


def _torch_path(key: str, values: Mapping[str, object], surface: Surface, steps: int) -> Tensor:
    """``(steps + 1, 2)``: a plain single-tensor torch.optim run of one configuration."""
    cfg = OptimizerConfig.create(key, **values)  # type: ignore[arg-type]
    start = torch.tensor(surface.start, dtype=torch.float64)
    param = cfg.spec.as_param(start).requires_grad_(True)  # Muon: a 1 × 2 matrix
    kwargs = cfg.kwargs
    if "foreach" in inspect.signature(cfg.spec.factory).parameters:
        kwargs["foreach"] = False
    opt = cfg.spec.factory([param], **kwargs)
    path = [param.detach().view(2).clone()]
    for _ in range(steps):
        opt.zero_grad()
        surface(param).sum().backward()
        opt.step()
        path.append(param.detach().view(2).clone())
    return torch.stack(path)


def _max_diff(a: Tensor, b: Tensor) -> float:
    return float((a - b).abs().max())


@pytest.mark.parametrize("surface_key", SURFACES)
@pytest.mark.parametrize("key", KEYS)
def test_every_variant_matches_torch(key: str, surface_key: str) -> None:
    """All inputs as rows of one batch; each row's path equals torch's to 1e-9."""
    cls = BATCHED[key]
    surface = get_surface(surface_key)
    for rows in _by_choices(cls, rows_on(key, surface_key)):
        batched = _batched_path(cls, _stack(cls, rows), surface, len(rows), STEPS)
        assert bool(torch.isfinite(batched).all()), f"{key} on {surface_key} left finite range"
        for i, row in enumerate(rows):
            expected = _torch_path(key, row, surface, STEPS)
            diff = _max_diff(batched[:, i], expected)
            assert diff <= TOLERANCE, f"{key} row {i} {row} on {surface_key}: off by {diff:.3g}"
            assert _max_diff(expected[-1], expected[0]) > 1e-6, f"{key} row {i} {row} never moved"


@pytest.mark.parametrize("key", KEYS)
def test_variants_cover_every_registry_knob(key: str) -> None:
    """Each knob the registry exposes is set away from its default by some row."""
    defaults = BATCHED[key].spec.defaults
    rows = [row for surface in SURFACES for row in rows_on(key, surface)]
    for name, default in defaults.items():
        changed = [v for v in rows if name in v and v[name] != default]
        assert changed, f"no {key} row varies {name}"


@pytest.mark.parametrize("key", KEYS)
def test_scalar_values_equal_per_row_tensors(key: str) -> None:
    """Python scalars for every row give the same result as the same values as tensors."""
    cls = BATCHED[key]
    surface = get_surface("himmelblau")
    variant = rows_on(key, "himmelblau")[-1]
    n = 3
    as_tensors = _stack(cls, [variant] * n)
    scalar = _batched_path(cls, variant, surface, n, 20)
    tensor = _batched_path(cls, as_tensors, surface, n, 20)
    assert torch.equal(scalar, tensor)


@pytest.mark.parametrize(
    ("key", "grid"),
    [
        ("sgd", {"lr": (1e-4, 5e-4, 1e-3), "momentum": (0.0, 0.5, 0.9)}),
        ("rmsprop", {"lr": (1e-3, 1e-2), "momentum": (0.0, 0.9)}),
        ("adam", {"lr": (1e-3, 3e-2), "betas": ((0.9, 0.999), (0.0, 0.5))}),
    ],
)
def test_a_grid_of_hyperparameters_equals_separate_runs(
    key: str, grid: dict[str, tuple[object, ...]]
) -> None:
    """A (lr, momentum) grid in one batch: each cell is its own torch run."""
    (name_a, values_a), (name_b, values_b) = grid.items()
    cells = [{name_a: a, name_b: b} for a in values_a for b in values_b]
    cls = batched_for(key)
    surface = get_surface("rosenbrock")
    batched = _batched_path(cls, _stack(cls, cells), surface, len(cells), 100)
    for i, cell in enumerate(cells):
        expected = _torch_path(key, cell, surface, 100)
        assert _max_diff(batched[:, i], expected) <= TOLERANCE, cell
    moved = batched[-1] - batched[0]
    assert len({tuple(r) for r in moved.tolist()}) == len(cells), "cells should differ"


def test_momentum_zero_rows_take_torch_plain_path() -> None:
    """Rows with momentum 0 next to rows with momentum (nesterov too) match torch."""
    cells = [
        {"momentum": 0.0, "dampening": 0.5},
        {"momentum": 0.9, "nesterov": True},
        {"momentum": 0.0, "weight_decay": 0.1},
        {"momentum": 0.5, "dampening": 0.5},
    ]
    surface = get_surface("himmelblau")
    batched = _batched_path(BatchedSGD, _stack(BatchedSGD, cells), surface, len(cells), 50)
    for i, cell in enumerate(cells):
        assert _max_diff(batched[:, i], _torch_path("sgd", cell, surface, 50)) <= TOLERANCE


@pytest.mark.parametrize("key", KEYS)
def test_frozen_rows_stay_put_and_bad_rows_stay_alone(key: str) -> None:
    """Inactive rows keep point and state exactly; a NaN row leaves the others alone."""
    cls = BATCHED[key]
    surface = get_surface("rosenbrock")
    n = 4
    values = rows_on(key, "rosenbrock")[1]
    points = torch.tensor([surface.start] * n, dtype=torch.float64)
    opt = cls(points, values)
    alone = torch.tensor([surface.start], dtype=torch.float64)
    solo = cls(alone, values)
    frozen_at = None
    for step in range(30):
        grad = _gradient(surface, points)
        if step >= 5:
            grad[0] = math.nan  # row 0 goes non-finite and stays active
            grad[3, 1] = math.inf
        if step == 10:
            opt.active[2] = False
            frozen_at = (points[2].clone(), {k: v[2].clone() for k, v in opt.state.items()})
        opt.step(grad)
        solo.step(_gradient(surface, alone))
        assert torch.equal(points[1], alone[0]), f"row 1 differs at step {step}"
    assert frozen_at is not None
    frozen_point, frozen_state = frozen_at
    assert torch.equal(points[2], frozen_point)
    for name, row in frozen_state.items():
        assert torch.equal(opt.state[name][2], row), name
    assert not bool(torch.isfinite(points[0]).all())
    assert not torch.equal(points[1], torch.tensor(surface.start, dtype=torch.float64))


def test_validation_messages_name_the_knob() -> None:
    points = torch.zeros(3, 2, dtype=torch.float64)
    with pytest.raises(ValueError, match=r"Invalid lr value: -0.1 \(must be in .*row 1"):
        BatchedSGD(points, {"lr": torch.tensor([0.1, -0.1, 0.2], dtype=torch.float64)})
    with pytest.raises(ValueError, match=r"Invalid lr value: nan.*row 2"):
        BatchedSGD(points, {"lr": torch.tensor([0.1, 0.1, math.nan], dtype=torch.float64)})
    with pytest.raises(
        ValueError, match=r"Invalid momentum value: -1 \(must be in \[0, inf\); torch's own check\)"
    ):
        BatchedSGD(points, {"momentum": -1.0})
    betas = torch.tensor([[0.9, 0.999], [0.9, 1.0], [0.5, 0.5]], dtype=torch.float64)
    adam = batched_for("adam")
    with pytest.raises(ValueError, match=r"Invalid betas value: 1 .*row 1"):
        adam(points, {"betas": betas})
    with pytest.raises(
        ValueError, match=r"Invalid betas value: 1 \(betas\[1\] must be in \[0, 1\)"
    ):
        adam(points, {"betas": (0.9, 1.0)})
    with pytest.raises(ValueError, match=r"Adam has no hyperparameter 'beta1' \(known: lr, "):
        adam(points, {"beta1": 0.9})
    with pytest.raises(ValueError, match="AdamW has no hyperparameter 'decoupled_weight_decay'"):
        batched_for("adamw")(points, {"decoupled_weight_decay": False})
    with pytest.raises(ValueError, match=r"shape \(2,\)"):
        BatchedSGD(points, {"lr": torch.tensor([0.1, 0.2], dtype=torch.float64)})
    with pytest.raises(ValueError, match="expected bool"):
        BatchedSGD(points, {"maximize": torch.tensor([0.0, 1.0, 0.0], dtype=torch.float64)})
    with pytest.raises(ValueError, match="expected true or false"):
        BatchedSGD(points, {"maximize": 1})
    with pytest.raises(ValueError, match=r"SGD: Nesterov momentum requires .* \(row 2\)"):
        BatchedSGD(
            points,
            {"nesterov": True, "momentum": torch.tensor([0.9, 0.5, 0.0], dtype=torch.float64)},
        )
    with pytest.raises(ValueError, match="points"):
        BatchedSGD(torch.zeros(3, 2), {})
    with pytest.raises(ValueError, match="grad"):
        BatchedSGD(points, {}).step(torch.zeros(2, 2, dtype=torch.float64))


def test_batched_for_resolves_presets_and_rejects_the_rest() -> None:
    assert batched_for("nesterov") is BatchedSGD
    assert batched_for("sgd_momentum") is BatchedSGD
    assert batched_for("adamw").key == "adamw"
    with pytest.raises(ValueError, match=r"'lbfgs' has no batched version \(batched: sgd, adam"):
        batched_for("lbfgs")
    with pytest.raises(ValueError, match="unknown optimizer 'nope'"):
        batched_for("nope")


def test_registry_twins_and_documentation() -> None:
    keys = [spec.key for spec in registry.optimizers()]
    assert sweepable() == KEYS
    assert [k for k in keys if k in BATCHED] == KEYS
    for key, cls in BATCHED.items():
        assert cls.key == key
        assert cls.spec is get_spec(key)
        assert cls.rule == get_spec(key).rule
        points = torch.zeros(2, 2, dtype=torch.float64)
        opt = cls(points, {})
        assert opt.spec is get_spec(key) and opt.rule == cls.rule
        assert f"``{key}`` rule" in (cls.__doc__ or ""), f"{cls.__name__} should cite the rule"


def test_optimizers_without_a_twin_are_listed_with_why() -> None:
    missing = not_sweepable()
    assert set(missing) == {s.label for s in registry.optimizers() if s.key not in BATCHED}
    assert "closure" in missing["L-BFGS"] and missing["Rprop"] == NOT_YET
    with pytest.raises(ValueError, match="'lbfgs' has no batched version"):
        batched_for("lbfgs")


def test_muon_rows_are_one_row_matrices_in_bfloat16_like_torch() -> None:
    """A choice knob is one value for every row; Muon's batched Newton–Schulz runs in
    bfloat16, and one step of a row equals torch's on a (1, 2) matrix bit for bit."""
    points = torch.tensor([[1.0, -2.0], [3e-3, 4e-3], [0.0, 0.0]], dtype=torch.float64)
    grad = torch.tensor([[0.5, 2.0], [-1e-4, 3e-4], [0.0, 0.0]], dtype=torch.float64)
    opt = BATCHED["muon"](points, {"lr": 0.1, "adjust_lr_fn": "match_rms_adamw"})
    assert opt.choices == {"adjust_lr_fn": "match_rms_adamw"}
    before = points.clone()
    opt.step(grad)
    for row in range(3):
        theta = before[row].view(1, 2).clone().requires_grad_(True)
        torch_opt = torch.optim.Muon([theta], lr=0.1, adjust_lr_fn="match_rms_adamw")
        theta.grad = grad[row].view(1, 2).clone()
        torch_opt.step()
        assert torch.equal(points[row], theta.detach()[0])
    with pytest.raises(ValueError, match="adjust_lr_fn is a choice and cannot vary per row"):
        BATCHED["muon"](points, {"adjust_lr_fn": torch.zeros(3)})
    steps = torch.tensor([5.0, 99.0, 100.0])
    with pytest.raises(ValueError, match=r"ns_steps value: 100.*OptLab's limit.* in row 2"):
        BATCHED["muon"](points, {"ns_steps": steps})
