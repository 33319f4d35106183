"""The training engine: fairness, lockstep exactness, schedulers, divergence, checkpoints."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from optlab.optim.config import OptimizerConfig
from optlab.optim.schedulers import SCHEDULERS, SchedulerConfig
from optlab.train.checkpoint import (
    CheckpointError,
    load_checkpoint,
    read_checkpoint,
    restore,
    save_checkpoint,
)
from optlab.train.data import LoadedData
from optlab.train.data.synthetic import SYNTHETIC_CLASSES, synthetic_cifar
from optlab.train.run import (
    DIVERGED,
    DONE,
    EvalRecord,
    TrainingSession,
    TrainRecord,
    TrainRunConfig,
    TrainSlot,
    run_training,
)
from tests.support.resources import ROOT
from tests.support.training import tiny_data, tiny_train_config


@pytest.fixture(scope="module")
def data() -> LoadedData:
    return tiny_data()


def slot(text: str, **kwargs) -> TrainSlot:
    return TrainSlot(OptimizerConfig.from_text(text), **kwargs)


def config(*slots: TrainSlot, **kwargs) -> TrainRunConfig:
    return tiny_train_config(*slots, **kwargs)


def weights(session: TrainingSession, i: int) -> list[torch.Tensor]:
    return [p.detach().clone() for p in session.models[i].parameters()]


def comparable(records) -> list[tuple]:
    """Records without the measured speed, which differs from run to run."""
    return [tuple(getattr(r, f) for f in type(r).__slots__ if f != "step_s") for r in records]


def train_losses(records, index: int) -> list[float]:
    return [r.train_loss for r in records if isinstance(r, TrainRecord) and r.index == index]


def test_lockstep_pair_equals_two_separate_runs(data):
    sgd, adam = slot("sgd:lr=0.05,momentum=0.9"), slot("adam:lr=0.002")
    together = TrainingSession(config(sgd, adam, augment=True), data)
    records = list(together.run())
    for i, alone_slot in enumerate((sgd, adam)):
        alone = TrainingSession(config(alone_slot, augment=True), data)
        alone_records = list(alone.run())
        assert train_losses(records, i) == train_losses(alone_records, 0)
        for a, b in zip(weights(together, i), weights(alone, 0), strict=True):
            assert torch.equal(a, b)


def test_all_copies_start_from_the_same_weights_and_learn(data):
    session = TrainingSession(config(slot("sgd:lr=0.05,momentum=0.9"), slot("adam:lr=0.002")), data)
    for a, b in zip(weights(session, 0), weights(session, 1), strict=True):
        assert torch.equal(a, b)
    records = list(session.run())
    train = [r for r in records if isinstance(r, TrainRecord)]
    assert [r.step for r in train if r.index == 0] == [1, 2, 3, 4, 5, 6]
    assert all(r.status == DONE for r in train if r.step == 6)
    evals = [r for r in records if isinstance(r, EvalRecord)]
    assert sorted({r.step for r in evals}) == [3, 6]
    assert all(0 <= r.test_acc <= 1 and r.test_loss > 0 for r in evals)
    assert all(r.step_s > 0 and r.update_ratio > 0 and r.grad_norm > 0 for r in train)


def test_divergence_stops_one_optimizer_and_spares_the_other(data):
    wild, calm = slot("sgd:lr=1000"), slot("adam:lr=0.002")
    records = list(run_training(config(wild, calm), data))
    wild_records = [r for r in records if isinstance(r, TrainRecord) and r.index == 0]
    assert wild_records[-1].status == DIVERGED and len(wild_records) < 6
    alone = list(run_training(config(calm), data))
    assert train_losses(records, 1) == train_losses(alone, 0)


def test_scheduler_lr_sequence_equals_torchs(data):
    sched = SchedulerConfig.from_text("step:step_size=2,gamma=0.5")
    records = list(run_training(config(slot("sgd:lr=0.1", scheduler=sched)), data))
    lrs = [r.lrs[0] for r in records if isinstance(r, TrainRecord)]
    reference = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    torch_sched = torch.optim.lr_scheduler.StepLR(reference, step_size=2, gamma=0.5)
    expected = []
    for _ in range(6):
        expected.append(reference.param_groups[0]["lr"])
        reference.step()
        torch_sched.step()
    # A record reports the lr its step used, before the scheduler moved on.
    assert lrs == pytest.approx(expected)


@pytest.mark.parametrize("spec", SCHEDULERS, ids=lambda s: s.key)
def test_every_scheduler_builds_and_runs(spec, data):
    records = list(
        run_training(config(slot("sgd:lr=0.05", scheduler=SchedulerConfig(spec.key))), data)
    )
    assert records[-1].status == DONE if isinstance(records[-1], TrainRecord) else True


def test_classifier_gets_its_own_learning_rate(data):
    records = list(run_training(config(slot("sgd:lr=0.01", classifier_lr_mult=10.0)), data))
    first = next(r for r in records if isinstance(r, TrainRecord))
    assert first.lrs == pytest.approx((0.01, 0.1))
    with pytest.raises(ValueError, match="classifier_lr_mult"):
        slot("lbfgs", classifier_lr_mult=2.0)


def test_lbfgs_trains_through_its_closure(data):
    records = list(run_training(config(slot("lbfgs:lr=0.1,max_iter=3"), steps=3), data))
    train = [r for r in records if isinstance(r, TrainRecord)]
    assert len(train) == 3 and train[-1].status == DONE


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"steps": 0}, "steps"),
        ({"steps": 5, "epochs": 1}, "exactly one"),
        ({"batch_size": 0}, "batch_size"),
        ({"device": "tpu"}, "device"),
        ({"clip_grad_norm": -1.0}, "clip_grad_norm"),
        ({"model": "resnet"}, "unknown model"),
        ({"eval_every": 0}, "eval_every"),
    ],
)
def test_bad_config_names_the_field(kwargs, fragment):
    with pytest.raises(ValueError, match=fragment):
        config(slot("adam"), **kwargs)


def test_checkpoint_resume_equals_a_straight_run(data, tmp_path):
    sched = SchedulerConfig.from_text("cosine")
    slots = (slot("sgd:lr=0.05,momentum=0.9", scheduler=sched), slot("adam:lr=0.002"))
    cfg = config(*slots, steps=8, augment=True)
    straight = TrainingSession(cfg, data)
    straight_records = list(straight.run())

    first = TrainingSession(cfg, data)
    head = []
    for record in first.run():  # stop after both optimizers' step 4
        head.append(record)
        if isinstance(record, TrainRecord) and (record.step, record.index) == (4, 1):
            break
    path = tmp_path / "run.ckpt"
    save_checkpoint(first, path)

    second = TrainingSession(cfg, data)
    restore(second, load_checkpoint(path))
    tail = list(second.run())
    assert comparable(head + tail) == comparable(straight_records)
    # The checkpoint carried the first half's records: the history is whole.
    assert comparable(second.history) == comparable(straight.history)
    for i in range(2):
        for a, b in zip(weights(second, i), weights(straight, i), strict=True):
            torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)


def test_checkpoint_resumes_in_a_new_process(data, tmp_path):
    cfg = config(slot("adam:lr=0.002"), steps=6)
    straight = TrainingSession(cfg, data)
    list(straight.run())
    first = TrainingSession(cfg, data)
    for _record in first.run():
        if first.step == 3:
            break
    save_checkpoint(first, tmp_path / "half.ckpt")
    script = f"""
