"""Weight snapshots and sharpness in the training loop: the steps kept (the last one
included), the memory budget, checkpoints loaded with weights_only=True, resuming equal
to a straight run, sharpness records with their optimizers' thresholds, and what a job
hands a page. Real CIFAR-10 images from the shared subset."""

from __future__ import annotations

import math

import pytest
import torch

from optlab.train import snapshots as snapshots_module
from optlab.train.checkpoint import load_checkpoint, resume, save_checkpoint
from optlab.train.data import LoadedData, load_cifar10
from optlab.train.jobs import JobRegistry
from optlab.train.models import build_model
from optlab.train.planes import flat_parameters
from optlab.train.run import TrainingSession
from optlab.train.snapshots import Snapshots
from tests.support.resources import require_cifar_subset
from tests.support.training import tiny_train_config

SGD, ADAM = "sgd:lr=0.05,momentum=0.9", "adam:lr=0.002"


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def data() -> LoadedData:
    return load_cifar10(require_cifar_subset(), download=False, synthetic=False)


def config(*slots: str, **changes):
    return tiny_train_config(*(slots or (SGD, ADAM)), test_limit=32, **changes)


def trained(cfg, data) -> TrainingSession:
    session = TrainingSession(cfg, data)
    for _ in session.run():
        pass
    return session


def test_snapshots_are_kept_every_k_steps_and_at_the_last(data):
    session = trained(config(steps=7, snapshot_every=3), data)
    snaps = session.snapshots
    assert snaps.steps == [0, 3, 6, 7]
    sgd, adam = snaps.weights()
    assert sgd.shape == adam.shape == (4, sum(p.numel() for p in session.models[0].parameters()))
    assert sgd.dtype == torch.float32 and sgd.device.type == "cpu"
    # Step 0 is the shared initial weights; the last row is where each model is now.
    assert torch.equal(sgd[0], flat_parameters(build_model("seednet", 0)))
    assert torch.equal(sgd[0], adam[0])
    for rows, model in zip((sgd, adam), session.models, strict=True):
        assert torch.equal(rows[-1], flat_parameters(model))
        assert not torch.equal(rows[-2], rows[-1])


def test_the_latest_snapshot_follows_the_model_between_k_steps(data):
    session = TrainingSession(config(steps=7, snapshot_every=4), data)
    for _ in range(2):
        session.run_step()
    assert session.snapshots.steps == [0, 2]
    assert torch.equal(session.snapshots.weights()[1][-1], flat_parameters(session.models[1]))
    session.run_step()
    assert session.snapshots.steps == [0, 3]


def test_past_the_budget_every_second_snapshot_goes_and_k_doubles():
    n_opt, n_params = 2, 10
    row = n_opt * n_params * 4
    snaps = Snapshots(n_opt, n_params, every=1, budget_bytes=5 * row)  # 4 stored + latest
    recorded = {}
    for step in range(21):
        weights = [torch.full((n_params,), float(step + 100 * i)) for i in range(n_opt)]
        recorded[step] = weights
        snaps.record(step, weights)
        assert snaps.nbytes <= 5 * row
        stored = snaps.steps[:-1] if snaps.steps[-1] % snaps.every else snaps.steps
        assert stored == list(range(0, stored[-1] + 1, snaps.every)), snaps.steps
        assert snaps.steps[0] == 0 and snaps.steps[-1] == step
    assert snaps.every == 8 and snaps.steps == [0, 8, 16, 20]
    for i, rows in enumerate(snaps.weights()):
        expected = torch.stack([recorded[s][i] for s in snaps.steps])
        assert torch.equal(rows, expected)


def test_the_session_keeps_its_snapshots_within_the_cap(data, monkeypatch):
    n_params = sum(p.numel() for p in build_model("seednet", 0).parameters())
    budget = 6 * 2 * n_params * 4  # 5 stored + the latest, for two optimizers
    monkeypatch.setattr(snapshots_module, "BUDGET_BYTES", budget)
    session = trained(config(steps=11, snapshot_every=1), data)
    assert session.snapshots.nbytes <= budget
    assert session.snapshots.steps == [0, 4, 8, 11]


