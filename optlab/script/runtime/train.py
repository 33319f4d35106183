"""An exported CNN run: the textbook training loop, one optimizer at a time.

The script defines ``SETTINGS`` (batch size, length, subsets, augmentation,
clipping, evaluation, seed, device, the CIFAR-10 folder), ``make_model`` and
``RUNS`` (per optimizer: a ``setup`` that builds the optimizer and its
scheduler over a model, the planned changes and the features' freeze), then
calls `main`. Each
optimizer trains its own copy from the same initial weights on the same
batches in the same order, as in the engine (`optlab.train.run`), whose
numbers it reproduces on the run's device.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn
from torch.optim import lr_scheduler

from optlab.script.runtime.changes import apply_changes
from optlab.train.data.batch_file import read_batch
from optlab.train.data.batches import CIFAR10_MEAN, CIFAR10_STD, augment, normalise
from optlab.train.freeze import add_features
from optlab.train.models import init_parameters
from optlab.train.run import EVAL_CHUNK, resolve_device

TRAIN_FILES = ("data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5")


def load_cifar10(folder: Path, settings: dict) -> tuple[torch.Tensor, ...]:
    """Train images and labels, test images and labels, cut to the run's subsets."""
    train = [read_batch(folder / name) for name in TRAIN_FILES]
    test_images, test_labels = read_batch(folder / "test_batch")
    train_limit, test_limit = settings["train_limit"], settings["test_limit"]
    train_images = torch.cat([images for images, _ in train])[:train_limit]
    train_labels = torch.cat([labels for _, labels in train])[:train_limit]
    return train_images, train_labels, test_images[:test_limit], test_labels[:test_limit]


def build_model(make: Callable[[], nn.Module], seed: int) -> nn.Module:
    """The model with the initial weights ``seed`` gives: the same for every optimizer."""
    # On the meta device the constructor allocates nothing and draws nothing;
    # init_parameters then draws every weight from a generator seeded with seed.
    with torch.device("meta"):
        model = make()
    model.to_empty(device="cpu")
    init_parameters(model, torch.Generator(device="cpu").manual_seed(seed))
    return model


@torch.no_grad()
def evaluate(
    model: nn.Module, images: torch.Tensor, labels: torch.Tensor, channels_last: bool
) -> tuple[float, float]:
    """Test loss (mean cross-entropy) and accuracy."""
    device = next(model.parameters()).device
    model.eval()
    total_loss, correct = 0.0, 0
    for start in range(0, len(labels), EVAL_CHUNK):
        x = normalise(images[start : start + EVAL_CHUNK].to(device), CIFAR10_MEAN, CIFAR10_STD)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        y = labels[start : start + EVAL_CHUNK].to(device)
        logits = model(x)
        total_loss += nn.functional.cross_entropy(logits, y, reduction="sum").item()
        correct += int((logits.argmax(1) == y).sum())
    model.train()
    return total_loss / len(labels), correct / len(labels)


def take_step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    loss_fn: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    uses_closure: bool,
    clip: float | None,
) -> torch.Tensor:
    """One optimizer step on one batch; returns the batch's loss before the step."""

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        if clip is not None:
            torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
        return loss

    if uses_closure:
        return optimizer.step(closure)  # L-BFGS calls it as often as it needs
    loss = closure()
    optimizer.step()
    return loss


