"""Muon on the CNN: torch.optim.Muon on the 2-D weights, AdamW on the rest, as one slot.

The oracle is the loop torch's Muon docs show, written here by hand: two
optimizers over ``p.ndim == 2`` and ``p.ndim != 2``, both zeroed, one
backward, ``muon.step()`` then ``adamw.step()``.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.optim import lr_scheduler

from optlab.optim.config import OptimizerConfig
from optlab.optim.plans import Change
from optlab.optim.schedulers import SchedulerConfig
from optlab.optim.split import SplitOptimizer
from optlab.train.autosave import RunStore
from optlab.train.checkpoint import load_checkpoint, restore, resume, save_checkpoint
from optlab.train.config import TrainRunConfig, TrainSlot, default_companion
from optlab.train.data import LoadedData
from optlab.train.data.batches import CIFAR10_MEAN, CIFAR10_STD, normalise
from optlab.train.models import build_model
from optlab.train.optimizers import ownership
from optlab.train.report import param_group_rows, state_rows
from optlab.train.run import TrainingSession, TrainRecord
from tests.support.training import tiny_data, tiny_train_config

MUON = OptimizerConfig.create("muon", lr=0.02)
ADAMW = OptimizerConfig.create("adamw", lr=1e-3, betas=(0.85, 0.99), weight_decay=0.05)
STEPS = 10  # 8 steps an epoch: the data order is redrawn once
CHOICE = {"source": "synthetic", "dir": ""}


@pytest.fixture(scope="module")
def data() -> LoadedData:
    return tiny_data()


def _config(slot: TrainSlot, **changes) -> TrainRunConfig:
    return tiny_train_config(slot, steps=STEPS, channels_last=False, **changes)


def _by_hand(data: LoadedData, cfg: TrainRunConfig, cosine: bool) -> nn.Module:
    """torch's Muon docs loop: Muon on p.ndim == 2, AdamW on the rest, on the engine's
    batches (its seeded order, redrawn each epoch)."""
    model = build_model(cfg.model, cfg.seed)
    muon = torch.optim.Muon([p for p in model.parameters() if p.ndim == 2], **MUON.kwargs)
    adamw = torch.optim.AdamW([p for p in model.parameters() if p.ndim != 2], **ADAMW.kwargs)
    schedulers = (
        [lr_scheduler.CosineAnnealingLR(o, T_max=STEPS) for o in (muon, adamw)] if cosine else []
    )
    images = data.train.images[: cfg.train_limit]
    labels = data.train.labels[: cfg.train_limit]
    order_gen = torch.Generator().manual_seed(cfg.seed)
    per_epoch = len(labels) // cfg.batch_size
    order = torch.randperm(len(labels), generator=order_gen)
    loss_fn = nn.CrossEntropyLoss()
    for step in range(STEPS):
        if step and step % per_epoch == 0:
            order = torch.randperm(len(labels), generator=order_gen)
        at = step % per_epoch
        idx = order[at * cfg.batch_size : (at + 1) * cfg.batch_size]
        x = normalise(images[idx], CIFAR10_MEAN, CIFAR10_STD)
        muon.zero_grad()
        adamw.zero_grad()
        loss_fn(model(x), labels[idx]).backward()
        muon.step()
        adamw.step()
        for scheduler in schedulers:
            scheduler.step()
    return model


@pytest.mark.parametrize("cosine", [False, True], ids=["constant", "cosine"])
def test_the_slot_steps_as_torchs_muon_and_adamw_by_hand_bit_for_bit(data, cosine) -> None:
    scheduler = SchedulerConfig.from_text("cosine" if cosine else "none")
    cfg = _config(TrainSlot(MUON, scheduler=scheduler, companion=ADAMW))
    session = TrainingSession(cfg, data)
    records = list(session.run())
    theirs = _by_hand(data, cfg, cosine)
    ours = session.models[0]
    for (name, a), (_, b) in zip(ours.named_parameters(), theirs.named_parameters(), strict=True):
        assert torch.equal(a, b), name
    first = next(r for r in records if isinstance(r, TrainRecord))
    # Muon's classifier group, then AdamW's features and classifier groups.
    assert first.lrs == (0.02, 1e-3, 1e-3)
    assert first.momenta == (0.95, 0.85, 0.85)


def test_save_and_resume_mid_run_equals_an_unbroken_run(data, tmp_path) -> None:
    slot = TrainSlot(MUON, scheduler=SchedulerConfig.from_text("cosine"), companion=ADAMW)
    cfg = _config(slot, augment=True)
    straight = TrainingSession(cfg, data)
    list(straight.run())
    first = TrainingSession(cfg, data)
    for _ in range(4):
        first.run_step()
    save_checkpoint(first, tmp_path / "muon.ckpt")
    second = TrainingSession(cfg, data)
    restore(second, load_checkpoint(tmp_path / "muon.ckpt"))
    list(second.run())
    for a, b in zip(second.models[0].parameters(), straight.models[0].parameters(), strict=True):
        assert torch.equal(a, b)
    # Both parts' state came back: Muon's buffers and AdamW's moments.
    assert isinstance(second.optimizers[0], SplitOptimizer)
    for ours, theirs in zip(second.optimizers[0].parts, straight.optimizers[0].parts, strict=True):
        for p, q in zip(ours.state, theirs.state, strict=True):
            for key, value in ours.state[p].items():
                assert torch.equal(value, theirs.state[q][key]), key


def test_seednet_gives_muon_its_two_linear_weights(data) -> None:
    owned = ownership(build_model("seednet", 0))
    assert owned.matrices == ("classifier.1.weight", "classifier.2.weight")
    assert (owned.matrix_count, owned.total) == (66_176, 145_578)
    assert "features.0.weight" in owned.rest and "classifier.1.bias" in owned.rest
    session = TrainingSession(_config(TrainSlot(MUON)), data)
    split = session.optimizers[0]
    assert isinstance(split, SplitOptimizer)
    assert isinstance(split.matrices, torch.optim.Muon)
    assert isinstance(split.rest, torch.optim.AdamW)
    muon_params = {id(p) for g in split.matrices.param_groups for p in g["params"]}
    assert sum(p.numel() for p in session.models[0].parameters() if id(p) in muon_params) == (
        66_176
    )


def test_the_companion_defaults_are_torchs_docs_example() -> None:
    slot = TrainSlot(MUON)
    assert slot.companion == default_companion()
    assert slot.companion.kwargs["lr"] == 3e-4 and slot.companion.kwargs["weight_decay"] == 0.01
    assert slot.label == "Muon (lr=0.02) + AdamW (lr=0.0003)"
    cfg = _config(TrainSlot(MUON, companion=ADAMW))
    again = TrainRunConfig.from_dict(cfg.to_dict())
    assert again == cfg and again.slots[0].companion == ADAMW
    assert "companion" not in _config(TrainSlot(ADAMW)).to_dict()["slots"][0]


def test_bad_companions_and_schedulers_are_refused_clearly() -> None:
    with pytest.raises(ValueError, match="companion: SGD trains every parameter itself"):
        TrainSlot(OptimizerConfig.create("sgd"), companion=ADAMW)
    with pytest.raises(ValueError, match="companion: L-BFGS cannot train"):
        TrainSlot(MUON, companion=OptimizerConfig.create("lbfgs"))
    with pytest.raises(ValueError, match=r"OneCycleLR cannot drive Muon .*cycle_momentum=false"):
        TrainSlot(MUON, scheduler=SchedulerConfig.from_text("onecycle"))
    TrainSlot(MUON, scheduler=SchedulerConfig.from_text("onecycle:cycle_momentum=false"))


def test_live_changes_reach_the_groups_that_have_the_option(data) -> None:
    session = TrainingSession(_config(TrainSlot(MUON, companion=ADAMW)), data)
    session.run_step()
    session.request_change(0, Change(1, "momentum", 0.5))
    session.request_change(0, Change(1, "lr", 0.1, multiply=True))
    session.run_step()
    groups = session.optimizers[0].param_groups
    assert [g.get("momentum") for g in groups] == [0.5, None, None]
    assert [g["lr"] for g in groups] == pytest.approx([0.002, 1e-4, 1e-4])
    momentum, lr = session.applied
    assert momentum.groups == ("classifier",) and momentum.values == (0.5,)
    assert lr.groups == ("classifier", "features", "classifier")


def test_the_state_view_names_each_parameters_optimizer(data) -> None:
    session = TrainingSession(_config(TrainSlot(MUON, companion=ADAMW)), data)
    session.run_step()
    split, model = session.optimizers[0], session.models[0]
    rows = state_rows(split, model)
    kinds = {(r["parameter"], r["state"]) for r in rows}
    assert ("classifier.1.weight", "momentum_buffer") in kinds
    assert ("features.0.weight", "exp_avg") in kinds
    assert ("classifier.1.weight", "exp_avg") not in kinds
    owners = [r["optimizer"] for r in param_group_rows(split)]
    assert owners == ["Muon", "AdamW", "AdamW"]


def test_an_autosaved_muon_run_resumes_exactly(data, tmp_path) -> None:
    """The server's autosave (a run folder), loaded by another server, goes on as an
    unbroken run: the config's companion and both optimizers' state come back."""
    cfg = _config(TrainSlot(MUON, companion=ADAMW), augment=True)
    unbroken = TrainingSession(cfg, data)
    list(unbroken.run())
    killed = TrainingSession(cfg, data)
    for _ in range(5):
        killed.run_step()
    RunStore(tmp_path, server="dead").save("20261204-120000-aaaaaa", killed, CHOICE)
    store = RunStore(tmp_path, server="new")
    _, state = store.load("20261204-120000-aaaaaa")
    again = TrainRunConfig.from_dict(state["config"])
    assert again.slots[0].companion == ADAMW
    session = TrainingSession(again, data)
    resume(session, state)
    list(session.run())
    for a, b in zip(session.models[0].parameters(), unbroken.models[0].parameters(), strict=True):
        assert torch.equal(a, b)
