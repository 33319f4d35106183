"""The inspector's curvature: Hessian axes on the contour, λ_max against SGD's threshold.

The oracle for every eigen-pair is `hessian_eigs`; for every threshold, the
formulas 2/η and (2 + 2μ)/η with the optimizer's own (recorded) lr and momentum,
and torch's own param group as `record_steps` saw it.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from optlab.optim.config import OptimizerConfig
from optlab.optim.plans import Plan
from optlab.optim.stability import sgd_threshold_of
from optlab.surface import inspector_plots as plots
from optlab.surface.curvature import curvature_at, param_groups, sharpness_paths
from optlab.surface.hessian import hessian_eigs
from optlab.surface.inspector import directions, record_steps
from optlab.surface.problem import Problem
from optlab.surface.run import DIVERGED, DONE, SurfaceRunConfig
from optlab.surface.surfaces import CUSTOM
from optlab.surface.trajectory import collect

BOWL = "x**2 + 10*y**2"


def config(*specs: str, plans: tuple[Plan, ...] = (), **fields) -> SurfaceRunConfig:
    return SurfaceRunConfig(
        tuple(OptimizerConfig.from_text(s) for s in specs), Problem(**fields), plans=plans
    )


def bowl(*specs: str, steps: int = 40, **kw) -> SurfaceRunConfig:
    return config(*specs, surface=CUSTOM, expr=BOWL, start=(1.0, 1.0), steps=steps, **kw)


def paths_of(cfg: SurfaceRunConfig):
    trajectories = collect(cfg)
    plans = [cfg.plan(i) for i in range(len(cfg.optimizers))]
    return trajectories, sharpness_paths(cfg.resolved_surface, trajectories, plans)


# -- the Hessian at the inspected step -------------------------------------------------------


def test_curvature_at_the_inspected_step_equals_hessian_eigs() -> None:
    cfg = config("adam:lr=0.01", steps=6)
    snap = record_steps(cfg, 0)[3]
    curv = curvature_at(cfg.resolved_surface, snap.point)
    eigvals, eigvecs = hessian_eigs(cfg.resolved_surface, np.array([snap.point]))
    assert curv.point == snap.point
    assert curv.eigenvalues == tuple(eigvals[0])
    assert curv.axes == (tuple(eigvecs[0, :, 0]), tuple(eigvecs[0, :, 1]))
    assert curv.finite and curv.eigenvalues[0] <= curv.eigenvalues[1]


def _eigen_annotations(fig):
    arrows = [a for a in fig.layout.annotations if a.name and a.name.endswith(" axis")]
    labels = [a for a in fig.layout.annotations if a.name and a.name.endswith(" label")]
    return arrows, labels


def test_the_contour_draws_both_hessian_axes_through_the_inspected_point() -> None:
    cfg = config("sgd:lr=0.0005", steps=8)
    (tr,) = collect(cfg)
    snap = record_steps(cfg, 0)[4]
    surface = cfg.resolved_surface
    curv = curvature_at(surface, snap.point)
    fig = plots.inspector_figure(surface, tr, 0, snap.point, directions(snap), curvature=curv)
    arrows, labels = _eigen_annotations(fig)
    assert len(arrows) == len(labels) == 2
    pull = np.sum([np.asarray(d) / math.hypot(*d) for d in directions(snap).values()], axis=0)
    (x0, x1), (y0, y1) = surface.bounds
    half = plots.EIGEN_SHARE * math.hypot(x1 - x0, y1 - y0)
    for k, (arrow, label) in enumerate(zip(arrows, labels, strict=True)):
        ux, uy = curv.axes[k]
        assert arrow.arrowside == "end+start"  # an axis, not a direction
        assert arrow.arrowcolor == plots.EIGEN_COLORS[k]
        assert arrow.arrowcolor not in plots.ARROW_COLORS
        # Centred on θ_{t−1}, along u_k, L each side.
        assert ((arrow.x + arrow.ax) / 2, (arrow.y + arrow.ay) / 2) == pytest.approx(snap.point)
        assert (arrow.x - arrow.ax, arrow.y - arrow.ay) == pytest.approx(
            (2 * half * ux, 2 * half * uy)
        )
        value = curv.eigenvalues[k]
        assert f"λ{'₁₂'[k]} = {value:.4g}" in label.text
        assert label.font.color == plots.EIGEN_COLORS[k]
        # The label sits past the axis's end that points away from the step's arrows.
        lx, ly = label.x - snap.point[0], label.y - snap.point[1]
        assert lx * uy == pytest.approx(ly * ux, abs=1e-12)
        assert lx * pull[0] + ly * pull[1] <= 0
    legend = [t.name for t in fig.data if t.name and t.name.startswith("Hessian axis")]
    assert legend == [
        f"Hessian axis u₁: λ₁ = {curv.eigenvalues[0]:.4g}",
        f"Hessian axis u₂: λ₂ = {curv.eigenvalues[1]:.4g}",
    ]
    # The step arrows are untouched: still one per direction, all from θ_{t−1}.
    steps = [a for a in fig.layout.annotations if a.ax is not None and a not in arrows]
    assert len(steps) == len(directions(snap))
    assert all((a.ax, a.ay) == snap.point for a in steps)


def test_a_bowls_axes_are_its_coordinate_axes_with_its_curvatures() -> None:
    cfg = bowl("sgd:lr=0.095", steps=3)
    snap = record_steps(cfg, 0)[1]
    curv = curvature_at(cfg.resolved_surface, snap.point)
    assert curv.eigenvalues == (2.0, 20.0)
    assert curv.axes == ((1.0, 0.0), (0.0, 1.0))
    assert [plots.eigen_label(k, v) for k, v in enumerate(curv.eigenvalues)] == [
        "λ₁ = 2",
        "λ₂ = 20",
    ]


def test_no_axes_where_the_hessian_is_not_finite() -> None:
    cfg = config("adam", surface=CUSTOM, expr="sqrt(x) + y**2", start=(1.0, 1.0), steps=3)
    (tr,) = collect(cfg)
    curv = curvature_at(cfg.resolved_surface, (-1.0, 0.0))  # sqrt is NaN there
    assert not curv.finite
    fig = plots.inspector_figure(cfg.resolved_surface, tr, 0, (-1.0, 0.0), {}, curvature=curv)
    assert _eigen_annotations(fig) == ([], [])
    assert any(t.name == "Hessian not finite here (no axes)" for t in fig.data)


# -- λ_max along each path, against the threshold ----------------------------------------------


def test_lambda_max_along_each_path_equals_hessian_eigs() -> None:
    cfg = config("sgd:lr=0.0005", "adam:lr=0.05", "sgd:lr=1", steps=30)
    trajectories, paths = paths_of(cfg)
    assert trajectories[2].status == DIVERGED
    for tr, path in zip(trajectories, paths, strict=True):
        eigvals, _ = hessian_eigs(cfg.resolved_surface, np.column_stack([tr.x, tr.y]))
        assert path.step == tr.step
        np.testing.assert_array_equal(path.lambda_max, eigvals[:, 1])


def test_the_zigzag_and_the_divergence_on_the_bowl() -> None:
    """lr 0.095 zig-zags in, lr 0.11 diverges: λ_max = 20 against 2/η = 21.05 and 18.18."""
    trajectories, (slow, fast) = paths_of(bowl("sgd:lr=0.095", "sgd:lr=0.11"))
    assert [tr.status for tr in trajectories] == [DONE, DIVERGED]
    assert set(slow.lambda_max) == set(fast.lambda_max) == {20.0}
    assert slow.threshold == pytest.approx([2 / 0.095] * len(slow.step))
    assert fast.threshold == pytest.approx([2 / 0.11] * len(fast.step))
    assert round(slow.threshold[0], 2) == 21.05 and round(fast.threshold[0], 2) == 18.18
    assert slow.formula == fast.formula == ("2/η",)
    ys = trajectories[0].y
    assert all(a * b < 0 for a, b in itertools.pairwise(ys))  # the zig-zag, all the way in


def test_momentum_moves_the_threshold_and_only_sgd_gets_one() -> None:
    cfg = bowl(
        "sgd:lr=0.01,momentum=0.9",
        "adam:lr=0.1",
        "rmsprop:lr=0.01",
        "sgd:lr=0.01,momentum=0.9,nesterov=true",
    )
    _, (heavy, adam, rmsprop, nesterov) = paths_of(cfg)
    assert heavy.threshold == pytest.approx([(2 + 2 * 0.9) / 0.01] * len(heavy.step))
    assert heavy.formula == ("(2+2μ)/η",)
    assert adam.threshold == rmsprop.threshold == () and adam.formula == ()
    assert nesterov.threshold == pytest.approx([3.8 / (2.8 * 0.01)] * len(nesterov.step))


def test_a_scheduled_lr_and_mid_run_changes_move_the_threshold_per_step() -> None:
    plan = Plan.from_text("cosine|10:momentum=0.5|20:dampening=0.5")
    cfg = bowl("sgd:lr=0.02,momentum=0.9", steps=30, plans=(plan,))
    (tr,), (path,) = paths_of(cfg)
    assert len(set(tr.lr)) > 10  # the cosine schedule
    for i, step in enumerate(tr.step):
        mu = 0.9 if step < 10 else 0.5
        d = 0.5 if step >= 20 else 0.0
        if tr.lr[i] == 0:  # the cosine's last value: no step, no threshold
            assert path.threshold[i] is None and step == 30
        else:
            assert path.threshold[i] == pytest.approx((2 + 2 * mu) / ((1 - d) * tr.lr[i]))
    assert path.formula == ("(2+2μ)/η", "(2+2μ)/((1−τ)η)")
    # The same values torch's param group held when the inspector recorded each step.
    snaps = record_steps(cfg, 0)
    groups = param_groups(tr, cfg.plan(0))
    for snap in snaps:
        assert sgd_threshold_of(snap.groups) == pytest.approx(path.threshold[snap.step - 1])
        assert snap.groups["lr"] == tr.lr[snap.step - 1]
        assert groups[snap.step - 1]["dampening"] == snap.groups["dampening"]


def test_weight_decay_is_reported_for_the_caption() -> None:
    _, (path,) = paths_of(bowl("sgd:lr=0.01,weight_decay=0.5"))
    assert path.weight_decay == 0.5
    assert path.threshold == pytest.approx([200.0] * len(path.step))


# -- the chart -----------------------------------------------------------------------------------


def test_the_sharpness_chart_draws_each_path_and_each_sgd_threshold() -> None:
    cfg = bowl("sgd:lr=0.095", "adam:lr=0.1", "sgd:lr=0.11", steps=25)
    _, paths = paths_of(cfg)
    fig = plots.sharpness_figure(paths, mark=(2, 3))
    by_name = {t.name: t for t in fig.data}
    assert set(by_name) == {
        "SGD (lr=0.095): λ_max",
        "SGD (lr=0.095): 2/η = 21.05",
        "Adam (lr=0.1): λ_max",
        "SGD (lr=0.11): λ_max",
        "SGD (lr=0.11): 2/η = 18.18",
        "θ<sub>t−1</sub> (step 3): λ_max = 20",
    }
    for i, path in enumerate(paths):
        curve = by_name[f"{path.optimizer.label}: λ_max"]
        assert list(curve.x) == list(path.step) and list(curve.y) == list(path.lambda_max)
        assert curve.line.color == plots.color(i)
    line = by_name["SGD (lr=0.11): 2/η = 18.18"]
    assert list(line.y) == pytest.approx([2 / 0.11] * len(paths[2].step))
    assert line.line.dash == "dot" and line.line.color == plots.color(2)
    mark = by_name["θ<sub>t−1</sub> (step 3): λ_max = 20"]
    assert (list(mark.x), list(mark.y)) == ([3], [20.0])


def test_a_changing_threshold_is_named_by_its_formula_alone() -> None:
    cfg = bowl("sgd:lr=0.02", steps=20, plans=(Plan.from_text("cosine"),))
    _, paths = paths_of(cfg)
    names = [t.name for t in plots.sharpness_figure(paths).data]
    assert names == ["SGD (lr=0.02): λ_max", "SGD (lr=0.02): 2/η"]
