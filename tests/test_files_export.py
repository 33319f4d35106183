"""Tests for optlab.files and optlab.export: strict JSON, exact CSV, atomic writes."""

from __future__ import annotations

import csv
import io
import json
import math
import os
import stat
from pathlib import Path
from typing import Any

import pytest
import torch

from optlab import files
from optlab.export import run_to_csv, run_to_dict, run_to_json
from optlab.files import write_atomic
from optlab.optim.config import OptimizerConfig
from optlab.surface.problem import Problem
from optlab.surface.run import DIVERGED, DONE, RUNNING, SurfaceRunConfig
from optlab.surface.surfaces import CUSTOM
from optlab.surface.trajectory import Trajectory, collect

INF, NAN = math.inf, math.nan


def _reject_constant(name: str) -> Any:
    raise ValueError(f"non-standard JSON constant {name}")


def strict_loads(text: str) -> Any:
    return json.loads(text, parse_constant=_reject_constant)


def same_float(a: float, b: float) -> bool:
    """Equal as floats, NaN equal to NaN and the sign of zero kept."""
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return a == b and math.copysign(1.0, a) == math.copysign(1.0, b)


NESTEROV = OptimizerConfig.create("nesterov", lr=0.001)
ADAM = OptimizerConfig.create("adam", lr=0.05, betas=(0.8, 0.95))

#: A hand-made path that blew up: every kind of non-finite value, and floats
#: whose shortest text form is long or surprising.
BLOWN = Trajectory(
    optimizer=NESTEROV,
    step=(0, 1, 2, 3),
    x=(-1.2, 0.1 + 0.2, 5e-324, INF),
    y=(1.0, -0.0, -INF, NAN),
    loss=(24.2, 1 / 3, 1e308, NAN),
    grad_norm=(232.9, 2.5e-17, INF, NAN),
    lr=(0.001, 0.001, 0.001, 0.001),
    evals=(0, 1, 2, 3),
    status=DIVERGED,
)
CLEAN = Trajectory(
    optimizer=ADAM,
    step=(0, 1, 2),
    x=(-1.2, -1.15, -1.1),
    y=(1.0, 1.05, 1.1),
    loss=(24.2, 12.0, 6.0),
    grad_norm=(232.9, 140.6, 80.0),
    lr=(0.05, 0.05, 0.05),
    evals=(0, 1, 2),
    status=DONE,
)
CFG = SurfaceRunConfig((NESTEROV, ADAM), problem=Problem(steps=2))


@pytest.fixture(scope="module")
def real_run() -> tuple[SurfaceRunConfig, list[Trajectory]]:
    """A real run: one optimizer leaves Rosenbrock, one finishes, one uses a line search."""
    cfg = SurfaceRunConfig(
        (
            OptimizerConfig.create("sgd", lr=1.0),
            ADAM,
            OptimizerConfig.create("lbfgs", line_search_fn="strong_wolfe"),
        ),
        problem=Problem(steps=25, noise=0.01, seed=5),
    )
    return cfg, collect(cfg)


# --- JSON ------------------------------------------------------------------------------


def test_json_is_strict_and_non_finite_values_are_null() -> None:
    text = run_to_json(CFG, [BLOWN, CLEAN])
    for token in ("NaN", "Infinity"):
        assert token not in text
    data = strict_loads(text)
    blown = data["runs"][0]
    assert blown["x"] == [-1.2, 0.1 + 0.2, 5e-324, None]
    assert blown["y"] == [1.0, -0.0, None, None]
    assert blown["loss"] == [24.2, 1 / 3, 1e308, None]
    assert blown["grad_norm"] == [232.9, 2.5e-17, None, None]
    assert (blown["status"], blown["diverged_at"]) == (DIVERGED, 3)


def test_json_equals_the_dict() -> None:
    text = run_to_json(CFG, [BLOWN, CLEAN])
    assert strict_loads(text) == strict_loads(json.dumps(run_to_dict(CFG, [BLOWN, CLEAN])))


def test_dict_describes_the_config() -> None:
    data = run_to_dict(CFG, [BLOWN, CLEAN])
    assert data["surface"] == "rosenbrock"
    assert data["expr"] is None
    assert data["start"] == [-1.2, 1.0]
    assert data["steps"] == 2
    assert (data["seed"], data["noise"]) == (0, 0.0)
    assert data["torch_version"] == torch.__version__
    assert data["bounds"] == [[-2.0, 2.0], [-1.0, 3.0]]


def test_dict_hparams_are_plain_json_values() -> None:
    nesterov, adam = (r["hparams"] for r in run_to_dict(CFG, [BLOWN, CLEAN])["runs"])
    assert nesterov == {
        "lr": 0.001,
        "momentum": 0.9,
        "dampening": 0.0,
        "weight_decay": 0.0,
        "nesterov": True,
        "maximize": False,
    }
    assert adam["betas"] == [0.8, 0.95]
    assert OptimizerConfig.create("adam", **{**adam, "betas": tuple(adam["betas"])}) == ADAM


