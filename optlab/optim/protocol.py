"""What some optimizers ask of the loop around ``step()``, honoured by every engine.

Most optimizers need only ``zero_grad(); loss.backward(); step()``. A few ask
for more, and say so with flags of their `OptimizerSpec`:

- ``create_graph``: ``step()`` differentiates the gradient once more (SophiaH's
  Hutchinson estimate of the Hessian's diagonal), so the gradient is computed
  with ``create_graph=True`` (`gradient`).
- ``averaged``: Schedule-Free keeps the parameters at the training point y
  and gives the point to evaluate, x, after ``optimizer.eval()``; training goes
  on after ``optimizer.train()`` (`evaluation_point`).
- ``random``: ``step()`` draws from torch's or NumPy's global generators
  (SophiaH's probes, PSGD's preconditioner updates). One server process runs
  many users' runs, so the engines seed those generators for each step from
  the run's own seed, the optimizer's slot and the step (`seeded_step`),
  which makes a run reproducible and independent of anything else running.

The surface engine, the step inspector and the CNN trainer all use these
helpers, so a spec flag is honoured everywhere without an engine naming an
optimizer.
"""

from __future__ import annotations

import contextlib
import hashlib
import threading
from collections.abc import Iterator, Sequence

import numpy as np
import torch

from optlab.optim.spec import OptimizerSpec

# The global generators are process-wide: two runs seeding them at once from
# two script threads would interleave their draws. Steps that draw hold this.
_RNG_LOCK = threading.Lock()


def gradient(loss: torch.Tensor, param: torch.Tensor, spec: OptimizerSpec) -> torch.Tensor:
    """d loss / d ``param``, with a graph when ``spec.create_graph`` (SophiaH).

    `torch.autograd.grad` rather than ``backward``: with ``create_graph`` a
    ``.grad`` filled by ``backward`` would hold a reference cycle through the
    parameter (torch warns about it); assigning the returned tensor does not.
    """
    (grad,) = torch.autograd.grad(loss, param, create_graph=spec.create_graph)
    return grad


def backward(loss: torch.Tensor, params: Sequence[torch.Tensor], spec: OptimizerSpec) -> None:
    """``loss.backward()``; for a ``create_graph`` spec, the same gradients with a graph.

    With ``create_graph`` they come from `torch.autograd.grad` and are added
    to ``.grad``, which avoids the reference cycle ``backward(create_graph=True)``
    makes (and warns about); the graph goes with the next ``zero_grad()``.
    """
    if not spec.create_graph:
        loss.backward()
        return
    taking = [p for p in params if p.requires_grad]
    for p, grad in zip(taking, torch.autograd.grad(loss, taking, create_graph=True), strict=True):
        p.grad = grad if p.grad is None else p.grad + grad


def step_seed(seed: int, *keys: int) -> int:
    """A 63-bit seed from a run's seed and keys (slot, step), stable across processes."""
    text = ",".join(str(int(k)) for k in (seed, *keys)).encode()
    return int.from_bytes(hashlib.sha256(text).digest()[:8], "little") >> 1


@contextlib.contextmanager
def seeded_step(
    spec: OptimizerSpec, seed: int, *keys: int, device: torch.device | None = None
) -> Iterator[None]:
    """Runs the block with torch's and NumPy's global generators seeded from
    ``(seed, *keys)`` when ``spec.random``, then puts them back as they were.

    A no-op for every other optimizer. On a CUDA device its generator is
    seeded and restored too.
    """
    if not spec.random:
        yield
        return
    value = step_seed(seed, *keys)
    devices = [device] if device is not None and device.type == "cuda" else []
    with _RNG_LOCK, torch.random.fork_rng(devices=devices):
        numpy_state = np.random.get_state()
        torch.random.default_generator.manual_seed(value)
        if devices:
            torch.cuda.manual_seed(value)
        np.random.seed(value % 2**32)
        try:
            yield
        finally:
            np.random.set_state(numpy_state)


@contextlib.contextmanager
def evaluation_point(
    optimizer: torch.optim.Optimizer, params: Sequence[torch.Tensor], spec: OptimizerSpec
) -> Iterator[None]:
    """Inside the block, ``params`` hold the point to evaluate (Schedule-Free's x).

    For an ``averaged`` optimizer: ``optimizer.eval()``, the block, then
    ``optimizer.train()``; afterwards the training point is put back bit for
    bit (the round trip y → x → y is two interpolations that may round the
    last bit differently), so evaluating never changes the training path. A
    no-op for every other optimizer.
    """
    if not spec.averaged:
        yield
        return
    with torch.no_grad():
        saved = [p.detach().clone() for p in params]
    optimizer.eval()  # type: ignore[attr-defined]
    try:
        yield
    finally:
        optimizer.train()  # type: ignore[attr-defined]
        with torch.no_grad():
            for p, value in zip(params, saved, strict=True):
                p.copy_(value)