def test_checkpoint_holds_the_snapshots_and_resuming_equals_a_straight_run(
    data, tmp_path, monkeypatch
):
    n_params = sum(p.numel() for p in build_model("seednet", 0).parameters())
    # Small enough that the interval doubles before and after the save.
    monkeypatch.setattr(snapshots_module, "BUDGET_BYTES", 5 * 2 * n_params * 4)
    cfg = config(steps=12, snapshot_every=1, sharpness_every=3, sharpness_images=16)
    straight = trained(cfg, data)

    first = TrainingSession(cfg, data)
    for _ in range(6):
        first.run_step()
    path = tmp_path / "run.pt"
    save_checkpoint(first, path)
    raw = torch.load(path, weights_only=True)
    assert raw["snapshots"]["steps"] == first.snapshots.steps and raw["snapshots"]["steps"][0] == 0
    assert [tuple(w.shape) for w in raw["snapshots"]["weights"]] == [
        (len(first.snapshots.steps), n_params)
    ] * 2
    assert [len(r) for r in raw["sharpness"]] == [2, 2]

    second = TrainingSession(cfg, data)
    resume(second, load_checkpoint(path))
    assert second.sharpness == first.sharpness
    for _ in second.run():
        pass
    assert second.snapshots.steps == straight.snapshots.steps
    assert second.snapshots.every == straight.snapshots.every
    for a, b in zip(second.snapshots.weights(), straight.snapshots.weights(), strict=True):
        assert torch.equal(a, b)
    assert [[r.step for r in rs] for rs in second.sharpness] == [[3, 6, 9, 12]] * 2


def test_sharpness_is_measured_every_k_steps_and_at_the_last_with_the_thresholds(data):
    cfg = config("sgd:lr=0.1", SGD, ADAM, steps=5, sharpness_every=2, sharpness_images=32)
    session = trained(cfg, data)
    plain, momentum, adam = session.sharpness
    assert [r.step for r in plain] == [r.step for r in adam] == [2, 4, 5]
    assert all(r.threshold == pytest.approx(2 / 0.1) for r in plain)
    assert all(r.threshold == pytest.approx((2 + 2 * 0.9) / 0.05) for r in momentum)
    assert all(r.threshold is None for r in adam)
    assert all(r.threshold_preconditioned == pytest.approx(3.8 / (0.1 * 0.002)) for r in adam)
    for record in (*plain, *momentum, *adam):
        assert math.isfinite(record.lambda_max) and record.lambda_max > 0
    assert all(r.lambda_max_preconditioned > 0 for r in adam)
    assert session.sharpness_s > 0 and session.train_s > 0


def test_sharpness_on_more_images_than_the_run_trains_on_is_refused(data):
    with pytest.raises(ValueError, match="sharpness_images: 300 asked for, but the run trains"):
        TrainingSession(config(sharpness_every=2, sharpness_images=300), data)
    with pytest.raises(ValueError, match="snapshot_every"):
        config(snapshot_every=0)
    with pytest.raises(ValueError, match="sharpness_images"):
        config(sharpness_every=1, sharpness_images=10**6)


def test_configs_without_the_new_settings_read_back_equal():
    cfg = config()
    assert "snapshot_every" not in cfg.to_dict() and "sharpness_images" not in cfg.to_dict()
    on = config(snapshot_every=5, sharpness_every=3, sharpness_images=64)
    assert type(on).from_dict(on.to_dict()) == on


def test_a_job_hands_the_page_its_sharpness_and_snapshots(data):
    cfg = config(steps=4, snapshot_every=2, sharpness_every=2, sharpness_images=16)
    job = JobRegistry().submit(cfg, data)
    assert job.wait(120)
    snapshot = job.poll()
    assert snapshot.state == "done", snapshot.message
    assert snapshot.snapshot_steps == (0, 2, 4)
    assert [[r.step for r in records] for records in snapshot.sharpness] == [[2, 4], [2, 4]]
    view = job.snapshot_weights()
    assert view.steps == snapshot.snapshot_steps
    assert torch.equal(view.rows[0][0], view.rows[1][0])  # θ₀, shared
    assert torch.equal(view.rows[1][-1], flat_parameters(job.session.models[1]))
