"""Tests for ``python -m optlab landscape`` and ``train``'s snapshot and sharpness options.

One tiny SGD-vs-Adam run on the shared CIFAR-10 subset (4 steps of 16 images,
snapshots every 2 steps, sharpness on 16 images) is trained with the CLI and its
checkpoint drawn on a 5×5 grid on 16 images; the JSON is checked against the
contract and against plain forwards of the checkpoint's own models.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F

from optlab.cli import main
from optlab.train.data import load_cifar10, normalise
from optlab.train.models import build_model
from optlab.train.planes import flat_parameters
from tests.cli.test_train import _Capture, _reject_constant
from tests.support.resources import require_cifar_subset

EVAL = 16
TRAIN = ["--batch-size", "16", "--train-limit", "64", "--test-limit", "32", "--device", "cpu"]
TWO = ["--opt", "sgd:lr=0.05,momentum=0.9", "--opt", "adam:lr=0.002"]
OBSERVED = ["--snapshot-every", "2", "--sharpness-every", "2", "--sharpness-images", "16"]


pytestmark = pytest.mark.usefixtures("one_thread")


def _train(folder: Path, name: str, *argv: str) -> dict[str, Any]:
    subset = require_cifar_subset()
    checkpoint, out = folder / f"{name}.pt", folder / f"{name}.json"
    capture = _Capture()
    code = capture.call(
        ["train", "--data", str(subset), *TRAIN, *argv, "--checkpoint", str(checkpoint)], out
    )
    assert code == 0, capture.err
    return {"checkpoint": checkpoint, "json": json.loads(out.read_text(encoding="utf-8"))}


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """SGD with momentum and Adam, 4 steps, snapshots and sharpness every 2."""
    return _train(tmp_path_factory.mktemp("run"), "two", *TWO, "--steps", "4", *OBSERVED)


@pytest.fixture(scope="module")
def landscape(run: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("landscape") / "landscape.json"
    argv = ["landscape", "--checkpoint", str(run["checkpoint"]), "--data"]
    argv += [str(require_cifar_subset()), "--grid", "5", "--eval-images", str(EVAL)]
    capture = _Capture()
    assert capture.call([*argv, "--device", "cpu"], out) == 0, capture.err
    assert f"wrote {out}" in capture.out
    return json.loads(out.read_text(encoding="utf-8"), parse_constant=_reject_constant)


def test_train_out_has_each_runs_sharpness_with_its_thresholds(run) -> None:
    sgd, adam = run["json"]["runs"]
    assert [r["step"] for r in sgd["sharpness"]] == [2, 4]
    for record in sgd["sharpness"]:
        assert set(record) == {"step", "lambda_max", "threshold"}
        assert record["threshold"] == pytest.approx((2 + 2 * 0.9) / 0.05)
        assert record["lambda_max"] > 0
    for record in adam["sharpness"]:
        assert set(record) == {
            "step",
            "lambda_max",
            "threshold",
            "lambda_max_preconditioned",
            "threshold_preconditioned",
        }
        assert record["threshold"] is None
        assert record["threshold_preconditioned"] == pytest.approx(3.8 / (0.1 * 0.002))
        assert record["lambda_max_preconditioned"] > 0
    state = torch.load(run["checkpoint"], weights_only=True)
    assert state["snapshots"]["steps"] == [0, 2, 4]


def test_landscape_json_has_the_contract(landscape) -> None:
    assert set(landscape) == {"plane", "eval_images", "a", "b", "loss", "lines", "runs"}
    assert landscape["plane"] == {"kind": "endpoints", "optimizers": ["SGD", "Adam"]}
    assert landscape["eval_images"] == EVAL
    assert len(landscape["a"]) == len(landscape["b"]) == 5
    assert len(landscape["loss"]) == 5 and all(len(row) == 5 for row in landscape["loss"])
    assert [(line["from"], line["to"]) for line in landscape["lines"]] == [
        ("initial", "SGD"),
        ("initial", "Adam"),
        ("SGD", "Adam"),
    ]
    for line in landscape["lines"]:
        assert line["t"][0] == 0 and line["t"][-1] == 1 and len(line["loss"]) == len(line["t"])
    assert [r["optimizer"] for r in landscape["runs"]] == ["SGD", "Adam"]
    for r in landscape["runs"]:
        assert set(r) == {"optimizer", "steps", "a", "b", "loss", "residual"}
        assert r["steps"] == [0, 2, 4]
        assert all(len(r[k]) == 3 for k in ("a", "b", "loss", "residual"))
        assert r["a"][0] == r["b"][0] == r["residual"][0] == 0
        # The grid spans every path.
        assert min(landscape["a"]) < min(r["a"]) and max(r["a"]) < max(landscape["a"])
        assert min(landscape["b"]) < min(r["b"]) and max(r["b"]) < max(landscape["b"])


def test_endpoints_lie_on_the_plane_and_their_losses_are_true(run, landscape) -> None:
    state = torch.load(run["checkpoint"], weights_only=True)
    data = load_cifar10(require_cifar_subset(), download=False, synthetic=False)
    x = normalise(data.train.images[:EVAL])
    y = data.train.labels[:EVAL]

    def loss_of(weights: torch.Tensor) -> float:
        model = build_model("seednet", 0).eval()
        torch.nn.utils.vector_to_parameters(weights, model.parameters())
        with torch.no_grad():
            return F.cross_entropy(model(x), y).item()

    sgd, adam = landscape["runs"]
    assert sgd["residual"][-1] <= 1e-6 and adam["residual"][-1] <= 1e-6
    assert sgd["b"][-1] == pytest.approx(0, abs=1e-6)  # A lies on e₁
    for r, saved in zip(landscape["runs"], state["models"], strict=True):
        model = build_model("seednet", 0)
        model.load_state_dict(saved)
        final = flat_parameters(model)
        assert r["loss"][-1] == pytest.approx(loss_of(final), rel=1e-5)
        assert r["loss"][0] == pytest.approx(loss_of(state["snapshots"]["weights"][0][0]), rel=1e-5)
    initial_line = landscape["lines"][0]["loss"]
    assert initial_line[0] == pytest.approx(sgd["loss"][0], rel=1e-5)
    assert initial_line[-1] == pytest.approx(sgd["loss"][-1], rel=1e-5)


@pytest.fixture(scope="module")
def plain(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two optimizers, no snapshots."""
    return _train(tmp_path_factory.mktemp("plain"), "plain", *TWO, "--steps", "2")["checkpoint"]


