"""The lessons' loops: each one the textbook torch.optim code a lesson is about.

A lesson's chart is drawn from what one of these functions returns, and the
code the lesson shows is the exported script that calls the very same
function (`optlab.script.lessons`), so what a learner reads is what ran.
Each function takes the loss ``f`` of a point (a 2-D surface) or a model,
plain numbers and optimizer classes, and returns plain lists and numbers
(the script prints them as JSON). They need only torch and the standard
library.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable

import torch
from torch import Tensor, nn

from optlab.script.runtime.train import build_model
from optlab.train.data.batches import CIFAR10_MEAN, CIFAR10_STD, normalise


def train(f: Callable[[Tensor], Tensor], start: list, run: dict, steps: int) -> dict:
    """The training loop on a point: zero_grad(), forward, backward(), step().

    ``run`` holds the optimizer's ``class`` and ``kwargs``, and ``zero_grad``:
    False forgets the call, so backward() adds each new gradient to the ones
    before (the gradients accumulate). Stops early when the loss or the point
    is no longer finite (a divergence).
    """
    xy = torch.tensor(start, dtype=torch.float64, requires_grad=True)
    optimizer = run["class"]([xy], **run["kwargs"])
    path, losses, grads = [xy.tolist()], [], []
    for _ in range(steps):
        if run["zero_grad"]:
            optimizer.zero_grad()  # forget it, and backward() adds to the old .grad
        loss = f(xy)  # forward
        loss.backward()  # xy.grad += d loss / d xy
        losses.append(loss.item())
        grads.append(math.hypot(*xy.grad.tolist()))
        optimizer.step()
        path.append(xy.tolist())
        if not all(math.isfinite(v) for v in [*path[-1], losses[-1], grads[-1]]):
            break
    return {"label": run["label"], "path": path, "losses": losses, "grad_norms": grads}


def compare(f: Callable[[Tensor], Tensor], start: list, runs: list, steps: int) -> dict:
    """Every run of ``runs`` from the same start, for the same number of steps."""
    return {"runs": [train(f, start, run, steps) for run in runs]}


def closure_steps(f: Callable[[Tensor], Tensor], start: list, kwargs: dict, steps: int) -> dict:
    """L-BFGS with step(closure): one step may call the closure several times.

    Every call of the closure is recorded (the step it served, the point and
    the loss there), so the evaluations per step can be counted and drawn.
    """
    xy = torch.tensor(start, dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS([xy], **kwargs)
    evaluations, counts = [], []  # every closure call; calls per step() so far

    def closure() -> Tensor:
        # L-BFGS calls this whenever it needs f and its gradient: in its line
        # search and its inner iterations, several times per step() in all.
        optimizer.zero_grad()
        loss = f(xy)
        loss.backward()
        evaluations.append([len(counts), *xy.tolist(), loss.item()])
        return loss

    path = [xy.tolist()]
    for _ in range(steps):
        before = len(evaluations)
        optimizer.step(closure)
        counts.append(len(evaluations) - before)
        path.append(xy.tolist())
    return {"path": path, "evaluations": evaluations, "counts": counts}


def change_lr(
    f: Callable[[Tensor], Tensor],
    start: list,
    run: dict,
    steps: int,
    at: int,
    new_lr: float,
    method: str,
) -> dict:
    """Changes the learning rate to ``new_lr`` before step ``at``, one of two ways.

    ``method`` "new optimizer" builds a new optimizer with the new lr (the
    tutorials' method 1: its momentum or moment buffers start from zero
    again); "param_groups" edits the lr of every param group (method 2: the
    state is kept). Returns the path, the losses and the optimizer's state
    (its buffers' names) right after the change.
    """
    xy = torch.tensor(start, dtype=torch.float64, requires_grad=True)
    optimizer = run["class"]([xy], **run["kwargs"])
    path, losses, state_at = [xy.tolist()], [], []
    for step in range(steps):
        if step == at:
            if method == "new optimizer":
                optimizer = run["class"]([xy], **{**run["kwargs"], "lr": new_lr})
            else:
                for group in optimizer.param_groups:
                    group["lr"] = new_lr
            state_at = sorted(optimizer.state[xy])
        optimizer.zero_grad()
        loss = f(xy)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        path.append(xy.tolist())
    return {"label": method, "path": path, "losses": losses, "state_at_change": state_at}


def scheduled(
    f: Callable[[Tensor], Tensor],
    start: list,
    run: dict,
    epochs: int,
    batches: int,
    step_size: int,
    gamma: float,
    per_batch: bool,
) -> dict:
    """StepLR stepped once per epoch (right), or by mistake once per batch.

    Each "batch" is one optimizer step on ``f``; an epoch is ``batches`` of
    them. Returns the lr each batch used and the losses.
    """
    xy = torch.tensor(start, dtype=torch.float64, requires_grad=True)
    optimizer = run["class"]([xy], **run["kwargs"])
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=step_size, gamma=gamma)
    lrs, losses, path = [], [], [xy.tolist()]
    for _ in range(epochs):
        for _ in range(batches):
            lrs.append(optimizer.param_groups[0]["lr"])
            optimizer.zero_grad()
            loss = f(xy)
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
            path.append(xy.tolist())
            if per_batch:
                scheduler.step()  # the mistake: step_size now counts batches
        if not per_batch:
            scheduler.step()  # once per epoch, after the epoch's batches
    label = "per batch (the mistake)" if per_batch else "per epoch"
    return {"label": label, "lrs": lrs, "losses": losses, "path": path}


def _describe_state(state: dict) -> dict:
    """A state_dict's ``state``, one entry per parameter: each buffer's values."""
    described = {}
    for index, buffers in state.items():
        described[str(index)] = {
            name: value.tolist() if isinstance(value, Tensor) else value
            for name, value in sorted(buffers.items())
        }
    return described


def resume(f: Callable[[Tensor], Tensor], start: list, run: dict, steps: int, stop_at: int) -> dict:
    """Stops after ``stop_at`` steps, saves, loads into a fresh optimizer and goes on.

    The same run never stopped is returned beside it: the two paths are equal
    when the state_dict round trip keeps everything the optimizer needs.
    """

    def one_step(xy: Tensor, optimizer: torch.optim.Optimizer) -> None:
        optimizer.zero_grad()
        f(xy).backward()
        optimizer.step()

    # Never stopped.
    xy = torch.tensor(start, dtype=torch.float64, requires_grad=True)
    optimizer = run["class"]([xy], **run["kwargs"])
    straight = [xy.tolist()]
    for _ in range(steps):
        one_step(xy, optimizer)
        straight.append(xy.tolist())

    # Stopped at stop_at: the point and the optimizer's state_dict to a file...
    xy = torch.tensor(start, dtype=torch.float64, requires_grad=True)
    optimizer = run["class"]([xy], **run["kwargs"])
    resumed = [xy.tolist()]
    for _ in range(stop_at):
        one_step(xy, optimizer)
        resumed.append(xy.tolist())
    file = io.BytesIO()
    torch.save({"xy": xy.detach(), "optimizer": optimizer.state_dict()}, file)
    # ...and back, into a new point and a fresh optimizer built the same way.
    file.seek(0)
    saved = torch.load(file, weights_only=True)
    xy = saved["xy"].clone().requires_grad_(True)
    optimizer = run["class"]([xy], **run["kwargs"])
    optimizer.load_state_dict(saved["optimizer"])
    # What was saved, read before the next steps update the buffers in place.
    state = _describe_state(optimizer.state_dict()["state"])
    for _ in range(steps - stop_at):
        one_step(xy, optimizer)
        resumed.append(xy.tolist())
    return {
        "straight": straight,
        "resumed": resumed,
        "state": state,
        "param_groups": [
            {k: v for k, v in group.items() if k != "params"}
            for group in saved["optimizer"]["param_groups"]
        ],
    }


def train_cnn(
    make_model: Callable[[], nn.Module],
    images: Tensor,
    labels: Tensor,
    runs: list,
    steps: int,
    batch_size: int,
    seed: int,
) -> dict:
    """The training loop on the CNN: the first ``steps`` batches of ``images``.

    Every run trains its own copy from the same initial weights on the same
    batches; ``zero_grad`` False forgets the call, as in `train`. Returns each
    run's batch losses and gradient norms.
    """
    results = []
    for run in runs:
        model = build_model(make_model, seed)
        optimizer = run["class"](model.parameters(), **run["kwargs"])
        loss_fn = nn.CrossEntropyLoss()
        losses, grads = [], []
        for step in range(steps):
            batch = slice(step * batch_size, (step + 1) * batch_size)
            x = normalise(images[batch], CIFAR10_MEAN, CIFAR10_STD)
            if run["zero_grad"]:
                optimizer.zero_grad()
            loss = loss_fn(model(x), labels[batch])
            loss.backward()
            losses.append(loss.item())
            norms = [p.grad.norm() for p in model.parameters()]
            grads.append(torch.linalg.vector_norm(torch.stack(norms)).item())
            optimizer.step()
        results.append({"label": run["label"], "losses": losses, "grad_norms": grads})
    return {"runs": results}