import torch
from optlab.optim.config import OptimizerConfig
from optlab.train.checkpoint import load_checkpoint, restore
from optlab.train.data import LoadedData
from optlab.train.data.synthetic import SYNTHETIC_CLASSES, synthetic_cifar
from optlab.train.run import TrainingSession, TrainRunConfig, TrainSlot
train, test = synthetic_cifar(n_train=256, n_test=64, seed=3)
data = LoadedData(train, test, tuple(SYNTHETIC_CLASSES), "synthetic", "test")
cfg = TrainRunConfig((TrainSlot(OptimizerConfig.from_text("adam:lr=0.002")),), batch_size=32,
    steps=6, epochs=None, train_limit=256, test_limit=64, eval_every=3, device="cpu")
session = TrainingSession(cfg, data)
restore(session, load_checkpoint({str(tmp_path / "half.ckpt")!r}))
list(session.run())
torch.save(session.models[0].state_dict(), {str(tmp_path / "final.pt")!r})
"""
    subprocess.run([sys.executable, "-c", script], cwd=ROOT, check=True, timeout=120)
    resumed = torch.load(tmp_path / "final.pt", weights_only=True)
    for name, value in straight.models[0].state_dict().items():
        torch.testing.assert_close(resumed[name], value, rtol=1e-6, atol=1e-7)


def test_bad_checkpoints_get_a_clear_message(data, tmp_path):
    with pytest.raises(CheckpointError, match="not a readable"):
        read_checkpoint(b"not a checkpoint at all")
    buffer = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(3)}, buffer)
    with pytest.raises(CheckpointError, match="not an OptLab training checkpoint"):
        load_checkpoint(buffer)
    with pytest.raises(CheckpointError, match="cannot read"):
        load_checkpoint(tmp_path / "missing.ckpt")
    # A checkpoint of another comparison is refused before anything is restored.
    session = TrainingSession(config(slot("adam:lr=0.002"), steps=2), data)
    list(session.run())
    save_checkpoint(session, tmp_path / "adam.ckpt")
    other = TrainingSession(config(slot("sgd:lr=0.1"), steps=2), data)
    with pytest.raises(CheckpointError, match="different configuration"):
        restore(other, load_checkpoint(tmp_path / "adam.ckpt"))


def test_pickled_code_in_a_checkpoint_is_not_run(tmp_path):
    class Evil:
        def __reduce__(self):
            return (Path.touch, (tmp_path / "pwned",))

    path = tmp_path / "evil.ckpt"
    torch.save({"x": Evil()}, path)
    with pytest.raises(CheckpointError, match="refused: it holds Python objects"):
        load_checkpoint(path)
    assert not (tmp_path / "pwned").exists()


# --- configs from checkpoints -------------------------------------------------------------


def test_config_from_dict_inverts_to_dict():
    cfg = config(
        slot("sgd:lr=0.05,momentum=0.9", classifier_lr_mult=10.0),
        slot("adam:lr=0.002", scheduler=SchedulerConfig("step", (("step_size", 3),))),
        augment=True,
        clip_grad_norm=1.5,
    )
    assert TrainRunConfig.from_dict(cfg.to_dict()) == cfg


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"slots": "adam"}, "slots: expected a list"),
        ({"slots": [{"optimizer": "nope"}]}, "unknown optimizer"),
        ({"slots": [{"optimizer": "adam", "scheduler": "cosine:eta_min=x"}]}, "eta_min"),
        ({"batch_size": "64"}, "batch_size"),
        ({"model": 3}, "unknown model 3"),
        ({"surprise": 1}, "unknown setting 'surprise'"),
    ],
)
def test_config_from_dict_refuses_damaged_settings(change, fragment):
    saved = {**config(slot("adam")).to_dict(), **change}
    with pytest.raises(ValueError, match=fragment):
        TrainRunConfig.from_dict(saved)
    with pytest.raises(ValueError, match="mapping"):
        TrainRunConfig.from_dict(["not", "a", "dict"])


def test_resuming_on_other_images_is_refused(data, tmp_path):
    from optlab.train.checkpoint import resume

    cfg = config(slot("adam:lr=0.002"))
    first = TrainingSession(cfg, data)
    list(first.run())
    train, test = synthetic_cifar(n_train=256, n_test=64, seed=4)  # same sizes, other images
    other = LoadedData(train, test, tuple(SYNTHETIC_CLASSES), "synthetic", "other")
    longer = config(slot("adam:lr=0.002"), steps=8)
    with pytest.raises(CheckpointError, match="other images"):
        resume(TrainingSession(longer, other), first.state_dict())
    resume(TrainingSession(longer, data), first.state_dict())  # the same images are fine


def test_any_failure_to_parse_a_file_is_a_checkpoint_error():
    for junk in (b"", b"this is not a torch file", b"PK\x03\x04" + b"\x00" * 40, bytes(range(256))):
        with pytest.raises(CheckpointError, match="checkpoint: "):
            read_checkpoint(junk)