@pytest.fixture(scope="module")
def single(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One optimizer with snapshots."""
    folder = tmp_path_factory.mktemp("single")
    argv = ["--opt", "sgd:lr=0.05", "--steps", "2", "--snapshot-every", "1"]
    return _train(folder, "single", *argv)["checkpoint"]


def _landscape(capsys, checkpoint: Path | str, *argv: str) -> tuple[int, str, str]:
    source = ["--data", str(require_cifar_subset()), "--device", "cpu"]
    code = main(["landscape", "--checkpoint", str(checkpoint), *source, *argv])
    out, err = capsys.readouterr()
    return code, out, err


def _one_line(code: int, out: str, err: str, fragment: str) -> None:
    assert (code, out) == (2, "")
    assert err.count("\n") == 1 and err.startswith("optlab: error: "), err
    assert fragment in err


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        pytest.param(["--grid", "0"], "--grid: must be between 2 and", id="grid-0"),
        pytest.param(["--grid", "1000"], "--grid: must be between 2 and", id="grid-cap"),
        pytest.param(["--eval-images", "100"], "--eval-images: 100 asked for", id="beyond-data"),
        pytest.param(["--eval-images", "99999"], "--eval-images: must be between", id="cap"),
        pytest.param(["--span", "0"], "--span: must be a positive number", id="span"),
        pytest.param(["--plane", "flat"], "invalid choice: 'flat'", id="plane"),
        pytest.param(["--synthetic"], "not allowed with argument --data", id="two-sources"),
    ],
)
def test_bad_landscape_input_exits_2_with_one_line(capsys, run, argv, fragment) -> None:
    _one_line(*_landscape(capsys, run["checkpoint"], *argv), fragment)


def test_bad_checkpoints_exit_2_with_one_line(capsys, tmp_path, plain, single) -> None:
    _one_line(*_landscape(capsys, plain), "it holds no weight snapshots")
    _one_line(*_landscape(capsys, single, "--plane", "endpoints"), "needs two optimizers")
    broken = tmp_path / "broken.pt"
    broken.write_bytes(b"not a checkpoint")
    _one_line(*_landscape(capsys, broken), "not a readable OptLab checkpoint")
    _one_line(*_landscape(capsys, tmp_path / "missing.pt"), "cannot read")


def test_one_optimizer_gets_a_pca_plane_by_default(capsys, tmp_path, single) -> None:
    out = tmp_path / "one.json"
    argv = ["--grid", "3", "--eval-images", "8", "--out", str(out)]
    code, _, err = _landscape(capsys, single, *argv)
    assert code == 0, err
    data = json.loads(out.read_text(encoding="utf-8"))
    assert data["plane"]["kind"] == "pca" and [r["steps"] for r in data["runs"]] == [[0, 1, 2]]
    assert [(line["from"], line["to"]) for line in data["lines"]] == [("initial", "SGD")]


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        pytest.param(["--snapshot-every", "0"], "snapshot_every: expected", id="snapshot-0"),
        pytest.param(["--sharpness-every", "0"], "sharpness_every: expected", id="sharpness-0"),
        pytest.param(["--sharpness-images", "99999"], "sharpness_images: expected", id="cap"),
        pytest.param(
            ["--sharpness-every", "1", "--sharpness-images", "100"],
            "sharpness_images: 100 asked for, but the run trains on 64 images",
            id="beyond-data",
        ),
    ],
)
def test_bad_train_observer_options_exit_2_with_one_line(capsys, argv, fragment) -> None:
    subset = str(require_cifar_subset())
    code = main(["train", "--data", subset, *TRAIN, "--opt", "sgd", "--steps", "2", *argv])
    _one_line(code, *capsys.readouterr(), fragment)
