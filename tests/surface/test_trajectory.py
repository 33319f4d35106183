"""Tests for optlab.surface.trajectory: records gathered into paths, and what is measured."""

from __future__ import annotations

import copy
import dataclasses
import itertools
import math

import numpy as np
import pytest

from optlab.optim.config import OptimizerConfig
from optlab.surface.problem import Problem
from optlab.surface.run import DIVERGED, DONE, RUNNING, SurfaceRunConfig, run_surface
from optlab.surface.surfaces import CUSTOM, formula_surface, get_surface
from optlab.surface.trajectory import REACH_TOL, Trajectory, TrajectoryCollector, collect, summarize

STEPS = 40
ADAM = OptimizerConfig.create("adam", lr=0.05)
SGD_BLOWS_UP = OptimizerConfig.create("sgd", lr=1.0)
LBFGS = OptimizerConfig.create("lbfgs", line_search_fn="strong_wolfe")
CFG = SurfaceRunConfig((ADAM, SGD_BLOWS_UP, LBFGS), problem=Problem(steps=STEPS))


def path(loss: tuple[float, ...], status: str = DONE, **columns: tuple) -> Trajectory:
    """A hand-made trajectory with the given losses."""
    n = len(loss)
    base = {
        "step": tuple(range(n)),
        "x": tuple(float(i) for i in range(n)),
        "y": tuple(-float(i) for i in range(n)),
        "grad_norm": (1.0,) * n,
        "lr": (0.1,) * n,
        "evals": tuple(range(n)),
    }
    return Trajectory(ADAM, loss=loss, status=status, **{**base, **columns})


@pytest.fixture(scope="module")
def records() -> list:
    return list(run_surface(CFG))


# --- Collector -------------------------------------------------------------------------


def test_snapshot_equals_collect(records: list) -> None:
    collector = TrajectoryCollector(CFG.optimizers)
    for record in records:
        collector.add(record)
    assert collector.snapshot() == collect(CFG)


def test_snapshot_columns_are_the_records(records: list) -> None:
    trajectories = TrajectoryCollector(CFG.optimizers).extend(records).snapshot()
    for i, tr in enumerate(trajectories):
        mine = [r for r in records if r.index == i]
        assert tr.optimizer == CFG.optimizers[i]
        assert tr.step == tuple(r.step for r in mine)
        assert tr.x == tuple(r.x for r in mine)
        assert tr.y == tuple(r.y for r in mine)
        assert tr.loss == tuple(r.loss for r in mine)
        assert tr.grad_norm == tuple(r.grad_norm for r in mine)
        assert tr.lr == tuple(r.lr for r in mine)
        assert tr.evals == tuple(r.evals for r in mine)
        assert tr.status == mine[-1].status


def test_extend_returns_the_collector(records: list) -> None:
    collector = TrajectoryCollector(CFG.optimizers)
    assert collector.extend(records[:3]) is collector


def test_a_diverged_path_is_shorter_and_the_others_go_on(records: list) -> None:
    adam, sgd, lbfgs = collect(CFG)
    assert sgd.status == DIVERGED
    assert len(sgd.step) == sgd.diverged_at + 1 < STEPS + 1
    assert adam.status == lbfgs.status == DONE
    assert len(adam.step) == len(lbfgs.step) == STEPS + 1
    assert adam.diverged_at is None


def test_mid_run_snapshot_is_frozen_and_unaffected_later(records: list) -> None:
    collector = TrajectoryCollector(CFG.optimizers)
    half = len(records) // 2
    collector.extend(records[:half])
    early = collector.snapshot()
    frozen = copy.deepcopy(early)
    collector.extend(records[half:])
    late = collector.snapshot()
    assert early == frozen, "later records leaked into an earlier snapshot"
    assert late == collect(CFG)
    assert all(len(a.step) <= len(b.step) for a, b in zip(early, late, strict=True))
    assert early[0].status == RUNNING and late[0].status == DONE
    tr = early[0]
    for name in ("step", "x", "y", "loss", "grad_norm", "lr", "evals"):
        assert isinstance(getattr(tr, name), tuple), name
    with pytest.raises(dataclasses.FrozenInstanceError):
        tr.x = ()  # type: ignore[misc]
    assert hash(tr) == hash(dataclasses.replace(tr))


def test_snapshots_at_every_record_are_prefixes(records: list) -> None:
    collector = TrajectoryCollector(CFG.optimizers)
    final = collect(CFG)
    for n, record in enumerate(records[: 3 * 12], start=1):
        collector.add(record)
        snap = collector.snapshot()
        assert sum(len(tr.step) for tr in snap) == n
        for tr, whole in zip(snap, final, strict=True):
            k = len(tr.step)
            assert tr.x == whole.x[:k] and tr.loss == whole.loss[:k]


def test_steps_done(records: list) -> None:
    collector = TrajectoryCollector(CFG.optimizers)
    assert collector.steps_done == 0
    assert [tr.step for tr in collector.snapshot()] == [(), (), ()]
    collector.extend(r for r in records if r.step <= 7)
    assert collector.steps_done == 7
    collector.extend(r for r in records if r.step > 7)
    assert collector.steps_done == STEPS


# --- Measures --------------------------------------------------------------------------


def test_steps_to_reach_is_the_first_step_within_tol() -> None:
    tr = path((10.0, 1.0, 0.0015, 0.0009, 0.0001, 0.5))
    assert tr.steps_to_reach(0.0) == 3
    assert tr.steps_to_reach(0.0, tol=0.002) == 2
    assert tr.steps_to_reach(0.0, tol=1e-6) is None
    assert tr.steps_to_reach(None) is None
    assert REACH_TOL == 1e-3


