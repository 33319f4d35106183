"""Lesson 4's claims, checked against hand-written torch loops and the CNN lab's link.

Per-layer learning rates are torch.optim's per-parameter options; fine-tuning
freezes the features and adds them with ``optimizer.add_param_group`` at
step N. Here the same runs are written out with torch alone, asserting at
each step what the lesson says: one param group and unchanged features
before N, two groups with the optimizer's lr for the features after, and no
optimizer state for the features when they join.
"""

from __future__ import annotations

import pytest
import torch

from optlab.lessons import get_lesson, run_lesson
from optlab.lessons.finetune import BATCH, OPTIMIZERS, STEPS, slots
from optlab.links import train_from_params
from optlab.script.lessons import first_images
from optlab.script.runtime.train import build_model
from optlab.train.data.batches import normalise
from optlab.train.freeze import Freeze
from optlab.train.models import get_model_spec
from tests.lessons.test_lessons import cifar_folder

pytestmark = pytest.mark.usefixtures("one_thread")

LESSON = get_lesson("per-layer-lr")


def moved(params: list[torch.Tensor], initial: list[torch.Tensor]) -> float:
    return torch.linalg.vector_norm(
        torch.cat([(p.detach() - p0).flatten() for p, p0 in zip(params, initial, strict=True)])
    ).item()


def hand_written(
    cls: type[torch.optim.Optimizer], kwargs: dict, clr: float, at: int | None
) -> tuple[list[float], dict[str, list[float]]]:
    """The lesson's run with torch alone: add_param_group before step ``at`` + 1."""
    images, labels = first_images(cifar_folder(), STEPS * BATCH)
    model = build_model(get_model_spec("seednet").factory, 0)
    features, classifier = list(model.features.parameters()), list(model.classifier.parameters())
    initial = [p.detach().clone() for p in features], [p.detach().clone() for p in classifier]
    head = {"params": classifier, "lr": kwargs["lr"] * clr}
    if at is None:
        opt = cls([{"params": features}, head], **kwargs)
    else:
        for p in features:
            p.requires_grad_(False)
        opt = cls([head], **kwargs)
    losses, distances = [], {"features": [], "classifier": []}
    for step in range(STEPS):
        if step == at:
            # Before the add: one group, and the features exactly as initialised.
            assert len(opt.param_groups) == 1
            assert all(torch.equal(p, p0) for p, p0 in zip(features, initial[0], strict=True))
            for p in features:
                p.requires_grad_(True)
            opt.add_param_group({"params": features})
            assert len(opt.param_groups) == 2
            assert opt.param_groups[1]["lr"] == kwargs["lr"]
            assert opt.param_groups[0]["lr"] == kwargs["lr"] * clr
            assert not any(p in opt.state for p in features)  # their state starts empty
        batch = slice(step * BATCH, (step + 1) * BATCH)
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(normalise(images[batch])), labels[batch])
        loss.backward()
        opt.step()
        losses.append(loss.item())
        distances["features"].append(moved(features, initial[0]))
        distances["classifier"].append(moved(classifier, initial[1]))
    if at is not None:
        assert all(p in opt.state for p in features)  # created by their first step
    return losses, distances


@pytest.mark.parametrize("optimizer", list(OPTIMIZERS))
def test_the_runs_equal_torch_loops_that_call_add_param_group_at_n(optimizer: str) -> None:
    values = {"at": 4, "clr": 3.0, "optimizer": optimizer}
    images = first_images(cifar_folder(), 128)
    run = run_lesson(LESSON, values, images=images)
    from_start, frozen = run.results[0]["runs"]
    key, kwargs = OPTIMIZERS[optimizer]
    cls = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam}[key]
    for result, at in ((from_start, None), (frozen, 4)):
        losses, distances = hand_written(cls, kwargs, 3.0, at)
        assert result["losses"] == losses
        assert result["moved"] == distances
    # What the charts and findings read: one group, then two; the features at rest.
    assert [len(groups) for groups in frozen["groups"]] == [1] * 4 + [2] * (STEPS - 4)
    assert frozen["groups"][4] == [
        {"name": "classifier", "lr": kwargs["lr"] * 3.0},
        {"name": "features", "lr": kwargs["lr"]},
    ]
    assert from_start["groups"][0] == [
        {"name": "features", "lr": kwargs["lr"]},
        {"name": "classifier", "lr": kwargs["lr"] * 3.0},
    ]
    assert frozen["moved"]["features"][:4] == [0.0] * 4 and frozen["moved"]["features"][4] > 0
    assert frozen["added_state"] == 0 and from_start["added_state"] is None
    features_chart = dict(run.figures())["per-layer-features"]
    assert list(features_chart.data[1].y[:4]) == [0.0] * 4
    findings = run.findings()
    assert "**1 param group**" in findings and "**2 groups**" in findings
    assert f"features lr={kwargs['lr']:.3g}" in findings


def test_the_lesson_its_script_and_its_link_share_the_cnn_lab_slots() -> None:
    values = LESSON.values({"at": 5, "clr": 20.0, "optimizer": "Adam"})
    from_start, frozen = slots(values)
    assert from_start.freeze is None and frozen.freeze == Freeze(5)
    assert from_start.classifier_lr_mult == frozen.classifier_lr_mult == 20.0
    (program,) = LESSON.programs(values)
    arguments = dict(program.arguments)
    assert [r["freeze_at"] for r in arguments["runs"]] == [None, 5]
    assert arguments["runs"][1]["kwargs"] == {"lr": frozen.optimizer.kwargs["lr"]}
    assert arguments["classifier_lr_mult"] == 20.0
    (link,) = LESSON.links(values)
    assert link.page == "cnn-lab" and link.params is not None
    assert link.params["freeze"] == ["off", "5"] and link.params["clr"] == ["20.0", "20.0"]
    cfg, data = train_from_params(
        {k: v if isinstance(v, list) else [v] for k, v in link.params.items()}
    )
    assert data == "cifar10" and cfg.slots == (from_start, frozen)
    assert cfg.batch_size == BATCH


def test_without_cifar_the_lesson_says_so_and_draws_nothing() -> None:
    run = run_lesson(LESSON)
    assert run.results == (None,) and run.figures() == []
    assert "which this server does not have" in run.findings()
    with pytest.raises(ValueError, match=f"at: must be between 1 and {STEPS - 1}"):
        LESSON.values({"at": STEPS})
