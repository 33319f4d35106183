"""Benchmark: the lockstep surface engine vs a plain per-optimizer loop.

The plain loop is what a user writes from the torch.optim docs: for each
optimizer on its own, ``zero_grad(); loss = f(p); loss.backward(); step()``
(``step(closure)`` for LBFGS), recording the point and loss after each step.
The tests use it as the oracle for `run_surface`. Optimizers whose docs ask
for more follow their docs (`by_the_docs`): SophiaH's
``backward(create_graph=True)``, Schedule-Free's ``eval()`` before recording
and ``train()`` after; random draws are seeded as OptLab seeds them.

Usage::

    python -m bench.surface_engine [--steps 1000] [--repeats 7]

It prints the median time of each and the median ratio of paired runs
(plain / lockstep, measured side by side), and checks that the two produce
identical trajectories.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import time
from collections.abc import Iterator

import numpy as np
import torch

from optlab.optim.config import OptimizerConfig
from optlab.optim.protocol import step_seed
from optlab.optim.spec import OptimizerSpec
from optlab.surface.problem import Problem
from optlab.surface.run import SurfaceRunConfig, add_noise, noise_generator, run_surface

#: Largest difference between the engine's and the plain loop's paths.
TOLERANCE = 1e-9


@contextlib.contextmanager
def by_the_docs(spec: OptimizerSpec, seed: int, step: int) -> Iterator[None]:
    """A step of an optimizer that draws random numbers, with torch's and NumPy's
    global generators seeded as OptLab seeds them (`step_seed`), then restored."""
    if not spec.random:
        yield
        return
    with torch.random.fork_rng(devices=[]):
        state = np.random.get_state()
        torch.manual_seed(step_seed(seed, step))
        np.random.seed(step_seed(seed, step) % 2**32)
        try:
            yield
        finally:
            np.random.set_state(state)


def evaluated(spec: OptimizerSpec, opt: torch.optim.Optimizer, p: torch.Tensor) -> list[float]:
    """The point to record: Schedule-Free's after ``eval()`` (its docs' protocol), with
    ``train()`` after it and the training point put back exactly; else ``p``."""
    if not spec.averaged:
        return p.detach().view(-1).tolist()
    y = p.detach().clone()
    opt.eval()  # type: ignore[attr-defined]
    point = p.detach().view(-1).tolist()
    opt.train()  # type: ignore[attr-defined]
    with torch.no_grad():
        p.copy_(y)
    return point


def plain_loop(cfg: SurfaceRunConfig) -> list[list[tuple[float, float, float]]]:
    """Runs each optimizer of ``cfg`` separately with the textbook loop.

    Returns:
        One list per optimizer of ``(x, y, loss)``, the start plus one entry
        per step (no divergence handling: the caller picks stable configs).
    """
    surface = cfg.resolved_surface
    out = []
    for opt_cfg in cfg.optimizers:
        spec = opt_cfg.spec
        # The point in the optimizer's shape: Muon takes a 1 × 2 matrix.
        start = torch.tensor(cfg.problem.start, dtype=torch.float64)
        p = start.reshape(spec.point_shape).requires_grad_(True)
        opt = opt_cfg.build([p])
        gen = noise_generator(cfg.problem.seed)

        def closure(p=p, opt=opt, gen=gen, spec=spec) -> torch.Tensor:
            opt.zero_grad()
            loss = surface(p)
            loss.backward(create_graph=spec.create_graph)
            if cfg.problem.noise > 0:
                p.grad = add_noise(p.grad, cfg.problem.noise, gen)
            return loss

        def record(p=p, opt=opt, spec=spec) -> tuple[float, float, float]:
            point = evaluated(spec, opt, p)
            with torch.no_grad():
                return (*point, surface(torch.tensor(point, dtype=torch.float64)).item())

        path = []
        for step in range(cfg.problem.steps):
            path.append(record())
            with by_the_docs(spec, cfg.problem.seed, step):
                if spec.uses_closure:
                    opt.step(closure)
                else:
                    closure()
                    opt.step()
        path.append(record())
        out.append(path)
    return out


def lockstep(cfg: SurfaceRunConfig) -> list[list[tuple[float, float, float]]]:
    """Runs ``cfg`` with the engine and returns paths shaped like `plain_loop`'s."""
    paths: list[list[tuple[float, float, float]]] = [[] for _ in cfg.optimizers]
    for rec in run_surface(cfg):
        paths[rec.index].append((rec.x, rec.y, rec.loss))
    return paths


def max_difference(a: list[list[tuple]], b: list[list[tuple]]) -> float:
    """Largest absolute difference between two sets of paths."""
    worst = 0.0
    for pa, pb in zip(a, b, strict=True):
        if len(pa) != len(pb):
            return float("inf")
        for ra, rb in zip(pa, pb, strict=True):
            worst = max(worst, *(abs(u - v) for u, v in zip(ra, rb, strict=True)))
    return worst


def benchmark_config(steps: int) -> SurfaceRunConfig:
    """4 optimizers on Rosenbrock, all stable for thousands of steps."""
    return SurfaceRunConfig(
        optimizers=(
            OptimizerConfig.create("sgd_momentum", lr=5e-4),
            OptimizerConfig.create("adam", lr=0.02),
            OptimizerConfig.create("rmsprop", lr=1e-3),
            OptimizerConfig.create("adagrad", lr=0.1),
        ),
        problem=Problem(surface="rosenbrock", steps=steps),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    torch.set_num_threads(1)
    cfg = benchmark_config(args.steps)

    diff = max_difference(plain_loop(cfg), lockstep(cfg))  # also warms up autograd
    plain_times, lock_times, ratios = [], [], []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        plain_loop(cfg)
        t1 = time.perf_counter()
        lockstep(cfg)
        t2 = time.perf_counter()
        plain_times.append(t1 - t0)
        lock_times.append(t2 - t1)
        ratios.append((t1 - t0) / (t2 - t1))

    k = len(cfg.optimizers)
    print(
        f"surface engine: {k} optimizers x {cfg.problem.steps} steps on "
        f"{cfg.problem.surface}, float64"
    )
    print(f"  plain per-optimizer loop : {statistics.median(plain_times) * 1e3:8.1f} ms (median)")
    print(f"  lockstep engine          : {statistics.median(lock_times) * 1e3:8.1f} ms (median)")
    print(f"  max |difference| of paths: {diff:.3g}")
    print(f"  speed-up (median of {args.repeats} paired ratios): {statistics.median(ratios):.2f}x")
    if diff > TOLERANCE:
        raise SystemExit(f"paths differ by {diff:.3g} (> {TOLERANCE:g}): the speed-up is void")


if __name__ == "__main__":
    main()
