"""Tests for ``python -m optlab train``: the CNN comparison from the command line.

Runs are tiny (synthetic shapes, 128 training and 64 test images, batches of
32, a few steps on the CPU). The JSON is checked against the engine itself
(`TrainingSession` on the same config and data) as the oracle, and resuming a
checkpoint against a straight run.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

from optlab.cli import main
from optlab.cli import train as train_command
from optlab.optim.config import OptimizerConfig
from optlab.train.data import LoadedData
from optlab.train.data.synthetic import SYNTHETIC_CLASSES, synthetic_cifar
from optlab.train.freeze import Freeze
from optlab.train.run import DONE, TrainingSession, TrainRecord, TrainRunConfig, TrainSlot
from tests.support.resources import CIFAR_SUBSET, ROOT, require_cifar_subset

SUBSET = CIFAR_SUBSET
TINY = [
    "--synthetic",
    "--train-limit",
    "128",
    "--test-limit",
    "64",
    "--batch-size",
    "32",
    "--device",
    "cpu",
]
TWO = ["--opt", "sgd:lr=0.05,momentum=0.9", "--opt", "adam:lr=0.002"]
TOP_KEYS = {"config", "torch_version", "device", "data_source", "runs"}
RUN_KEYS = {"optimizer", "hparams", "status", "history", "evals", "final_test_acc"}
HISTORY_KEYS = {"step", "epoch", "train_loss", "smooth_loss", "train_acc", "lr", "lrs"}
HISTORY_KEYS |= {"grad_norm"}


def _reject_constant(name: str) -> Any:
    raise ValueError(f"non-standard JSON constant {name}")


def train(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """Runs ``main(["train", ...])`` in-process; returns (status, stdout, stderr)."""
    code = main(["train", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def run_json(capsys: pytest.CaptureFixture[str], out: Path, *argv: str) -> dict[str, Any]:
    """A successful run's --out file, parsed strictly (no NaN or Infinity)."""
    code, stdout, stderr = train(capsys, *argv, "--out", str(out))
    assert code == 0, stderr
    assert f"wrote {out}" in stdout
    return json.loads(out.read_text(encoding="utf-8"), parse_constant=_reject_constant)


def column(run: dict[str, Any], key: str) -> list[Any]:
    return [h[key] for h in run["history"]]


class _Capture:
    """stdout/stderr of an in-process run, for module-scoped fixtures (no capsys there)."""

    out = err = ""

    def call(self, argv: list[str], out: Path) -> int:
        o, e = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(o), contextlib.redirect_stderr(e):
            code = main([*argv, "--out", str(out)])
        self.out, self.err = o.getvalue(), e.getvalue()
        return code