def test_steps_to_reach_counts_steps_not_positions() -> None:
    tr = path((5.0, 0.5, 0.0), step=(0, 10, 20))
    assert tr.steps_to_reach(0.0) == 20


def test_steps_to_reach_with_a_negative_minimum() -> None:
    f_min = get_surface("styblinski_tang").f_min
    tr = path((0.0, f_min + 0.5, f_min + 5e-4, f_min - 1e-5))
    assert tr.steps_to_reach(f_min) == 2
    assert path((0.0, f_min - 1e-5)).steps_to_reach(f_min) == 1, "below f* counts as reached"


def test_steps_to_reach_ignores_nan() -> None:
    assert path((1.0, math.nan, math.nan)).steps_to_reach(0.0) is None
    assert path((1.0, math.nan, 0.0)).steps_to_reach(0.0) == 2


def test_best_loss_ignores_non_finite_values() -> None:
    assert path((5.0, math.inf, 2.0, math.nan, 3.0)).best_loss == 2.0
    assert path((5.0, -math.inf, 4.0)).best_loss == 4.0
    assert math.isnan(path((math.nan, math.inf)).best_loss)
    assert path((7.5,)).best_loss == 7.5


def test_diverged_at_is_the_last_step() -> None:
    assert path((1.0, 2.0, math.inf), status=DIVERGED).diverged_at == 2
    assert path((1.0, 2.0), status=DONE).diverged_at is None
    assert path((1.0, 2.0), status=RUNNING).diverged_at is None


def test_distance_to_the_nearest_minimum() -> None:
    himmelblau = get_surface("himmelblau")
    second = himmelblau.minima[1]  # (-2.805118..., 3.131312...) to full precision
    points = [(3.0, 2.0), (0.0, 0.0), (second.x, second.y), (3.6, -1.8), (math.nan, 0.0)]
    tr = path((1.0,) * 5, x=tuple(p[0] for p in points), y=tuple(p[1] for p in points))
    got = tr.distance_to_minimum(himmelblau)
    want = [min(math.hypot(x - m.x, y - m.y) for m in himmelblau.minima) for x, y in points]
    assert got.shape == (5,)
    np.testing.assert_allclose(got[:4], want[:4], rtol=1e-12, atol=0)
    assert got[0] == 0.0 and got[2] == 0.0
    assert got[3] == pytest.approx(math.hypot(3.6 - 3.584428340330, -1.8 + 1.848126526964))
    assert math.isnan(got[4])


def test_distance_is_none_without_minima() -> None:
    tr = path((1.0, 2.0))
    assert tr.distance_to_minimum(get_surface("saddle")) is None
    assert tr.distance_to_minimum(formula_surface("x + y")) is None  # no interior minimum


# --- Summary ---------------------------------------------------------------------------


def test_summary_rows_describe_each_run() -> None:
    trajectories = collect(CFG)
    rows = summarize(trajectories, CFG.resolved_surface)
    assert [r.optimizer for r in rows] == [o.label for o in CFG.optimizers]
    for row, tr in zip(rows, trajectories, strict=True):
        assert (row.final_x, row.final_y) == (tr.x[-1], tr.y[-1])
        assert row.final_loss == tr.loss[-1]
        assert row.best_loss == min(tr.loss)
        assert row.evals == tr.evals[-1]
    adam, sgd, lbfgs = rows
    assert adam.status == lbfgs.status == "done"
    assert sgd.status == f"diverged at step {trajectories[1].diverged_at}"
    assert sgd.steps_to_min is None
    assert lbfgs.steps_to_min is not None and lbfgs.steps_to_min < STEPS
    assert lbfgs.evals > STEPS
    assert adam.evals == STEPS


def test_summary_steps_to_min_uses_the_surface_minimum() -> None:
    goldstein = get_surface("goldstein_price")
    tr = path((600.0, 3.5, 3.0005, 3.0))
    (row,) = summarize([tr], goldstein)
    assert row.steps_to_min == 2
    (row,) = summarize([tr], get_surface("saddle"))
    assert row.steps_to_min is None


def test_summary_of_a_run_diverged_at_the_start() -> None:
    cfg = SurfaceRunConfig(
        (ADAM,), problem=Problem(surface=CUSTOM, expr="sqrt(x)", start=(-1.0, 1.0), steps=5)
    )
    (row,) = summarize(collect(cfg), cfg.resolved_surface)
    assert row.status == "diverged at step 0"
    assert math.isnan(row.final_loss) and math.isnan(row.best_loss)
    assert row.steps_to_min is None and row.evals == 0


def test_summary_of_a_running_snapshot(records: list) -> None:
    collector = TrajectoryCollector(CFG.optimizers)
    collector.extend(itertools.takewhile(lambda r: r.step <= 5, records))
    rows = summarize(collector.snapshot(), CFG.resolved_surface)
    assert (rows[0].status, rows[2].status) == (RUNNING, RUNNING)
    assert rows[1].status == "diverged at step 1"
    assert rows[0].evals == 5


def test_best_loss_excludes_the_point_where_the_run_diverged() -> None:
    # Far outside the bounds a saddle reaches absurd values; that is no "best".
    assert path((1.0, 0.5, -6.8e22), status=DIVERGED).best_loss == 0.5
    assert path((1.0, 0.5, -6.8e22)).best_loss == -6.8e22  # a finished run keeps all
