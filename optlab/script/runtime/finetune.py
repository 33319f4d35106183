"""Lesson 4's loop: per-layer learning rates, and fine-tuning that adds the features later.

`fine_tune` is torch.optim's per-parameter options example on the CNN: two
named param groups, ``features`` and ``classifier``, each with its own lr.
Fine-tuning, the features start frozen: the optimizer is built on the
classifier group alone, and at step N the features are unfrozen and handed to
it with ``optimizer.add_param_group``, as the CNN lab's freeze does
(`optlab.train.freeze`, which also carries a scheduler's per-group settings
over to the new group; the lesson has no scheduler). Like the other lesson
loops it needs only torch, and returns plain lists and numbers (the script
prints them as JSON).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor, nn

from optlab.script.runtime.train import build_model
from optlab.train.data.batches import CIFAR10_MEAN, CIFAR10_STD, normalise


def distance(params: list[Tensor], initial: list[Tensor]) -> float:
    """How far ``params`` are from ``initial``: the norm of all their differences."""
    gaps = [(p.detach() - p0).flatten() for p, p0 in zip(params, initial, strict=True)]
    return torch.linalg.vector_norm(torch.cat(gaps)).item()


def train_groups(
    make_model: Callable[[], nn.Module],
    images: Tensor,
    labels: Tensor,
    run: dict,
    steps: int,
    batch_size: int,
    seed: int,
    classifier_lr_mult: float,
) -> dict:
    """One run with a ``features`` and a ``classifier`` param group, each with its own lr.

    The features' lr is the optimizer's ``lr`` (in ``run["kwargs"]``), the
    classifier's ``classifier_lr_mult`` times it. With ``run["freeze_at"]``
    N, the features are frozen (``requires_grad=False``) and left out of the
    optimizer for the first N steps, then added with ``add_param_group``
    before step N + 1; None trains both groups from the start. Step k trains
    on the k-th batch of ``images``; a loss that is no longer finite ends
    the run.

    Returns:
        ``losses``, the batch losses; ``groups``, the param groups (name and
        lr) each ``step()`` used; ``moved``, how far each group's weights
        were from their initial values after each step; ``added_state``, how
        many of the features' parameters had optimizer state right after
        ``add_param_group`` (None: no add).
    """
    model = build_model(make_model, seed)
    features = list(model.features.parameters())
    classifier = list(model.classifier.parameters())
    lr, freeze_at = run["kwargs"]["lr"], run["freeze_at"]
    # A group without "lr" takes the optimizer's (the features'); the classifier has its own.
    head = {"name": "classifier", "params": classifier, "lr": lr * classifier_lr_mult}
    if freeze_at is None:
        groups = [{"name": "features", "params": features}, head]
    else:
        for p in features:
            p.requires_grad_(False)  # frozen: backward() computes no gradient for them
        groups = [head]  # the optimizer only knows the classifier
    optimizer = run["class"](groups, **run["kwargs"])
    initial = {
        "features": [p.detach().clone() for p in features],
        "classifier": [p.detach().clone() for p in classifier],
    }
    loss_fn = nn.CrossEntropyLoss()
    losses, used, added_state = [], [], None
    moved = {"features": [], "classifier": []}
    for step in range(steps):
        if step == freeze_at:
            # Fine-tuning is over: unfreeze the features and add them as a param
            # group. Options it does not give (lr, momentum...) come from the
            # optimizer's defaults, the arguments it was built with.
            for p in features:
                p.requires_grad_(True)
            optimizer.add_param_group({"name": "features", "params": features})
            added_state = sum(p in optimizer.state for p in features)
        used.append([{"name": g["name"], "lr": g["lr"]} for g in optimizer.param_groups])
        batch = slice(step * batch_size, (step + 1) * batch_size)
        x = normalise(images[batch], CIFAR10_MEAN, CIFAR10_STD)
        optimizer.zero_grad()
        loss = loss_fn(model(x), labels[batch])
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        moved["features"].append(distance(features, initial["features"]))
        moved["classifier"].append(distance(classifier, initial["classifier"]))
        if not math.isfinite(losses[-1]):
            break
    return {
        "label": run["label"],
        "losses": losses,
        "groups": used,
        "moved": moved,
        "added_state": added_state,
    }


def fine_tune(
    make_model: Callable[[], nn.Module],
    images: Tensor,
    labels: Tensor,
    runs: list,
    steps: int,
    batch_size: int,
    seed: int,
    classifier_lr_mult: float,
) -> dict:
    """Every run of ``runs`` (see `train_groups`) from the same initial weights, on the
    same batches: with the features from the start, or frozen and added later."""
    return {
        "runs": [
            train_groups(
                make_model, images, labels, run, steps, batch_size, seed, classifier_lr_mult
            )
            for run in runs
        ]
    }
