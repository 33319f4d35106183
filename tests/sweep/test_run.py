"""Sweeps: every cell's metrics equal a plain torch.optim run of that cell; the CLI contract."""

from __future__ import annotations

import dataclasses
import json
import math
import time

import numpy as np
import pytest
import torch

from optlab.cli import main
from optlab.optim.config import OptimizerConfig
from optlab.surface.minima import grid_starts, slope_scale
from optlab.surface.problem import Problem
from optlab.surface.surfaces import get_surface
from optlab.surface.trajectory import collect
from optlab.sweep.config import Axis, SweepConfig
from optlab.sweep.run import (
    DIVERGED_CELL,
    NOT_CONVERGED,
    OTHER_STATIONARY,
    run_sweep,
    sweep_summary,
)

PROBLEM_FIELDS = {f.name for f in dataclasses.fields(Problem)}


def sgd_sweep(**changes) -> SweepConfig:
    base = dict(
        optimizer=OptimizerConfig.create("sgd", momentum=0.5),
        x=Axis("lr", 1e-4, 3e-3, 7, "log"),
        y=Axis("momentum", 0.0, 0.95, 5),
    )
    problem = {"surface": "rosenbrock", "steps": 300}
    for name in PROBLEM_FIELDS:
        if name in changes:
            problem[name] = changes.pop(name)
    return SweepConfig(**{**base, **changes}, problem=Problem(**problem))


def check_cell(result, index: int) -> None:
    """A cell's metrics against a plain run of its configuration with torch.optim."""
    cfg = result.config
    (tr,) = collect(cfg.cell_run(index))
    iy, ix = divmod(index, cfg.x.n)
    loss = np.asarray(tr.loss)
    if tr.status == "diverged":
        assert result.diverged_at[iy, ix] == tr.step[-1]
        assert math.isnan(result.final_loss[iy, ix])
        assert result.basin[iy, ix] == DIVERGED_CELL
        return
    assert result.diverged_at[iy, ix] == -1
    assert result.final_loss[iy, ix] == pytest.approx(loss[-1], abs=1e-9, rel=1e-9)
    assert result.best_loss[iy, ix] == pytest.approx(loss.min(), abs=1e-9, rel=1e-9)
    assert np.allclose(result.final[iy, ix], (tr.x[-1], tr.y[-1]), atol=1e-9, rtol=0)
    target = cfg.target_loss
    hits = np.nonzero(loss <= target)[0]
    assert result.steps_to_target[iy, ix] == (hits[0] if len(hits) else -1)


@pytest.mark.parametrize(
    "cfg",
    [
        sgd_sweep(),
        sgd_sweep(
            optimizer=OptimizerConfig.create("adam"),
            x=Axis("lr", 1e-3, 0.5, 6, "log"),
            y=Axis("betas.1", 0.9, 0.9999, 4, "lin"),
            surface="himmelblau",
            noise=0.3,
            seed=4,
        ),
        sgd_sweep(
            optimizer=OptimizerConfig.create("rmsprop", lr=0.01),
            x=Axis("alpha", 0.5, 0.99, 9),
            y=None,
            surface="beale",
        ),
    ],
    ids=["sgd-lr-momentum", "adam-noisy-himmelblau", "rmsprop-1d"],
)
def test_every_cell_equals_a_plain_run_of_its_configuration(cfg):
    result = run_sweep(cfg)
    assert result.shape == ((1 if cfg.y is None else cfg.y.n), cfg.x.n)
    for index in range(cfg.cells):
        check_cell(result, index)


def test_divergence_freezes_its_cell_and_spares_the_others():
    cfg = sgd_sweep(x=Axis("lr", 1e-4, 0.05, 8, "log"), y=None)
    result = run_sweep(cfg)
    diverged = result.diverged_at[0] >= 0
    assert diverged.any() and not diverged.all()  # the big learning rates blow up
    for index in range(cfg.cells):
        check_cell(result, index)
    # The paths of diverged cells stay at their last kept point.
    for ix in np.nonzero(diverged)[0]:
        path = result.paths[0, ix]
        assert np.isfinite(path).all() or True  # the point that left the box may be huge
        assert (path[-1] == path[-2]).all()


