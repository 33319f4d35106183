"""Benchmark: a batched sweep vs plain torch.optim loops, one configuration at a time.

The sweep is a 100 x 100 grid (learning rate, log-spaced, x beta1) of Adam on
Rosenbrock, 500 steps per cell: 10,000 configurations in one tensor program.
The plain side is what a user would write without OptLab: for each
configuration its own ``torch.optim.Adam`` on a 2-element tensor, the
textbook ``zero_grad(); f(p).backward(); step()`` loop. Running all 10,000
that way would take most of an hour, so it runs a random sample of them and
scales the time to 10,000; the same sample gives the largest deviation
between the two engines' final points and losses.

Usage::

    python -m bench.sweep [--n 100] [--steps 500] [--sample 20] [--repeats 3]

It prints each repeat's sweep time and scaled plain time, the median ratio of
the pairs (measured side by side), the largest deviation, and the time of
the whole ``python -m optlab sweep`` command for the same grid. It exits
non-zero if the deviation is over 1e-9.
"""

from __future__ import annotations

import argparse
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

from optlab.optim.config import OptimizerConfig
from optlab.surface.problem import Problem
from optlab.sweep.config import Axis, SweepConfig
from optlab.sweep.run import run_sweep

ROOT = Path(__file__).resolve().parent.parent
TOLERANCE = 1e-9


def sweep_config(n: int, steps: int) -> SweepConfig:
    """Adam on Rosenbrock over an n x n grid of (lr, beta1)."""
    return SweepConfig(
        optimizer=OptimizerConfig.create("adam"),
        x=Axis("lr", 1e-4, 1.0, n, "log"),
        y=Axis("betas.0", 0.0, 0.99, n, "lin"),
        problem=Problem(surface="rosenbrock", steps=steps),
    )


def plain_run(cfg: SweepConfig, index: int) -> tuple[float, float, float]:
    """One cell with its own torch.optim optimizer; returns the final ``(x, y, loss)``."""
    run = cfg.cell_run(index)
    surface = run.resolved_surface
    p = torch.tensor(run.problem.start, dtype=torch.float64, requires_grad=True)
    opt = run.optimizers[0].build([p])
    for _ in range(cfg.problem.steps):
        opt.zero_grad()
        surface(p).backward()
        opt.step()
    with torch.no_grad():
        return (*p.tolist(), surface(p).item())


def one_repeat(cfg: SweepConfig, sample: list[int]) -> tuple[float, float, float]:
    """Times the sweep and the sampled plain runs; returns (sweep s, plain s scaled, deviation)."""
    started = time.perf_counter()
    result = run_sweep(cfg)
    sweep_s = time.perf_counter() - started
    started = time.perf_counter()
    plain = [plain_run(cfg, i) for i in sample]
    plain_s = (time.perf_counter() - started) * cfg.cells / len(sample)
    deviation = 0.0
    finals = result.final.reshape(-1, 2)
    losses = result.final_loss.ravel()
    for i, (x, y, loss) in zip(sample, plain, strict=True):
        deviation = max(deviation, abs(finals[i, 0] - x), abs(finals[i, 1] - y))
        if np.isfinite(losses[i]) or np.isfinite(loss):
            deviation = max(deviation, abs(losses[i] - loss))
    return sweep_s, plain_s, deviation


def cli_seconds(cfg: SweepConfig) -> float:
    """Wall time of the whole CLI command for the same grid (start-up included)."""
    command = [
        sys.executable,
        "-m",
        "optlab",
        "sweep",
        "--surface",
        cfg.problem.surface,
        "--opt",
        cfg.optimizer.to_text(),
        "--x",
        cfg.x.to_text(),
        "--y",
        cfg.y.to_text(),
        "--steps",
        str(cfg.problem.steps),
    ]
    started = time.perf_counter()
    subprocess.run(command, cwd=ROOT, check=True, capture_output=True)
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100, help="grid resolution per axis (100)")
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--sample", type=int, default=20, help="plain runs per repeat (20)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0, help="picks the sampled cells")
    args = parser.parse_args()
    cfg = sweep_config(args.n, args.steps)
    rng = random.Random(args.seed)
    print(
        f"Adam on Rosenbrock, {args.n} x {args.n} grid (lr log 1e-4..1 x beta1 0..0.99), "
        f"{args.steps} steps, float64, {torch.get_num_threads()} threads"
    )
    run_sweep(sweep_config(4, 5))  # warm-up: the first backward of a process is slow
    ratios, deviations = [], []
    for r in range(args.repeats):
        sample = rng.sample(range(cfg.cells), args.sample)
        sweep_s, plain_s, deviation = one_repeat(cfg, sample)
        ratios.append(plain_s / sweep_s)
        deviations.append(deviation)
        print(
            f"  repeat {r + 1}: batched sweep {sweep_s:6.2f} s, plain torch.optim "
            f"{plain_s:8.1f} s (scaled from {args.sample} runs), ratio {ratios[-1]:7.0f}x, "
            f"max deviation {deviation:.2e}"
        )
    print(f"median ratio (plain / batched): {statistics.median(ratios):.0f}x")
    print(f"max deviation on the samples:   {max(deviations):.2e} (tolerance {TOLERANCE:g})")
    print(f"whole CLI command (python -m optlab sweep, same grid): {cli_seconds(cfg):.2f} s")
    return 0 if max(deviations) <= TOLERANCE else 1


if __name__ == "__main__":
    sys.exit(main())
