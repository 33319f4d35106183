"""An exported CNN script freezes the features and adds them as the engine does.

The run trains on a CIFAR-format folder written here from the synthetic set (the
script reads only the official python batches), so it needs no download; the
script runs in a fresh interpreter with nothing of OptLab importable, and its
saved weights must equal the engine's to the bit.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import torch

from optlab.optim.config import OptimizerConfig
from optlab.optim.plans import Change
from optlab.optim.schedulers import SchedulerConfig
from optlab.script.runtime.train import TRAIN_FILES
from optlab.script.train import train_script
from optlab.train.data import load_cifar10
from optlab.train.freeze import Freeze
from optlab.train.run import EvalRecord, TrainingSession, TrainRunConfig, TrainSlot
from tests.script.test_export import ALLOWED_IMPORTS, finish, imported_modules, run_script
from tests.support.training import tiny_data

# No one_thread fixture: the script runs with torch's default thread count, and the
# engine must too for the last bit of a convolution's sums to agree.


def cifar_folder(root: Path) -> Path:
    """A ``cifar-10-batches-py`` folder holding a small synthetic set, in the official format."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir()
    data = tiny_data(n_train=80, n_test=32, seed=7)
    per_file = len(data.train.labels) // len(TRAIN_FILES)
    parts = [
        (data.train.images[i * per_file : (i + 1) * per_file], data.train.labels, i * per_file)
        for i in range(len(TRAIN_FILES))
    ]
    for name, (images, labels, start) in zip(TRAIN_FILES, parts, strict=True):
        rows = labels[start : start + len(images)].tolist()
        batch = {b"data": images.reshape(len(images), -1).numpy(), b"labels": rows}
        (folder / name).write_bytes(pickle.dumps(batch, protocol=2))
    test = {
        b"data": data.test.images.reshape(len(data.test.images), -1).numpy(),
        b"labels": data.test.labels.tolist(),
    }
    (folder / "test_batch").write_bytes(pickle.dumps(test, protocol=2))
    return folder


def freeze_config() -> TrainRunConfig:
    return TrainRunConfig(
        slots=(
            TrainSlot(
                OptimizerConfig.from_text("sgd:lr=0.02,momentum=0.9"),
                10.0,
                SchedulerConfig.from_text("cosine"),
                freeze=Freeze(1, epoch=True),
            ),
            TrainSlot(
                OptimizerConfig.from_text("adam:lr=0.002"),
                changes=(Change(7, "lr", 0.5, multiply=True, group="features"),),
                freeze=Freeze(6),
            ),
        ),
        batch_size=16,
        steps=None,
        epochs=2,
        train_limit=None,
        test_limit=None,
        eval_every=4,
        device="cpu",
    )


def test_the_script_of_a_frozen_run_reproduces_the_engine_bit_for_bit(tmp_path: Path) -> None:
    folder = cifar_folder(tmp_path)
    cfg = freeze_config()
    source = train_script(cfg, str(folder), data_kind="folder")
    assert imported_modules(source) <= ALLOWED_IMPORTS
    assert "optimizer.add_param_group(" in source and "p.requires_grad_(False)" in source
    path = tmp_path / "train_script.py"
    path.write_text(source, encoding="utf-8")
    proc = run_script(path, str(folder), "--save", "weights.pt")

    session = TrainingSession(cfg, load_cifar10(data_dir=folder))
    records = list(session.run())
    assert session.per_epoch == 5 and [len(o.param_groups) for o in session.optimizers] == [2, 2]
    _, document = finish(proc)
    saved = torch.load(tmp_path / "weights.pt", weights_only=True)
    for i, run in enumerate(document["runs"]):
        last = [r for r in records if isinstance(r, EvalRecord) and r.index == i][-1]
        assert run["status"] == "done" and run["steps"] == 10
        assert run["final_loss"] == last.test_loss and run["final_test_acc"] == last.test_acc
        for name, value in session.models[i].state_dict().items():
            assert torch.equal(saved["models"][i][name], value), (i, name)


def test_a_script_without_a_freeze_has_no_freeze_code() -> None:
    cfg = TrainRunConfig(slots=(TrainSlot(OptimizerConfig.from_text("sgd:lr=0.02")),))
    source = train_script(cfg, None, data_kind="folder")
    assert "def freeze_features" not in source and '"freeze": None' in source


@pytest.mark.parametrize("freeze", ["3", "epoch1"])
def test_the_freeze_step_is_written_as_configured(freeze: str) -> None:
    slot = TrainSlot(OptimizerConfig.from_text("adam"), freeze=Freeze.from_text(freeze))
    source = train_script(TrainRunConfig(slots=(slot,), epochs=2), None, data_kind="folder")
    at = Freeze.from_text(freeze)
    assert f'"freeze": ({at.at}, {at.epoch}),' in source