def test_dict_of_a_custom_formula_run() -> None:
    cfg = SurfaceRunConfig(
        (ADAM,),
        problem=Problem(
            surface=CUSTOM, expr="x**2 + y**2", bounds=((-1.0, 2.0), (-3.0, 4.0)), steps=3
        ),
    )
    data = run_to_dict(cfg, collect(cfg))
    assert (data["surface"], data["expr"]) == (CUSTOM, "x**2 + y**2")
    assert data["bounds"] == [[-1.0, 2.0], [-3.0, 4.0]]


def test_json_of_a_real_run_matches_the_trajectories(
    real_run: tuple[SurfaceRunConfig, list[Trajectory]],
) -> None:
    cfg, trajectories = real_run
    data = strict_loads(run_to_json(cfg, trajectories))
    assert [r["status"] for r in data["runs"]] == [DIVERGED, DONE, DONE]
    for run, tr in zip(data["runs"], trajectories, strict=True):
        assert run["x"] == [v if math.isfinite(v) else None for v in tr.x]
        assert run["loss"] == [v if math.isfinite(v) else None for v in tr.loss]
        assert run["evals"] == list(tr.evals)
        assert run["diverged_at"] == tr.diverged_at
    assert data["runs"][2]["evals"][-1] > cfg.problem.steps


def test_json_of_a_nan_divergence_has_no_nan() -> None:
    # sqrt(x) is NaN at a start with x < 0.
    cfg = SurfaceRunConfig(
        (ADAM,), problem=Problem(surface=CUSTOM, expr="sqrt(x)", start=(-1.0, 1.0), steps=5)
    )
    (tr,) = collect(cfg)
    assert math.isnan(tr.loss[0])
    run = strict_loads(run_to_json(cfg, [tr]))["runs"][0]
    assert run["loss"] == [None] and run["grad_norm"] == [None]


# --- CSV -------------------------------------------------------------------------------


def csv_rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def test_csv_has_a_header_and_one_row_per_step() -> None:
    text = run_to_csv([BLOWN, CLEAN])
    header = next(csv.reader(io.StringIO(text)))
    assert header[:3] == ["optimizer", "label", "step"]
    assert {"x", "y", "loss", "grad_norm", "lr", "evals", "status"} <= set(header)
    rows = csv_rows(text)
    assert len(rows) == len(BLOWN.step) + len(CLEAN.step)
    assert [int(r["step"]) for r in rows] == [*BLOWN.step, *CLEAN.step]
    assert all(len(r) == len(header) for r in rows)


def test_csv_numbers_round_trip_exactly() -> None:
    rows = csv_rows(run_to_csv([BLOWN, CLEAN]))
    for tr, mine in ((BLOWN, rows[:4]), (CLEAN, rows[4:])):
        for column in ("x", "y", "loss", "grad_norm", "lr"):
            got = [float(r[column]) for r in mine]
            want = getattr(tr, column)
            assert all(same_float(g, w) for g, w in zip(got, want, strict=True)), column
        assert [int(r["evals"]) for r in mine] == list(tr.evals)


def test_csv_optimizer_column_rebuilds_the_optimizer() -> None:
    # The spec text and the label both hold commas: the csv module must quote them.
    rows = csv_rows(run_to_csv([BLOWN, CLEAN]))
    assert OptimizerConfig.from_text(rows[0]["optimizer"]) == NESTEROV
    assert rows[0]["label"] == NESTEROV.label
    assert OptimizerConfig.from_text(rows[-1]["optimizer"]) == ADAM


def test_csv_status_is_running_until_the_last_row() -> None:
    rows = csv_rows(run_to_csv([BLOWN, CLEAN]))
    assert [r["status"] for r in rows[:4]] == [RUNNING, RUNNING, RUNNING, DIVERGED]
    assert [r["status"] for r in rows[4:]] == [RUNNING, RUNNING, DONE]


def test_csv_of_a_real_run_round_trips(
    real_run: tuple[SurfaceRunConfig, list[Trajectory]],
) -> None:
    _, trajectories = real_run
    rows = csv_rows(run_to_csv(trajectories))
    assert len(rows) == sum(len(tr.step) for tr in trajectories)
    flat = [(tr, i) for tr in trajectories for i in range(len(tr.step))]
    for row, (tr, i) in zip(rows, flat, strict=True):
        assert float(row["x"]) == tr.x[i] and float(row["y"]) == tr.y[i]
        assert same_float(float(row["loss"]), tr.loss[i])


# --- write_atomic ----------------------------------------------------------------------