def train(
    run: dict,
    make: Callable[[], nn.Module],
    data: tuple[torch.Tensor, ...],
    device: torch.device,
    settings: dict,
) -> tuple[dict, nn.Module]:
    """Trains a copy of the model with one optimizer; returns its results and the model."""
    train_images, train_labels, test_images, test_labels = data
    batch_size, seed = settings["batch_size"], settings["seed"]
    per_epoch = len(train_labels) // batch_size  # the last partial batch is dropped
    if per_epoch < 1:
        sys.exit(f"error: batches of {batch_size} need more than {len(train_labels)} images")
    steps = settings["steps"]
    total_steps = steps if steps is not None else settings["epochs"] * per_epoch
    channels_last = settings["channels_last"] and device.type == "cpu"
    # torch's L-BFGS flattens gradients with .view(-1), which channels-last
    # conv weights do not allow: its model keeps the default layout.
    use_layout = channels_last and not run["closure"]
    layout = torch.channels_last if use_layout else torch.contiguous_format
    model = build_model(make, seed).to(device, memory_format=layout)
    optimizer, scheduler = run["setup"](model, total_steps)
    freeze = run["freeze"]  # (N, in epochs): the features frozen until then, or None
    plateau = isinstance(scheduler, lr_scheduler.ReduceLROnPlateau)
    loss_fn = nn.CrossEntropyLoss()
    order_gen = torch.Generator().manual_seed(seed)  # the data order
    augment_gen = torch.Generator().manual_seed(seed + 1)  # crops and flips

    status, test_loss, test_acc, step = "done", None, None, 0
    while step < total_steps and status == "done":
        order = torch.randperm(len(train_labels), generator=order_gen)  # each epoch anew
        for position in range(min(per_epoch, total_steps - step)):
            if freeze is not None and step == (freeze[0] * per_epoch if freeze[1] else freeze[0]):
                # Fine-tuning is over: the features join as a param group, before the
                # changes due at this step (which may edit them).
                add_features(model, optimizer, scheduler, run["classifier_lr_mult"])
            apply_changes(optimizer, run["changes"], step, per_epoch)
            idx = order[position * batch_size : (position + 1) * batch_size]
            images = train_images[idx]
            if settings["augment"]:
                images = augment(images, augment_gen)
            x = normalise(images.to(device), CIFAR10_MEAN, CIFAR10_STD)
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            y = train_labels[idx].to(device)
            clip = settings["clip_grad_norm"]
            loss = take_step(model, optimizer, loss_fn, x, y, run["closure"], clip)
            if scheduler is not None and not plateau:
                scheduler.step()
            step += 1
            if not math.isfinite(loss.item()):
                status = "diverged"
                print(f"{run['label']}: diverged at step {step} (loss {loss.item()})")
                break
            eval_every = settings["eval_every"]
            if step == total_steps or step % eval_every == 0 or step % per_epoch == 0:
                test_loss, test_acc = evaluate(model, test_images, test_labels, channels_last)
                print(
                    f"{run['label']}: step {step}, "
                    f"test loss {test_loss:.4f}, accuracy {test_acc:.1%}"
                )
                if plateau:
                    scheduler.step(test_loss)
    finite = test_loss is not None and math.isfinite(test_loss)
    result = {
        "optimizer": run["optimizer"],
        "label": run["label"],
        "status": status,
        "steps": step,
        "final": None,
        "final_loss": test_loss if finite else None,
        "final_test_acc": test_acc,
    }
    return result, model


def main(runs: list, make: Callable[[], nn.Module], settings: dict) -> None:
    """Reads the command line, trains every run, prints one line of JSON at the end."""
    folder_name, data_env = settings["folder_name"], settings["data_env"]
    parser = argparse.ArgumentParser(description=settings["description"])
    parser.add_argument("data", nargs="?", help=f"the {folder_name} folder (or its parent)")
    parser.add_argument("--device", default=settings["device"], help="auto, cpu, cuda or mps")
    parser.add_argument("--save", metavar="PATH", help="write the trained weights here")
    args = parser.parse_args()
    named = args.data or os.environ.get(data_env) or settings["data_dir"]
    if not named:
        sys.exit(f"error: name the {folder_name} folder: python <this file> FOLDER")
    folder = Path(named).expanduser()
    if not (folder / "test_batch").exists() and (folder / folder_name).is_dir():
        folder = folder / folder_name
    if not (folder / "test_batch").is_file():
        sys.exit(f"error: {folder} is not a {folder_name} folder")
    if torch.__version__ != settings["torch"]:
        print(
            f"note: made with torch {settings['torch']}, this is torch "
            f"{torch.__version__}: the last digits may differ",
            file=sys.stderr,
        )
    data = load_cifar10(folder, settings)
    device = resolve_device(args.device)
    results, models = [], []
    for run in runs:
        result, model = train(run, make, data, device, settings)
        results.append(result)
        models.append(model)
    if args.save:
        weights = [{k: v.cpu() for k, v in m.state_dict().items()} for m in models]
        torch.save({"labels": [r["label"] for r in results], "models": weights}, args.save)
        print(f"wrote {args.save}")
    print(json.dumps({"runs": results}, allow_nan=False))