def test_a_grid_of_start_points_maps_basins():
    cfg = SweepConfig(
        optimizer=OptimizerConfig.create("adam", lr=0.05),
        x=Axis("start_x", -4.5, 4.5, 9),
        y=Axis("start_y", -4.5, 4.5, 9),
        problem=Problem(surface="himmelblau", steps=600),
    )
    result = run_sweep(cfg)
    found = set(np.unique(result.basin))
    assert {0, 1, 2, 3} <= found  # Himmelblau's four minima each get some starts
    for index in (0, 40, 80):
        check_cell(result, index)
    # A start on a minimum stays in its basin.
    assert result.basin[4, 4] in found


def test_local_minima_count_as_basins_on_six_hump_camel():
    cfg = SweepConfig(
        optimizer=OptimizerConfig.create("sgd", lr=0.01, momentum=0.5),
        x=Axis("start_x", -2.5, 2.5, 11),
        y=Axis("start_y", -1.5, 1.5, 7),
        problem=Problem(surface="six_hump_camel", steps=800),
    )
    basins = set(np.unique(run_sweep(cfg).basin))
    assert {0, 1} <= basins and basins & {2, 3, 4, 5}  # global and some local minima


def _final_gradients(result) -> np.ndarray:
    """|grad f| at each cell's final point, and the surface's typical slope."""
    surface = result.config.resolved_surface
    points = torch.tensor(result.final.reshape(-1, 2)).requires_grad_(True)
    (grad,) = torch.autograd.grad(surface(points).sum(), points)
    slope = slope_scale(surface, grid_starts(surface.bounds, 32))
    return grad.norm(dim=1).numpy().reshape(result.shape) / slope


def _styblinski_tang_maximum() -> float:
    """Where the 1-D quartic t^4 - 16 t^2 + 5 t peaks (Newton on its derivative)."""
    t = 0.0
    for _ in range(50):
        t -= (4 * t**3 - 32 * t + 5) / (12 * t**2 - 32)
    return t


def test_styblinski_tang_no_converged_start_is_grey():
    # Before every minimum was listed, 3 of its 4 basins were "not converged".
    grid = SweepConfig(
        optimizer=OptimizerConfig.create("sgd", lr=0.01),
        x=Axis("start_x", -4.8, 4.8, 13),
        y=Axis("start_y", -4.8, 4.8, 13),
        problem=Problem(surface="styblinski_tang", steps=300),
    )
    # Starts on the line x = the quartic's maximum stay on it: they end on saddles.
    ridge = SweepConfig(
        optimizer=OptimizerConfig.create("sgd", lr=0.01),
        x=Axis("start_y", -4.8, 4.8, 9),
        problem=Problem(surface="styblinski_tang", start=(_styblinski_tang_maximum(), 0.0)),
    )
    for cfg in (grid, ridge):
        result = run_sweep(cfg)
        converged = _final_gradients(result) <= 1e-6
        assert converged.sum() >= cfg.cells - 2
        assert not (result.basin[converged] == NOT_CONVERGED).any(), result.basin
    assert set(np.unique(run_sweep(grid).basin)) == {0, 1, 2, 3}
    ridge_basins = run_sweep(ridge).basin
    assert (ridge_basins == OTHER_STATIONARY).all(), ridge_basins


def test_a_start_that_ends_on_a_saddle_is_another_stationary_point():
    # On x^2 - y^2 a start with y = 0 slides to the saddle and stays there.
    cfg = SweepConfig(
        optimizer=OptimizerConfig.create("sgd", lr=0.1),
        x=Axis("start_x", -1.8, 1.8, 6),
        problem=Problem(surface="saddle", start=(0.0, 0.0), steps=200),
    )
    result = run_sweep(cfg)
    assert np.abs(result.final).max() < 1e-12
    assert (result.basin == OTHER_STATIONARY).all()
    # Off the ridge it runs down the saddle's sides and diverges, as before.
    off = dataclasses.replace(cfg, problem=dataclasses.replace(cfg.problem, start=(0.0, 0.01)))
    assert (run_sweep(off).basin == DIVERGED_CELL).all()


def test_a_start_on_himmelblau_s_maximum_stays_there_and_is_a_stationary_point():
    himmelblau = get_surface("himmelblau")
    p = torch.tensor([-0.27, -0.92], dtype=torch.float64)
    f = himmelblau.__call__
    for _ in range(20):
        p = p - torch.linalg.solve(
            torch.autograd.functional.hessian(f, p), torch.autograd.functional.jacobian(f, p)
        )
    assert torch.linalg.eigvalsh(torch.autograd.functional.hessian(f, p)).max() < 0
    x, y = p.tolist()
    cfg = SweepConfig(
        optimizer=OptimizerConfig.create("adam", lr=1e-3),
        x=Axis("start_x", x - 1e-3, x + 1e-3, 3),
        y=Axis("start_y", y - 1e-3, y + 1e-3, 3),
        problem=Problem(surface="himmelblau", steps=5),
    )
    result = run_sweep(cfg)
    assert (result.basin == OTHER_STATIONARY).all()
    # Given time, the same starts roll off the hill into minima.
    longer = dataclasses.replace(cfg, problem=dataclasses.replace(cfg.problem, steps=3000))
    assert (run_sweep(longer).basin >= 0).all()