def test_write_atomic_writes_utf8_and_leaves_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "run.json"
    write_atomic(target, '{"σ": "γ"}')
    assert target.read_bytes() == '{"σ": "γ"}'.encode()
    assert [p.name for p in tmp_path.iterdir()] == ["run.json"]


def test_write_atomic_takes_a_str_path(tmp_path: Path) -> None:
    write_atomic(str(tmp_path / "run.csv"), "a,b\n1,2\n")
    assert (tmp_path / "run.csv").read_text(encoding="utf-8") == "a,b\n1,2\n"


def test_write_atomic_replaces_an_existing_file(tmp_path: Path) -> None:
    target = tmp_path / "run.json"
    target.write_text("old " * 1000, encoding="utf-8")
    write_atomic(target, "new")
    assert target.read_text(encoding="utf-8") == "new"
    assert [p.name for p in tmp_path.iterdir()] == ["run.json"]


def test_write_atomic_relative_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    write_atomic("run.json", "{}")
    assert (tmp_path / "run.json").read_text(encoding="utf-8") == "{}"
    assert [p.name for p in tmp_path.iterdir()] == ["run.json"]


def test_failed_write_keeps_the_old_file(tmp_path: Path) -> None:
    target = tmp_path / "run.json"
    target.write_text("old", encoding="utf-8")
    with pytest.raises(TypeError):
        write_atomic(target, 123)  # type: ignore[arg-type]
    assert target.read_text(encoding="utf-8") == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["run.json"]


@pytest.mark.parametrize(
    "error", [OSError(28, "No space left on device"), KeyboardInterrupt()], ids=["disk", "ctrl-c"]
)
def test_failed_rename_keeps_the_old_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, error: BaseException
) -> None:
    target = tmp_path / "run.json"
    target.write_text("old", encoding="utf-8")

    def fail(src: Any, dst: Any) -> None:
        assert Path(src).parent == tmp_path, "the temporary file must sit beside the target"
        assert Path(src).read_text(encoding="utf-8") == "new"
        raise error

    monkeypatch.setattr(files.os, "replace", fail)
    with pytest.raises(type(error)):
        write_atomic(target, "new")
    monkeypatch.undo()
    assert target.read_text(encoding="utf-8") == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["run.json"]


def test_write_into_a_missing_folder_raises_and_creates_nothing(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        write_atomic(tmp_path / "gone" / "run.json", "{}")
    assert list(tmp_path.iterdir()) == []


def test_write_into_a_folder_that_vanishes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "out"
    folder.mkdir()
    real_replace = os.replace

    def vanish_then_replace(src: Any, dst: Any) -> None:
        Path(src).unlink()
        folder.rmdir()
        real_replace(src, dst)

    monkeypatch.setattr(files.os, "replace", vanish_then_replace)
    with pytest.raises(FileNotFoundError):
        write_atomic(folder / "run.json", "{}")
    assert list(tmp_path.iterdir()) == []


def test_written_file_has_ordinary_permissions(tmp_path: Path) -> None:
    old_umask = os.umask(0o022)
    try:
        write_atomic(tmp_path / "run.json", "{}")
        plain = tmp_path / "plain.json"
        plain.write_text("{}", encoding="utf-8")
    finally:
        os.umask(old_umask)
    mode = stat.S_IMODE((tmp_path / "run.json").stat().st_mode)
    assert mode == stat.S_IMODE(plain.stat().st_mode) == 0o644


def test_figures_html_is_one_offline_page_with_every_figure_and_the_animation():
    from optlab.export import figures_html
    from optlab.optim.config import OptimizerConfig
    from optlab.surface import plots
    from optlab.surface.replay import replay_figure
    from optlab.surface.run import SurfaceRunConfig
    from optlab.surface.trajectory import collect

    cfg = SurfaceRunConfig((OptimizerConfig.create("adam", lr=0.1),), problem=Problem(steps=30))
    trajectories = collect(cfg)
    surface = cfg.resolved_surface
    page = figures_html(
        "OptLab <test>",
        [
            ("Paths", plots.contour_figure(surface, trajectories)),
            ("Replay", replay_figure(surface, trajectories)),
        ],
        "note & link",
    )
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    assert "<title>OptLab &lt;test&gt;</title>" in page and "note &amp; link" in page
    assert page.count("Plotly.newPlot") == 2
    assert page.count("plotly.js v") == 1  # the library inlined once: opens offline
    assert "addFrames" in page  # the replay keeps its animation frames
    assert "<script src=" not in page  # nothing fetched from the network


def test_chart_config_names_the_png_after_the_chart():
    from optlab.charts import chart_config

    config = chart_config("rosenbrock-paths")
    assert config["toImageButtonOptions"] == {
        "format": "png",
        "scale": 2,
        "filename": "optlab-rosenbrock-paths",
    }
    assert chart_config("a b/c")["toImageButtonOptions"]["filename"] == "optlab-a-b-c"