@pytest.fixture(scope="module")
def two_optimizers(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One 4-step SGD-vs-Adam run, shared by the schema tests."""
    out = tmp_path_factory.mktemp("train") / "run.json"
    capture = _Capture()
    code = capture.call(["train", *TINY, *TWO, "--steps", "4", "--eval-every", "2"], out)
    assert code == 0, capture.err
    return {
        "json": json.loads(out.read_text(encoding="utf-8"), parse_constant=_reject_constant),
        "stdout": capture.out,
        "stderr": capture.err,
    }


# --- JSON schema and values -------------------------------------------------------------


def test_out_has_the_contract_keys(two_optimizers: dict[str, Any]) -> None:
    data = two_optimizers["json"]
    assert set(data) >= TOP_KEYS
    assert data["device"] == "cpu"
    assert data["torch_version"] == torch.__version__
    assert "synthetic" in data["data_source"]
    assert data["config"]["steps"] == 4 and data["config"]["epochs"] is None
    assert [r["optimizer"] for r in data["runs"]] == ["sgd", "adam"]
    assert data["runs"][0]["hparams"]["momentum"] == 0.9
    for run in data["runs"]:
        assert set(run) >= RUN_KEYS
        assert run["status"] == DONE
        assert column(run, "step") == [1, 2, 3, 4]
        assert all(set(h) >= HISTORY_KEYS for h in run["history"])
        assert column(run, "lr") == [lrs[0] for lrs in column(run, "lrs")]
        assert [e["step"] for e in run["evals"]] == [2, 4]
        assert 0.0 <= run["final_test_acc"] <= 1.0
        assert run["final_test_acc"] == run["evals"][-1]["test_acc"]
        assert all(math.isfinite(v) for v in column(run, "train_loss"))


def test_out_values_equal_the_engine(two_optimizers: dict[str, Any]) -> None:
    train_set, test_set = synthetic_cifar(128, 64, seed=0)
    data = LoadedData(train_set, test_set, SYNTHETIC_CLASSES, "synthetic", "test")
    slots = tuple(TrainSlot(OptimizerConfig.from_text(t)) for t in TWO[1::2])
    cfg = TrainRunConfig(
        slots,
        batch_size=32,
        steps=4,
        epochs=None,
        train_limit=128,
        test_limit=64,
        eval_every=2,
        device="cpu",
    )
    assert two_optimizers["json"]["config"] == cfg.to_dict()
    records = [r for r in TrainingSession(cfg, data).run() if isinstance(r, TrainRecord)]
    for i, run in enumerate(two_optimizers["json"]["runs"]):
        mine = [r for r in records if r.index == i]
        # The raw loss of the step's batch, before the update; smoothed apart.
        assert column(run, "train_loss") == [r.train_loss for r in mine]
        assert column(run, "smooth_loss") == [r.smooth_loss for r in mine]
        assert column(run, "train_acc") == [r.train_acc for r in mine]
        assert column(run, "grad_norm") == [r.grad_norm for r in mine]
        assert column(run, "train_loss") != column(run, "smooth_loss")


def test_progress_goes_to_stderr_and_the_table_to_stdout(two_optimizers: dict[str, Any]) -> None:
    err = two_optimizers["stderr"].splitlines()
    assert err[0].startswith("data: synthetic shapes, not CIFAR-10")
    assert "\r" not in two_optimizers["stderr"]  # not a terminal: whole lines
    assert err[-1].startswith("step 4/4")
    assert "SGD" in err[-1] and "Adam" in err[-1] and "images/s" in err[-1]
    out = two_optimizers["stdout"]
    # The run's one images/s, as the page defines it; per optimizer only its ms/step.
    (speed,) = [line for line in out.splitlines() if line.startswith("speed: ")]
    assert re.match(r"speed: [\d,]+ images/s \(training images per second", speed), speed
    for heading in ("final test acc", "best test acc", "ms/step", "status"):
        assert heading in out
    assert out.count("images/s") == 1
    rows = [line for line in out.splitlines() if line.startswith(("SGD (", "Adam ("))]
    assert len(rows) == 2 and all(row.rstrip().endswith("done") for row in rows)
    acc = two_optimizers["json"]["runs"][1]["final_test_acc"]
    assert f"{acc:.1%}" in rows[1]


def test_the_default_length_is_one_epoch(capsys, tmp_path) -> None:
    data = run_json(capsys, tmp_path / "run.json", *TINY, "--opt", "adam")
    assert (data["config"]["steps"], data["config"]["epochs"]) == (None, 1)
    assert column(data["runs"][0], "step") == [1, 2, 3, 4]  # 128 images / 32


def test_a_scheduler_changes_the_lr(capsys, tmp_path) -> None:
    args = [*TINY, "--opt", "sgd:lr=0.1", "--steps", "4"]
    constant = run_json(capsys, tmp_path / "constant.json", *args)["runs"][0]
    stepped = run_json(capsys, tmp_path / "step.json", *args, "--scheduler", "step:step_size=2")
    run = stepped["runs"][0]
    assert run["scheduler"] == "step:step_size=2"
    assert column(constant, "lr") == [0.1] * 4
    lrs = column(run, "lr")
    assert lrs[0] == 0.1 and lrs[-1] <= 0.01 + 1e-12
    assert lrs == sorted(lrs, reverse=True) and any(lr == pytest.approx(0.01) for lr in lrs)


def test_classifier_lr_mult_gives_the_classifier_its_own_lr(capsys, tmp_path) -> None:
    args = [*TINY, "--opt", "adam:lr=0.001", "--classifier-lr-mult", "10", "--steps", "4"]
    run = run_json(capsys, tmp_path / "run.json", *args)["runs"][0]
    assert run["classifier_lr_mult"] == 10
    assert column(run, "lrs") == [[0.001, pytest.approx(0.01)]] * 4


def test_freeze_features_trains_the_classifier_alone_then_adds_the_features(
    capsys, tmp_path
) -> None:
    args = [*TINY, *TWO, "--freeze-features", "2", "--steps", "4", "--classifier-lr-mult", "2"]
    runs = run_json(capsys, tmp_path / "run.json", *args)["runs"]
    for run, lr in zip(runs, (0.05, 0.002), strict=True):
        assert run["freeze"] == "2" and run["features_added_at"] == 3
        # null: the features had no param group; then their lr beside the classifier's.
        assert column(run, "lrs")[:2] == [[None, pytest.approx(2 * lr)]] * 2
        assert column(run, "lrs")[2:] == [[pytest.approx(lr), pytest.approx(2 * lr)]] * 2


def test_freeze_features_reaches_the_optimizers_that_can_add_a_group_only(capsys) -> None:
    # Muon splits its weights with its companion and L-BFGS has one group: the freeze
    # is theirs to skip, as the CNN lab hides it for them; SGD beside them is frozen.
    parser = argparse.ArgumentParser()
    train_command.add_parser(parser.add_subparsers())
    argv = ["train", *TINY, "--opt", "sgd", "--opt", "muon", "--opt", "lbfgs"]
    cfg = train_command.train_config(parser.parse_args([*argv, "--freeze-features", "2"]), None)
    assert [s.freeze for s in cfg.slots] == [Freeze(2), None, None]
    # Given to Muon alone, it is refused with the reason.
    code, _, err = train(capsys, *TINY, "--opt", "muon", "--freeze-features", "1", "--steps", "2")
    assert code == 2 and "freeze: a Muon slot splits its weights" in err


def test_rest_names_the_optimizer_beside_muon(capsys, tmp_path) -> None:
    args = [*TINY, "--opt", "muon:lr=0.02", "--opt", "adam", "--steps", "2"]
    data = run_json(capsys, tmp_path / "run.json", *args, "--rest", "adamw:lr=0.002")
    muon, adam = data["config"]["slots"]
    assert muon["companion"] == "adamw:lr=0.002" and "companion" not in adam
    # Muon's classifier group, then AdamW's features and classifier groups.
    assert column(data["runs"][0], "lrs")[0] == [0.02, 0.002, 0.002]
    code, _, err = train(capsys, *TINY, "--opt", "adam", "--rest", "adamw", "--steps", "1")
    assert code == 2 and "--rest: no optimizer of 2-D weights only" in err


def test_a_diverged_optimizer_stops_and_the_other_goes_on(capsys, tmp_path) -> None:
    args = [*TINY, "--opt", "sgd:lr=1000,momentum=0.9", "--opt", "adam:lr=0.002"]
    out = tmp_path / "run.json"
    code, stdout, stderr = train(capsys, *args, "--steps", "6", "--out", str(out))
    assert code == 0, stderr
    sgd, adam = json.loads(out.read_text(encoding="utf-8"), parse_constant=_reject_constant)["runs"]
    assert sgd["status"] == "diverged"
    assert sgd["diverged_at"] == len(sgd["history"]) < 6
    assert sgd["history"][-1]["train_loss"] is None  # NaN or inf: null in JSON
    assert (adam["status"], len(adam["history"])) == (DONE, 6)
    assert f"diverged at step {sgd['diverged_at']}" in stdout


# --- checkpoint and resume --------------------------------------------------------------

#: SGD with momentum and Adam carry optimizer state; augmentation uses its own
#: RNG; the plateau scheduler is stepped by test evaluations (every 2 steps),
#: so a checkpoint taken before a step's evaluation would not resume exactly.
RESUMABLE = [*TINY, *TWO, "--augment", "--eval-every", "2"]
RESUMABLE += ["--scheduler", "plateau:patience=0,factor=0.5"]


def weights(path: Path) -> list[dict[str, torch.Tensor]]:
    return torch.load(path, weights_only=True)["models"]


@pytest.fixture(scope="module")
def straight(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """8 steps straight, checkpointed every 4: keeps each checkpoint written."""
    folder = tmp_path_factory.mktemp("straight")
    saved: list[int] = []
    real = train_command.save_checkpoint

    def keep_copies(session: TrainingSession, path: str) -> None:
        real(session, path)
        shutil.copy(path, folder / f"at{session.step}.pt")
        saved.append(session.step)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(train_command, "save_checkpoint", keep_copies)
        capture = _Capture()
        argv = ["train", *RESUMABLE, "--steps", "8", "--checkpoint", str(folder / "run.pt")]
        code = capture.call([*argv, "--checkpoint-every", "4"], folder / "run.json")
    assert code == 0, capture.err
    return {
        "folder": folder,
        "saved": saved,
        "json": json.loads((folder / "run.json").read_text(encoding="utf-8")),
    }


def assert_same_end(resumed: dict[str, Any], straight_run: dict[str, Any]) -> None:
    for mine, theirs in zip(resumed["runs"], straight_run["runs"], strict=True):
        # The checkpoint carries the history: the resumed run reports all of it.
        assert column(mine, "step") == [1, 2, 3, 4, 5, 6, 7, 8]
        assert column(mine, "epoch") == [0, 0, 0, 0, 1, 1, 1, 1]
        assert mine["history"] == theirs["history"]
        assert mine["evals"] == theirs["evals"]
        assert mine["final_test_acc"] == theirs["final_test_acc"]
        assert mine["history"][-1]["train_loss"] == theirs["history"][-1]["train_loss"]


def test_checkpoint_every_n_steps_then_at_the_end(straight: dict[str, Any]) -> None:
    assert straight["saved"] == [4, 8]


def test_a_longer_resumed_run_equals_a_straight_one(capsys, tmp_path, straight) -> None:
    code, _, err = train(capsys, *RESUMABLE, "--steps", "4", "--checkpoint", str(tmp_path / "c.pt"))
    assert code == 0, err
    resumed = run_json(
        capsys,
        tmp_path / "resumed.json",
        *RESUMABLE,
        "--steps",
        "8",
        "--resume",
        str(tmp_path / "c.pt"),
        "--checkpoint",
        str(tmp_path / "end.pt"),
    )
    assert resumed["resumed_from"] == {"checkpoint": str(tmp_path / "c.pt"), "step": 4}
    assert resumed["config"]["steps"] == 8
    assert_same_end(resumed, straight["json"])
    for mine, theirs in zip(
        weights(tmp_path / "end.pt"), weights(straight["folder"] / "at8.pt"), strict=True
    ):
        assert mine.keys() == theirs.keys()
        assert all(torch.equal(mine[k], theirs[k]) for k in mine)


def test_an_interrupted_run_resumes_from_its_periodic_checkpoint(capsys, tmp_path, straight):
    # Without --steps a resumed run goes on to the checkpoint's own end (8).
    at4 = straight["folder"] / "at4.pt"
    resumed = run_json(capsys, tmp_path / "resumed.json", *RESUMABLE, "--resume", str(at4))
    assert_same_end(resumed, straight["json"])


# --- data sources -----------------------------------------------------------------------


def need_subset() -> None:
    require_cifar_subset()


SMALL_REAL = ["--opt", "sgd:lr=0.01", "--steps", "2", "--batch-size", "16", "--device", "cpu"]
SMALL_REAL += ["--train-limit", "64", "--test-limit", "32"]


def test_data_folder_is_used_and_reported(capsys, tmp_path) -> None:
    need_subset()
    data = run_json(capsys, tmp_path / "run.json", "--data", str(SUBSET), *SMALL_REAL)
    assert str(SUBSET) in data["data_source"]
    assert data["data_kind"] == "folder"
    assert len(data["runs"][0]["history"]) == 2


def test_without_a_source_the_environment_folder_comes_first(capsys, tmp_path, monkeypatch):
    need_subset()
    monkeypatch.setenv("OPTLAB_DATA_DIR", str(SUBSET.parent))  # the parent works too
    code, _, err = train(capsys, *SMALL_REAL)
    assert code == 0, err
    assert err.splitlines()[0] == f"data: CIFAR-10 from folder {SUBSET}"


# --- bad input: exit 2, one line --------------------------------------------------------


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished 2-step Adam run with a cosine schedule."""
    path = tmp_path_factory.mktemp("ckpt") / "c.pt"
    capture = _Capture()
    argv = ["train", *TINY, "--opt", "adam:lr=0.002", "--scheduler", "cosine", "--steps", "2"]
    assert capture.call([*argv, "--checkpoint", str(path)], path.with_suffix(".json")) == 0
    return path


ADAM = [*TINY, "--opt", "adam:lr=0.002", "--steps", "2"]
BAD_INPUT = [
    pytest.param([*ADAM, "--model", "resnet"], "unknown model 'resnet'", id="model"),
    pytest.param([*TINY, "--opt", "adam:lr=-1"], "lr", id="spec-value"),
    pytest.param([*TINY, "--opt", "nosuch"], "nosuch", id="spec-key"),
    pytest.param([*ADAM, "--data", "x"], "not allowed with argument --synthetic", id="2-sources"),
    pytest.param([*ADAM, "--epochs", "1"], "not allowed with argument --steps", id="2-lengths"),
    pytest.param([*TINY, "--opt", "adam", "--steps", "0"], "steps: ", id="steps-0"),
    pytest.param([*ADAM[1:], "--data", "/no/such/folder"], "/no/such/folder", id="no-folder"),
    pytest.param([*ADAM, "--batch-size", "256"], "larger than the 128 images", id="batch"),
    pytest.param([*ADAM, "--scheduler", "nosuch"], "unknown scheduler", id="scheduler"),
    pytest.param([*ADAM, "--device", "tpu"], "device", id="device"),
    pytest.param([*ADAM, "--checkpoint-every", "2"], "needs --checkpoint", id="every-alone"),
    pytest.param([*ADAM, "--train-limit", "few"], "--train-limit", id="limit"),
    pytest.param([*ADAM, "--out", "/no/such/folder/run.json"], "--out", id="out-folder"),
    pytest.param(
        [*TINY, "--opt", "lbfgs", "--classifier-lr-mult", "10"], "one lr only", id="lbfgs-mult"
    ),
    pytest.param([*ADAM, "--freeze-features", "soon"], "epochN or off", id="freeze-text"),
    pytest.param([*ADAM, "--freeze-features", "2"], "not before the run's end", id="freeze-2"),
    pytest.param(
        [*TINY, "--opt", "lbfgs", "--freeze-features", "1"], "one param group", id="lbfgs-freeze"
    ),
]


@pytest.mark.parametrize(("argv", "fragment"), BAD_INPUT)
def test_bad_input_exits_2_with_one_line(capsys, argv: list[str], fragment: str) -> None:
    code, out, err = train(capsys, *argv)
    assert code == 2
    assert out == ""
    assert err.count("\n") == 1 and err.startswith("optlab: error: "), err
    assert fragment in err


RESUME_ARGS = [*TINY, "--opt", "adam:lr=0.002", "--scheduler", "cosine"]
BAD_RESUME = [
    pytest.param([*RESUME_ARGS, "--steps", "2"], "at step 2 already", id="already-there"),
    pytest.param([*RESUME_ARGS, "--steps", "4"], "cannot change length", id="cosine-longer"),
    pytest.param(
        [*RESUME_ARGS, "--steps", "4", "--seed", "1"], "--seed 0 there, 1 here", id="other-seed"
    ),
    pytest.param(
        [*TINY, "--opt", "sgd:lr=0.1", "--scheduler", "cosine", "--steps", "4"],
        "--opt adam:lr=0.002 --scheduler cosine there, sgd:lr=0.1 --scheduler cosine here",
        id="other-optimizer",
    ),
]


@pytest.mark.parametrize(("argv", "fragment"), BAD_RESUME)
def test_bad_resume_exits_2_with_one_line(capsys, checkpoint, argv, fragment) -> None:
    code, out, err = train(capsys, *argv, "--resume", str(checkpoint))
    assert (code, out) == (2, "")
    assert err.count("\n") == 1 and err.startswith("optlab: error: "), err
    assert fragment in err


def test_a_corrupt_checkpoint_exits_2_with_one_line(capsys, tmp_path, checkpoint) -> None:
    broken = tmp_path / "broken.pt"
    broken.write_bytes(checkpoint.read_bytes()[:1000])
    for path, fragment in ((broken, "not a readable"), (tmp_path / "missing.pt", "cannot read")):
        code, out, err = train(capsys, *RESUME_ARGS, "--resume", str(path))
        assert (code, out) == (2, "")
        assert err.count("\n") == 1 and err.startswith("optlab: error: checkpoint: "), err
        assert fragment in err


# --- the real entry point ---------------------------------------------------------------


def run_module(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "optlab", "train", *argv],
        cwd=ROOT,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=120,
    )


def test_python_m_optlab_train(tmp_path) -> None:
    out = tmp_path / "run.json"
    proc = run_module(*TINY, *TWO, "--steps", "2", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stderr.startswith("data: synthetic")
    assert "step 2/2" in proc.stderr
    assert "final test acc" in proc.stdout
    runs = json.loads(out.read_text(encoding="utf-8"))["runs"]
    assert [len(r["history"]) for r in runs] == [2, 2]
    bad = run_module(*TINY, "--opt", "adam", "--steps", "0")
    assert bad.returncode == 2
    assert bad.stderr.count("\n") == 1 and bad.stderr.startswith("optlab: error: steps")