def test_a_formula_s_basins_use_its_estimated_minima():
    cfg = SweepConfig(
        optimizer=OptimizerConfig.create("sgd", lr=0.05),
        x=Axis("start_x", -2.0, 2.0, 8),
        problem=Problem(surface="custom", expr="(x**2 - 1)**2 + y**2", start=(0.0, 0.5)),
    )
    result = run_sweep(cfg)
    doc = result.to_dict()
    assert [(m["x"], m["y"], m["global"], m["estimated"]) for m in doc["minima"]] == [
        (-1.0, 0.0, True, True),
        (1.0, 0.0, True, True),
    ]
    assert doc["target"] == pytest.approx(1e-3)  # f* + 1e-3, f* estimated
    # Starts left of 0 end at (-1, 0), code 0; right of it at (1, 0), code 1.
    assert result.basin[0].tolist() == [0, 0, 0, 0, 1, 1, 1, 1]


def test_far_from_anything_stationary_is_still_not_converged():
    cfg = SweepConfig(
        optimizer=OptimizerConfig.create("sgd", lr=1e-6),
        x=Axis("start_x", -1.5, -1.0, 3),
        problem=Problem(surface="rosenbrock", start=(-1.2, 2.5), steps=3),
    )
    assert (run_sweep(cfg).basin == NOT_CONVERGED).all()


def test_progress_is_reported_and_the_summary_names_the_best_cell():
    seen = []
    result = run_sweep(sgd_sweep(), on_progress=lambda s, n: seen.append((s, n)))
    assert seen and seen[-1] == (300, 300) and all(n == 300 for _, n in seen)
    text = sweep_summary(result)
    assert "7 x 5" not in text and "5 x 7 cells" in text
    assert "best cell: lr=" in text and "momentum=" in text
    best = result.best_cell()
    assert result.final_loss.ravel()[best] == np.nanmin(result.final_loss)


@pytest.mark.quiet  # a sweep's seconds, alone and beside its callback's sleeps
def test_the_time_the_progress_callback_takes_is_not_the_sweeps():
    """A page's callback waits there for its turn of the engine: the sweep's own
    seconds (shown as "Ran in ... s") leave those waits out."""
    alone = run_sweep(sgd_sweep()).seconds
    calls = []

    def slow(step: int, steps: int) -> None:
        calls.append(step)
        time.sleep(0.01)

    waited = run_sweep(sgd_sweep(), on_progress=slow)
    assert len(calls) == 50  # 300 steps, every 2%: 0.5 s spent in the callback
    assert waited.seconds < alone + 0.25


@pytest.mark.parametrize(
    ("changes", "fragment"),
    [
        ({"optimizer": OptimizerConfig.create("lbfgs")}, "no batched version"),
        ({"x": Axis("nesterov", 0, 1, 3), "y": None}, "only numeric"),
        (
            {"optimizer": OptimizerConfig.create("adam"), "x": Axis("betas", 0.1, 0.9, 3)},
            "betas.0 or betas.1",
        ),
        ({"x": Axis("lr", -1, 1, 3)}, "Invalid lr value: -1"),
        ({"y": Axis("lr", 1e-3, 1e-2, 3)}, "sweeps lr twice"),
        ({"x": Axis("gamma", 0.1, 0.2, 3)}, "gamma"),
        (
            {"optimizer": OptimizerConfig.create("sgd", momentum=0.9, nesterov=True)},
            "momentum=0: Nesterov momentum requires a momentum",
        ),
        (
            {"steps": 5000, "x": Axis("lr", 1e-4, 1e-2, 200), "y": Axis("momentum", 0, 0.9, 200)},
            "cap",
        ),
        ({"target": math.inf}, "target"),
    ],
)
def test_bad_sweeps_are_refused_with_a_clear_message(changes, fragment):
    with pytest.raises(ValueError, match=fragment):
        sgd_sweep(**changes)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("lr=1:2:lin", "expected NAME=LOW:HIGH"),
        ("lr=a:2:lin:5", "must be numbers"),
        ("lr=1:2:cubic:5", "lin or log"),
        ("lr=0:2:log:5", "positive"),
        ("lr=1:2:lin:1", "resolution"),
        ("lr=1:2:lin:500", "resolution"),
        ("lr=1:1:lin:5", "differ"),
        ("lr=1:inf:lin:5", "finite"),
    ],
)
def test_bad_axes_are_refused(text, fragment):
    with pytest.raises(ValueError, match=fragment):
        Axis.from_text(text)


