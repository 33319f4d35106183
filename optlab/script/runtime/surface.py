"""An exported surface run: the textbook torch.optim loop, one optimizer at a time.

The script defines the surface ``f``, ``SETTINGS`` (start, steps, noise, seed
and the divergence box) and ``OPTIMIZERS`` (class, keyword arguments, plan),
then calls `main`. The numbers equal the engine's (`optlab.surface.run`): the
same torch operations in the same order, one optimizer after the other
instead of in lockstep, which changes nothing since the optimizers never
interact.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Callable

import torch
from torch import Tensor

from optlab.files import finite_or_none
from optlab.script.runtime.changes import apply_changes


def run(optimizer: dict, f: Callable[[Tensor], Tensor], settings: dict) -> dict:
    """Runs one optimizer from the start for the run's steps; returns where it ended."""
    # The point in the optimizer's shape: (2,), or one row (1, 2) for an optimizer
    # of matrices only (torch.optim.Muon); f reads the last axis either way.
    start = torch.tensor(settings["start"], dtype=torch.float64)
    xy = start.view(optimizer["shape"]).requires_grad_(True)
    opt = optimizer["class"]([xy], **optimizer["kwargs"])
    noise = torch.Generator().manual_seed(settings["seed"])
    sigma, steps, box = settings["noise"], settings["steps"], settings["box"]

    def add_noise() -> None:
        if sigma > 0:
            draw = torch.randn(2, generator=noise, dtype=torch.float64)
            xy.grad = xy.grad + sigma * draw.view(xy.shape)

    def closure() -> Tensor:
        # L-BFGS calls this as often as it needs f and its gradient in one
        # step; each call draws its own noise.
        opt.zero_grad()
        loss = f(xy)
        loss.backward()
        add_noise()
        return loss

    make = optimizer["scheduler"]
    scheduler = make(opt, steps) if make is not None else None
    status = "done"
    for step in range(steps + 1):
        apply_changes(opt, optimizer["changes"], step)
        opt.zero_grad()
        loss = f(xy)
        loss.backward()
        # Where the optimizer is now, with the true (noise-free) gradient.
        x, y = xy.detach().view(-1).tolist()
        value = loss.item()
        grad_norm = math.hypot(*xy.grad.view(-1).tolist())
        # NaN fails every comparison, so the box test also catches a NaN point.
        inside = box[0] <= x <= box[1] and box[2] <= y <= box[3]
        if not (inside and math.isfinite(value) and math.isfinite(grad_norm)):
            status = "diverged"
            break
        if step == steps:
            break
        if optimizer["closure"]:
            opt.step(closure)
        else:
            add_noise()
            opt.step()
        if scheduler is not None:
            scheduler.step(value) if optimizer["plateau"] else scheduler.step()
    return {
        "optimizer": optimizer["key"],
        "label": optimizer["label"],
        "status": status,
        "steps": step,
        "final": [finite_or_none(x), finite_or_none(y)],
        "final_loss": finite_or_none(value),
    }


def main(optimizers: list, f: Callable[[Tensor], Tensor], settings: dict) -> None:
    """Runs every optimizer, prints where each ended, then one line of JSON."""
    if torch.__version__ != settings["torch"]:
        print(
            f"note: made with torch {settings['torch']}, this is torch "
            f"{torch.__version__}: the last digits may differ",
            file=sys.stderr,
        )
    runs = [run(optimizer, f, settings) for optimizer in optimizers]
    for result in runs:
        x, y = result["final"]
        print(
            f"{result['label']}: {result['status']} after {result['steps']} steps "
            f"at ({x}, {y}), f = {result['final_loss']}"
        )
    print(json.dumps({"runs": runs}, allow_nan=False))
