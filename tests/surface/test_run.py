"""Tests for optlab.surface.run: the lockstep surface engine.

The oracle is `bench.surface_engine.plain_loop`: each optimizer on its own in the
textbook ``zero_grad(); loss.backward(); step()`` loop of the real `torch.optim` class,
in float64. The engine must reproduce it over a table of variants, alone and beside
other optimizers.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
import time
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import pytest
import torch

from bench.surface_engine import lockstep, plain_loop
from optlab.optim.config import OptimizerConfig
from optlab.optim.plans import Plan
from optlab.surface.problem import MAX_STEPS, Problem
from optlab.surface.run import (
    DIVERGED,
    DIVERGENCE_SPANS,
    DONE,
    MAX_OPTIMIZERS,
    RUNNING,
    StepRecord,
    SurfaceRunConfig,
    run_surface,
)
from optlab.surface.surfaces import get_surface
from tests.support.inputs import SURFACES, OptimizerInput, all_inputs

TOL = 1e-9
STEPS = 150

Paths = list[list[tuple[float, float, float]]]


def opt(key: str, **values: Any) -> OptimizerConfig:
    return OptimizerConfig.create(key, **values)


PROBLEM_FIELDS = {f.name for f in dataclasses.fields(Problem)}


def make_config(optimizers: Any, **fields: Any) -> SurfaceRunConfig:
    """A run from optimizers and flat settings (the problem's fields among them)."""
    problem = {name: fields.pop(name) for name in list(fields) if name in PROBLEM_FIELDS}
    return SurfaceRunConfig(optimizers, Problem(**problem), **fields)


@dataclasses.dataclass(frozen=True)
class Variant:
    """One optimizer input (`tests.support.inputs`) on one problem."""

    name: str
    optimizer: OptimizerConfig
    problem: Problem

    def config(self, steps: int = STEPS) -> SurfaceRunConfig:
        return SurfaceRunConfig((self.optimizer,), replace(self.problem, steps=steps))


def _variant(found: OptimizerInput, where: str) -> Variant:
    return Variant(f"{where}-{found.id}", found.config, SURFACES[where])


#: Every input of every registered optimizer on every surface it is stable on.
TABLE_VARIANTS = [_variant(found, where) for found in all_inputs() for where in found.surfaces]
ROSENBROCK_VARIANTS = [v for v in TABLE_VARIANTS if v.problem.surface == "rosenbrock"]

BEALE = Problem("beale")
HIMMELBLAU = Problem("himmelblau")
STEEP_BOWL = Problem("quadratic", surface_values=(("kappa", 100.0),))
ACKLEY = Problem("ackley")

#: Problems the table's surfaces do not cover: a steep bowl, Beale, Ackley.
OTHER_VARIANTS = [
    Variant("beale_adam", opt("adam", lr=0.05), BEALE),
    Variant("beale_sgd_momentum", opt("sgd_momentum", lr=1e-3), BEALE),
    Variant("himmelblau_lbfgs", opt("lbfgs", line_search_fn="strong_wolfe"), HIMMELBLAU),
    Variant("bowl_sgd", opt("sgd", lr=0.015), STEEP_BOWL),
    Variant("bowl_nesterov", opt("nesterov", lr=0.005), STEEP_BOWL),
    Variant("ackley_adam", opt("adam", lr=0.05), ACKLEY),
]

VARIANTS = TABLE_VARIANTS + OTHER_VARIANTS


def _chunks() -> list[tuple[Problem, tuple[Variant, ...]]]:
    """The variants grouped by problem, in runs of at most MAX_OPTIMIZERS."""
    groups: dict[Problem, list[Variant]] = {}
    for v in VARIANTS:
        groups.setdefault(v.problem, []).append(v)
    out = []
    for problem, members in groups.items():
        for i in range(0, len(members), MAX_OPTIMIZERS):
            out.append((problem, tuple(members[i : i + MAX_OPTIMIZERS])))
    return out


CHUNKS = _chunks()


def _assert_paths_equal(got: Paths, want: Paths, tol: float = TOL) -> None:
    assert len(got) == len(want)
    for index, (a, b) in enumerate(zip(got, want, strict=True)):
        assert len(a) == len(b), f"optimizer {index}: {len(a)} points vs {len(b)}"
        worst = max(
            abs(u - v) for ra, rb in zip(a, b, strict=True) for u, v in zip(ra, rb, strict=True)
        )
        assert worst <= tol, f"optimizer {index}: paths differ by {worst:.3g}"


def _records(cfg: SurfaceRunConfig) -> list[StepRecord]:
    return list(run_surface(cfg))


def _by_index(records: Sequence[StepRecord], index: int) -> list[StepRecord]:
    return [r for r in records if r.index == index]


def _point_value(cfg: SurfaceRunConfig, x: float, y: float) -> tuple[float, float]:
    """f and |grad f| at (x, y), computed on their own, noise-free."""
    p = torch.tensor([x, y], dtype=torch.float64, requires_grad=True)
    loss = cfg.resolved_surface(p)
    (g,) = torch.autograd.grad(loss, p)
    return loss.item(), torch.linalg.vector_norm(g).item()


# --- the engine equals the plain torch.optim loop -----------------------------------


@pytest.mark.parametrize("variant", VARIANTS, ids=[v.name for v in VARIANTS])
def test_engine_equals_plain_loop_alone(variant: Variant) -> None:
    cfg = variant.config()
    records = _records(cfg)
    assert records[-1].status == DONE, f"{variant.name} must be stable for the oracle"
    assert len(records) == STEPS + 1
    _assert_paths_equal(lockstep(cfg), plain_loop(cfg))


@pytest.mark.parametrize(
    ("problem", "members"),
    CHUNKS,
    ids=[f"{p.surface}-{i}" for i, (p, _) in enumerate(CHUNKS)],
)
def test_engine_equals_plain_loop_together(problem: Problem, members: tuple[Variant, ...]) -> None:
    cfg = SurfaceRunConfig(tuple(v.optimizer for v in members), replace(problem, steps=STEPS))
    together = lockstep(cfg)
    _assert_paths_equal(together, plain_loop(cfg))
    # Neighbours do not matter: each path is the one it has when run alone.
    alone = [lockstep(v.config())[0] for v in members]
    _assert_paths_equal(together, alone, tol=0.0)


def test_variants_are_not_all_the_same_path() -> None:
    # Guards the table itself: a hyperparameter that never reached torch would make
    # an optimizer's variants coincide (and the oracle comparison would still pass).
    # Across optimizers paths may coincide: AdamW without decay is Adam.
    finals: dict[str, dict[str, tuple]] = {}
    for v in ROSENBROCK_VARIANTS:
        finals.setdefault(v.optimizer.key, {})[v.name] = lockstep(v.config())[0][-1]
    for key, ends in finals.items():
        assert len(set(ends.values())) == len(ends), key


# --- records -------------------------------------------------------------------------


def _mixed_config(**extra: Any) -> SurfaceRunConfig:
    return make_config(
        (
            opt("sgd", lr=1e-3),
            opt("adam", lr=0.05),
            opt("lbfgs", line_search_fn="strong_wolfe"),
            opt("rprop", lr=0.02),
        ),
        **{"steps": 40, **extra},
    )


def test_step_zero_is_the_start_for_every_optimizer() -> None:
    cfg = _mixed_config(start=(-1.2, 1.7))
    first = [r for r in _records(cfg) if r.step == 0]
    assert [r.index for r in first] == list(range(len(cfg.optimizers)))
    loss, gnorm = _point_value(cfg, -1.2, 1.7)
    for r in first:
        assert (r.x, r.y) == (-1.2, 1.7)
        assert r.evals == 0
        assert r.status == RUNNING
        assert r.loss == pytest.approx(loss, rel=1e-12)
        assert r.grad_norm == pytest.approx(gnorm, rel=1e-12)


def test_default_start_is_the_surface_start() -> None:
    cfg = SurfaceRunConfig((opt("adam"),), problem=Problem(surface="beale", steps=1))
    first = _records(cfg)[0]
    assert (first.x, first.y) == get_surface("beale").start


def test_records_come_step_by_step_in_index_order() -> None:
    cfg = _mixed_config()
    k = len(cfg.optimizers)
    records = _records(cfg)
    assert [(r.step, r.index) for r in records] == [
        (s, i) for s in range(cfg.problem.steps + 1) for i in range(k)
    ]
    assert all(r.status == RUNNING for r in records[:-k])
    assert all(r.status == DONE for r in records[-k:])


def test_records_are_plain_python_numbers() -> None:
    for r in _records(_mixed_config(steps=3)):
        for name in ("x", "y", "loss", "grad_norm", "lr"):
            assert type(getattr(r, name)) is float, name
        assert type(r.step) is int and type(r.index) is int and type(r.evals) is int
    with pytest.raises(dataclasses.FrozenInstanceError):
        r.x = 0.0  # type: ignore[misc]


def test_loss_and_grad_norm_describe_the_point() -> None:
    cfg = _mixed_config()
    for r in _records(cfg):
        loss, gnorm = _point_value(cfg, r.x, r.y)
        assert r.loss == pytest.approx(loss, rel=1e-12, abs=1e-300)
        assert r.grad_norm == pytest.approx(gnorm, rel=1e-12, abs=1e-300)


def test_lr_is_reported() -> None:
    cfg = _mixed_config()
    expected = [o.kwargs["lr"] for o in cfg.optimizers]
    for r in _records(cfg):
        assert r.lr == expected[r.index]


def test_evals_count_steps_for_plain_optimizers() -> None:
    cfg = _mixed_config()
    for r in _records(cfg):
        if not cfg.optimizers[r.index].spec.uses_closure:
            assert r.evals == r.step


def _lbfgs_func_evals(cfg: SurfaceRunConfig) -> list[int]:
    """A plain LBFGS loop: torch's own func_evals after each step(closure) call."""
    (opt_cfg,) = cfg.optimizers
    p = torch.tensor(cfg.problem.start, dtype=torch.float64, requires_grad=True)
    optimizer = opt_cfg.build([p])
    calls = 0

    def closure() -> torch.Tensor:
        nonlocal calls
        calls += 1
        optimizer.zero_grad()
        loss = cfg.resolved_surface(p)
        loss.backward()
        return loss

    evals = [0]
    for _ in range(cfg.problem.steps):
        optimizer.step(closure)
        state_evals = optimizer.state[p]["func_evals"]
        assert state_evals == calls
        evals.append(state_evals)
    return evals


@pytest.mark.parametrize(
    "values",
    [{"line_search_fn": "strong_wolfe"}, {"lr": 0.1, "max_iter": 3}],
    ids=["strong_wolfe", "fixed_step"],
)
def test_lbfgs_evals_are_closure_calls(values: dict) -> None:
    cfg = SurfaceRunConfig((opt("lbfgs", **values),), problem=Problem(steps=25))
    records = _records(cfg)
    assert [r.evals for r in records] == _lbfgs_func_evals(cfg)
    assert records[-1].evals > cfg.problem.steps
    assert all(b >= a + 1 for a, b in itertools.pairwise(r.evals for r in records))


# --- divergence ----------------------------------------------------------------------


def _outside(cfg: SurfaceRunConfig, x: float, y: float, loss: float) -> bool:
    (x0, x1), (y0, y1) = cfg.problem.bounds
    if not all(math.isfinite(v) for v in (x, y, loss)):
        return True
    mx, my = DIVERGENCE_SPANS * (x1 - x0), DIVERGENCE_SPANS * (y1 - y0)
    return not (x0 - mx <= x <= x1 + mx and y0 - my <= y <= y1 + my)


def test_divergence_stops_only_that_optimizer() -> None:
    steady = (opt("adam", lr=0.05), opt("lbfgs", lr=0.1, max_iter=3))
    wild = opt("sgd", lr=1.0)
    cfg = SurfaceRunConfig((steady[0], wild, steady[1]), problem=Problem(steps=60))
    records = _records(cfg)

    wild_records = _by_index(records, 1)
    last = wild_records[-1]
    assert last.status == DIVERGED
    assert all(r.status == RUNNING for r in wild_records[:-1])
    assert [r.step for r in wild_records] == list(range(last.step + 1))
    # It is stopped at the first step the plain loop leaves the region.
    (wild_path,) = plain_loop(cfg.with_optimizers(wild))
    first_out = next(s for s, p in enumerate(wild_path) if _outside(cfg, *p))
    assert last.step == first_out

    # The others go on to the end and are unaffected by the diverged neighbour.
    alone = lockstep(cfg.with_optimizers(*steady))
    for index, path in ((0, alone[0]), (2, alone[1])):
        mine = _by_index(records, index)
        assert mine[-1].status == DONE and mine[-1].step == cfg.problem.steps
        _assert_paths_equal([[(r.x, r.y, r.loss) for r in mine]], [path], tol=0.0)


def test_leaving_the_bounds_by_far_is_divergence() -> None:
    # Descent on x^2 - y^2 runs off to y = -inf without ever overflowing.
    cfg = SurfaceRunConfig(
        (opt("sgd", lr=0.1),), problem=Problem(surface="saddle", start=(0.5, -0.1), steps=500)
    )
    records = _records(cfg)
    last = records[-1]
    assert last.status == DIVERGED
    assert last.step < cfg.problem.steps
    (_, _), (y0, y1) = cfg.problem.bounds
    assert math.isfinite(last.y) and last.y < y0 - DIVERGENCE_SPANS * (y1 - y0)
    before = records[-2]
    assert before.status == RUNNING
    assert before.y >= y0 - DIVERGENCE_SPANS * (y1 - y0)


def test_non_finite_loss_is_divergence() -> None:
    # sqrt(x) is NaN once a step overshoots to x < 0.
    cfg = SurfaceRunConfig(
        (opt("sgd", lr=1.0), opt("sgd", lr=1e-3)),
        problem=Problem(surface="custom", expr="sqrt(x) + y**2", start=(1.0, 1.0), steps=20),
    )
    records = _records(cfg)
    fast = _by_index(records, 0)
    assert fast[-1].status == DIVERGED and fast[-1].step < cfg.problem.steps
    assert not math.isfinite(fast[-1].loss)
    assert _by_index(records, 1)[-1].status == DONE


def test_all_diverged_ends_the_run() -> None:
    cfg = SurfaceRunConfig(
        (opt("sgd", lr=1.0), opt("sgd", lr=2.0)), problem=Problem(steps=MAX_STEPS)
    )
    records = _records(cfg)
    assert sum(r.status == DIVERGED for r in records) == 2
    assert records[-1].status == DIVERGED
    assert max(r.step for r in records) < 10  # the run ended instead of idling on


# --- gradient noise ------------------------------------------------------------------


def _noisy(seed: int, noise: float = 0.5, steps: int = 60) -> SurfaceRunConfig:
    return SurfaceRunConfig(
        (
            opt("sgd", lr=1e-3),
            opt("adam", lr=0.05),
            opt("lbfgs", lr=0.1, max_iter=3),
            opt("rmsprop", lr=1e-3, centered=True),
        ),
        problem=Problem(steps=steps, noise=noise, seed=seed),
    )


def test_same_seed_gives_identical_records() -> None:
    assert _records(_noisy(7)) == _records(_noisy(7))


def test_different_seed_gives_different_records() -> None:
    a, b = _records(_noisy(7)), _records(_noisy(8))
    assert len(a) == len(b)
    for index in range(4):
        pa = [(r.x, r.y) for r in _by_index(a, index)]
        pb = [(r.x, r.y) for r in _by_index(b, index)]
        assert pa[0] == pb[0] and pa[-1] != pb[-1]


def test_noise_changes_the_path() -> None:
    noisy = lockstep(_noisy(7, noise=0.5))
    clean = lockstep(_noisy(7, noise=0.0))
    for a, b in zip(noisy, clean, strict=True):
        assert a[0] == b[0] and a[-1] != b[-1]


@pytest.mark.parametrize("seed", [0, 12345])
def test_noisy_engine_equals_plain_loop(seed: int) -> None:
    cfg = _noisy(seed)
    assert all(r.status != DIVERGED for r in _records(cfg))
    _assert_paths_equal(lockstep(cfg), plain_loop(cfg))


def test_noisy_lbfgs_line_search_equals_plain_loop() -> None:
    cfg = SurfaceRunConfig(
        (opt("lbfgs", line_search_fn="strong_wolfe"), opt("sgd", lr=1e-3)),
        problem=Problem(surface="himmelblau", steps=30, noise=0.3, seed=5),
    )
    assert all(r.status != DIVERGED for r in _records(cfg))
    _assert_paths_equal(lockstep(cfg), plain_loop(cfg))


def test_noisy_result_does_not_depend_on_neighbours() -> None:
    cfg = _noisy(3)
    together = lockstep(cfg)
    for index, o in enumerate(cfg.optimizers):
        _assert_paths_equal([together[index]], lockstep(cfg.with_optimizers(o)), tol=0.0)
    # Two copies of one optimizer in one run see the same noise sequence.
    twins = lockstep(cfg.with_optimizers(cfg.optimizers[0], cfg.optimizers[0]))
    _assert_paths_equal([twins[0]], [twins[1]], tol=0.0)


def test_reported_loss_is_noise_free() -> None:
    cfg = _noisy(11, noise=5.0, steps=20)
    for r in _records(cfg):
        loss, gnorm = _point_value(cfg, r.x, r.y)
        assert r.loss == pytest.approx(loss, rel=1e-12)
        assert r.grad_norm == pytest.approx(gnorm, rel=1e-12)


# --- config validation ---------------------------------------------------------------

NAN = float("nan")
ADAM = (OptimizerConfig("adam"),)

BAD_RUN_CONFIGS: list[tuple[str, dict[str, Any], str]] = [
    ("steps_zero", {"steps": 0}, "steps"),
    ("steps_too_many", {"steps": MAX_STEPS + 1}, "steps"),
    ("steps_float", {"steps": 1.5}, "steps"),
    ("steps_bool", {"steps": True}, "steps"),
    ("too_many_optimizers", {"optimizers": ADAM * (MAX_OPTIMIZERS + 1)}, "optimizers"),
    ("no_optimizers", {"optimizers": ()}, "optimizers"),
    ("optimizer_not_a_config", {"optimizers": ("adam",)}, "optimizers"),
    ("negative_noise", {"noise": -1.0}, "noise"),
    ("nan_noise", {"noise": NAN}, "noise"),
    ("text_noise", {"noise": "1"}, "noise"),
    ("negative_seed", {"seed": -1}, "seed"),
    ("start_text", {"start": "a"}, "start"),
    ("start_nan", {"start": (NAN, 0.0)}, "start"),
    ("start_far", {"start": (1e9, 0.0)}, "start"),
    ("start_three", {"start": (1.0, 2.0, 3.0)}, "start"),
    ("unknown_surface", {"surface": "nope"}, "surface"),
    ("custom_without_expr", {"surface": "custom"}, "expr"),
    ("expr_on_registered", {"surface": "rosenbrock", "expr": "x"}, "expr"),
    ("bad_kappa", {"surface": "quadratic", "surface_values": (("kappa", 0.5),)}, "kappa"),
    ("bad_bounds", {"bounds": ((1.0, 0.0), (0.0, 1.0))}, "bounds"),
    ("formula_not_finite", {"surface": "custom", "expr": "log(-(x**2)-1)"}, "formula"),
]

BAD_FORMULA_CONFIGS = [
    pytest.param({"surface": "custom", "expr": "os.system('x')"}, id="attribute"),
    pytest.param({"surface": "custom", "expr": "z * x"}, id="unknown_name"),
]


@pytest.mark.parametrize(
    ("changes", "fragment"),
    [(c, f) for _, c, f in BAD_RUN_CONFIGS],
    ids=[name for name, _, _ in BAD_RUN_CONFIGS],
)
def test_bad_run_config_names_the_field(changes: dict[str, Any], fragment: str) -> None:
    kwargs = {"optimizers": ADAM, **changes}
    with pytest.raises(ValueError) as info:
        make_config(**kwargs)
    assert fragment in str(info.value)


@pytest.mark.parametrize("changes", BAD_FORMULA_CONFIGS)
def test_rejected_formula_names_the_field(changes: dict[str, Any]) -> None:
    with pytest.raises(ValueError) as info:
        make_config(ADAM, **changes)
    message = str(info.value).lower()
    assert "expr" in message or "formula" in message, message


@pytest.mark.parametrize("changes", BAD_FORMULA_CONFIGS)
def test_rejected_formula_is_a_value_error(changes: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        make_config(ADAM, **changes)


def test_limits_are_inclusive() -> None:
    SurfaceRunConfig(ADAM, problem=Problem(steps=1))
    SurfaceRunConfig(ADAM * MAX_OPTIMIZERS, problem=Problem(steps=MAX_STEPS))


# --- configs as cache keys -----------------------------------------------------------


def _full_config() -> SurfaceRunConfig:
    return SurfaceRunConfig(
        (opt("adam", lr=0.05), opt("nesterov")),
        problem=Problem(
            surface="quadratic",
            surface_values=(("kappa", 100),),
            start=(1, -1),
            steps=50,
            noise=0.25,
            seed=3,
        ),
    )


def test_configs_are_hashable_and_equal_configs_hash_equal() -> None:
    a = _full_config()
    b = SurfaceRunConfig(
        (opt("adam", lr=0.05), opt("sgd", momentum=0.9, nesterov=True)),
        problem=Problem(
            surface="quadratic",
            surface_values=(("kappa", 100.0),),
            bounds=((-2.0, 2.0), (-2.0, 2.0)),
            start=(1.0, -1.0),
            steps=50,
            noise=0.25,
            seed=3,
        ),
    )
    assert a == b and hash(a) == hash(b)
    assert {a: "cached"}[b] == "cached"
    for change in ({"seed": 4}, {"steps": 51}, {"surface_values": (("kappa", 10.0),)}):
        assert a != dataclasses.replace(a, problem=dataclasses.replace(a.problem, **change))


def test_implicit_defaults_equal_explicit() -> None:
    surface = get_surface("rosenbrock")
    implicit = SurfaceRunConfig(ADAM)
    explicit = SurfaceRunConfig(
        ADAM, problem=Problem(surface="rosenbrock", start=surface.start, bounds=surface.bounds)
    )
    assert implicit == explicit and hash(implicit) == hash(explicit)
    bowl = SurfaceRunConfig(ADAM, problem=Problem(surface="quadratic"))
    assert bowl == SurfaceRunConfig(
        ADAM, problem=Problem(surface="quadratic", surface_values=(("kappa", 10.0),))
    )


def test_custom_formula_configs_compare_by_formula() -> None:
    a = SurfaceRunConfig(ADAM, problem=Problem(surface="custom", expr="x**2 + y**2"))
    b = SurfaceRunConfig(ADAM, problem=Problem(surface="custom", expr="x**2 + y**2"))
    c = SurfaceRunConfig(ADAM, problem=Problem(surface="custom", expr="x**2 + 2*y**2"))
    assert a == b and hash(a) == hash(b)
    assert a != c


def test_with_optimizers_keeps_everything_else() -> None:
    cfg = _full_config()
    other = (opt("rmsprop", lr=0.01),)
    changed = cfg.with_optimizers(*other)
    assert changed.optimizers == other
    for f in dataclasses.fields(SurfaceRunConfig):
        if f.compare and f.name != "optimizers":
            assert getattr(changed, f.name) == getattr(cfg, f.name), f.name
    assert changed.resolved_surface == cfg.resolved_surface
    assert changed == SurfaceRunConfig(
        other,
        problem=Problem(
            surface="quadratic",
            surface_values=(("kappa", 100.0),),
            start=(1.0, -1.0),
            steps=50,
            noise=0.25,
            seed=3,
        ),
    )
    custom = SurfaceRunConfig(
        ADAM, problem=Problem(surface="custom", expr="x**2 - y", bounds=((-1.0, 1.0), (0.0, 3.0)))
    )
    moved = custom.with_optimizers(*other)
    assert (moved.problem.expr, moved.problem.bounds, moved.problem.start) == (
        custom.problem.expr,
        custom.problem.bounds,
        custom.problem.start,
    )
    with pytest.raises(ValueError, match="optimizers"):
        cfg.with_optimizers()


def test_asdict_is_json_serialisable() -> None:
    json.dumps(dataclasses.asdict(_full_config()))


# --- the consumer sets the pace -------------------------------------------------------


def test_consumer_can_stop_early() -> None:
    cfg = SurfaceRunConfig(
        (opt("adam", lr=0.01), opt("lbfgs", line_search_fn="strong_wolfe")),
        problem=Problem(steps=MAX_STEPS),
    )
    start = time.perf_counter()
    gen = run_surface(cfg)
    first = list(itertools.islice(gen, 10))
    gen.close()
    assert time.perf_counter() - start < 1.0
    assert [(r.step, r.index) for r in first] == [(s, i) for s in range(5) for i in range(2)]


def test_run_is_lazy() -> None:
    cfg = SurfaceRunConfig(
        (opt("lbfgs", line_search_fn="strong_wolfe"),), problem=Problem(steps=MAX_STEPS)
    )
    start = time.perf_counter()
    gen = run_surface(cfg)
    assert next(gen).step == 0
    assert time.perf_counter() - start < 1.0
    gen.close()


def test_evaluation_budget_caps_lbfgs_work() -> None:
    heavy = OptimizerConfig.create("lbfgs", max_iter=200)
    with pytest.raises(ValueError, match=r"steps: L-BFGS .* may evaluate f up to 1,000,000 times"):
        SurfaceRunConfig((heavy,), problem=Problem(steps=5000))
    # The same optimizer within the budget, and plain optimizers at the step cap, are fine.
    SurfaceRunConfig((heavy,), problem=Problem(steps=800))
    SurfaceRunConfig((OptimizerConfig("adam"),), problem=Problem(steps=5000))


def test_optimizers_given_as_a_list_become_a_hashable_tuple() -> None:
    cfg = SurfaceRunConfig([OptimizerConfig("adam")], problem=Problem(steps=3))  # type: ignore[arg-type]
    assert isinstance(cfg.optimizers, tuple) and hash(cfg)


def test_huge_integer_hyperparameter_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="history_size value: a 400-digit number is far too large"):
        OptimizerConfig.create("lbfgs", history_size=int("9" * 400))


@pytest.mark.parametrize(
    ("key", "values", "read"),
    [
        ("sgd", {"lr": 0.001, "momentum": 0.9}, lambda g: g["momentum"]),
        ("adam", {"lr": 0.01}, lambda g: g["betas"][0]),
    ],
)
def test_momentum_is_recorded_as_torchs_one_cycle_moves_it(
    key: str, values: dict[str, Any], read: Any
) -> None:
    """Records carry the momentum factor (β₁ for Adam) that torch's own OneCycleLR sets,
    step by step (it cycles momentum by default, ``cycle_momentum=True``)."""
    steps = 40
    cfg = make_config(
        (opt(key, **values),),
        surface="quadratic",
        steps=steps,
        plans=(Plan.from_text("onecycle"),),
    )
    recorded = [r.momentum for r in _records(cfg)]
    param = torch.zeros(2, dtype=torch.float64, requires_grad=True)
    optimizer = cfg.optimizers[0].spec.build([param], cfg.optimizers[0].kwargs)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=values["lr"] * 10, total_steps=steps
    )
    expected = []
    for _ in range(steps + 1):
        expected.append(read(optimizer.param_groups[0]))
        param.grad = torch.ones(2, dtype=torch.float64)
        optimizer.step()
        if len(expected) <= steps:
            scheduler.step()
    assert recorded == pytest.approx(expected, rel=1e-15)
    assert len(set(recorded)) > 10  # it really cycles


def test_momentum_is_none_for_an_optimizer_without_one() -> None:
    records = _records(make_config((opt("adagrad"), opt("sgd")), steps=3))
    assert {r.momentum for r in records if r.index == 0} == {None}
    assert {r.momentum for r in records if r.index == 1} == {0.0}