def test_axis_text_round_trips():
    axis = Axis.from_text("betas.1 = 0.9 : 0.9999 : LOG : 20")
    assert axis == Axis("betas.1", 0.9, 0.9999, 20, "log")
    assert Axis.from_text(axis.to_text()) == axis
    assert axis.values[0] == 0.9 and axis.values[-1] == pytest.approx(0.9999)


# --- the CLI ----------------------------------------------------------------------------


def sweep_cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(["sweep", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_sweep_writes_axes_and_metrics_as_nested_lists(capsys, tmp_path):
    out = tmp_path / "sweep.json"
    argv = ["--surface", "rosenbrock", "--opt", "sgd:momentum=0.9", "--steps", "200"]
    argv += ["--x", "lr=1e-4:2e-3:log:6", "--y", "momentum=0:0.9:lin:4", "--out", str(out)]
    code, text, err = sweep_cli(capsys, *argv)
    assert (code, err) == (0, "")
    assert "4 x 6 cells" in text and f"wrote {out}" in text
    doc = json.loads(out.read_text(encoding="utf-8"))
    assert [a["name"] for a in doc["axes"]] == ["lr", "momentum"]
    assert len(doc["axes"][0]["values"]) == 6 and doc["axes"][1]["scale"] == "lin"
    for key in ("final_loss", "best_loss", "steps_to_target", "diverged_at", "basin"):
        assert len(doc[key]) == 4 and all(len(row) == 6 for row in doc[key]), key
    codes = {"-1": "not converged", "-2": "diverged", "-3": "other stationary point"}
    assert doc["basin_codes"] == codes
    assert doc["minima"] == [{"x": 1.0, "y": 1.0, "f": 0.0, "global": True, "estimated": False}]
    assert doc["optimizer"] == "sgd:momentum=0.9" and doc["steps"] == 200
    cfg = SweepConfig(
        OptimizerConfig.from_text("sgd:momentum=0.9"),
        Axis.from_text("lr=1e-4:2e-3:log:6"),
        Axis.from_text("momentum=0:0.9:lin:4"),
        problem=Problem(steps=200),
    )
    expected = run_sweep(cfg)
    got = np.array([[math.nan if v is None else v for v in row] for row in doc["final_loss"]])
    assert np.allclose(got, expected.final_loss, equal_nan=True, rtol=0, atol=0)


def test_cli_sweep_of_start_points_on_a_formula(capsys):
    code, text, err = sweep_cli(
        capsys,
        "--expr",
        "-x**2 + y**4",  # no minimum known: no target, no basins
        "--opt",
        "adam:lr=0.1",
        "--x",
        "start_x=-1:1:lin:5",
        "--steps",
        "50",
    )
    assert (code, err) == (0, "")
    assert "f(x, y) = -x**2 + y**4" in text and "reached" not in text


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["--surface", "rosenbrock", "--opt", "lbfgs", "--x", "lr=0.1:1:lin:3"], "batched"),
        (["--surface", "rosenbrock", "--opt", "sgd", "--x", "lr:0.1"], "NAME=LOW:HIGH"),
        (["--surface", "nowhere", "--opt", "sgd", "--x", "lr=0.1:1:lin:3"], "nowhere"),
        (["--surface", "rosenbrock", "--opt", "sgd"], "--x"),
        (
            ["--surface", "rosenbrock", "--opt", "sgd", "--x", "lr=0.1:1:lin:3", "--steps", "0"],
            "steps",
        ),
        (
            [
                "--surface",
                "rosenbrock",
                "--opt",
                "sgd",
                "--x",
                "lr=1e-3:1e-2:lin:3",
                "--out",
                "/no/such/dir/x.json",
            ],
            "--out",
        ),
    ],
)
def test_cli_sweep_bad_input_exits_2_with_one_line(capsys, argv, fragment):
    code, out, err = sweep_cli(capsys, *argv)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("optlab: error: "), err
    assert fragment in err
