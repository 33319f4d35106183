"""Benchmark: how long a typed formula's estimated minima and a basin map's outcomes take.

A typed formula's minima are searched (`optlab.surface.minima.ESTIMATE`) the first
time a page reads them, so the search sits on the path to the playground's first
chart for a new formula; it should stay well under 0.3 s. For each formula of a
typical set this prints the median wall time and CPU time of the search (fresh
surface each time, so no cache helps) next to the time of drawing the formula's
120 x 120 contour grid, the work every page does anyway, measured side by side.

Then the basin map's classification: how long `_basins` takes on a grid of final
points where nothing is near a listed minimum, so every point goes through Newton's
method (`settle`), next to the sweep that produced them.

Usage::

    python -m bench.minima [--repeats 5] [--threads N]

``--threads 1`` measures the work itself: on a machine busy with other processes,
torch's intra-op threads wait on each other at every small operation.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from optlab.optim.config import OptimizerConfig
from optlab.surface.minima import ESTIMATE, find_minima
from optlab.surface.problem import Problem
from optlab.surface.surfaces import formula_surface
from optlab.sweep.config import Axis, SweepConfig
from optlab.sweep.run import _basins, run_sweep

FORMULAS = (
    "x**2 + 10*y**2 + 3*sin(3*x)",  # the playground's default
    "(1 - x)**2 + 100*(y - x**2)**2",
    "(x**2 + y - 11)**2 + (x + y**2 - 7)**2",
    "sin(3*x) + cos(3*y) + 0.1*(x**2 + y**2)",
    "abs(x) + abs(y)",
    "hypot(x, y)",
    "x**4 + y**4",
    "log(x**2 + y**2 + 1e-3)",
    "x + y",
)


def _timed(call, repeats: int) -> tuple[float, float]:
    """Median wall and CPU seconds of ``call()``."""
    walls, cpus = [], []
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        call()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return statistics.median(walls), statistics.median(cpus)


def estimates(repeats: int) -> None:
    """The estimate of each formula against drawing its grid."""
    find_minima(formula_surface("x**2 + y**2"), ((-5.0, 5.0), (-5.0, 5.0)), ESTIMATE)  # warm
    print(f"{'formula':<42} {'minima':>6} {'search ms':>10} {'cpu ms':>7} {'grid ms':>8}")
    worst = 0.0
    for text in FORMULAS:
        surface = formula_surface(text)
        found = find_minima(surface, surface.bounds, ESTIMATE)
        wall, cpu = _timed(lambda s=surface: find_minima(s, s.bounds, ESTIMATE), repeats)
        grid, _ = _timed(lambda s=surface: s.fn(_grid_points(s)), repeats)
        worst = max(worst, wall)
        times = f"{wall * 1e3:>10.1f} {cpu * 1e3:>7.1f} {grid * 1e3:>8.1f}"
        print(f"{text:<42} {len(found):>6} {times}")
    print(f"slowest search: {worst * 1e3:.0f} ms (torch threads: {torch.get_num_threads()})")


def _grid_points(surface, n: int = 120) -> torch.Tensor:
    (x0, x1), (y0, y1) = surface.bounds
    xs = torch.linspace(x0, x1, n, dtype=torch.float64)
    ys = torch.linspace(y0, y1, n, dtype=torch.float64)
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([gx, gy], dim=-1)


def basins(repeats: int) -> None:
    """Classifying 60 x 60 final points on the saddle x^2 - y^2 (none near a minimum)."""
    cfg = SweepConfig(
        OptimizerConfig.create("sgd", lr=0.01),
        Axis("start_x", -1.8, 1.8, 60),
        Axis("start_y", -0.01, 0.01, 60),
        problem=Problem(surface="saddle", steps=300),
    )
    result = run_sweep(cfg)
    surface = cfg.resolved_surface
    points = torch.tensor(result.final.reshape(-1, 2))
    diverged = torch.tensor(result.diverged_at.ravel())
    sweep, _ = _timed(lambda: run_sweep(cfg), repeats)
    classify, _ = _timed(lambda: _basins(surface, points, diverged), repeats)
    print(
        f"basin outcomes of {cfg.cells} starts: {classify * 1e3:.1f} ms, "
        f"the sweep itself {sweep * 1e3:.1f} ms ({classify / sweep:.2f}x)"
    )


def main() -> None:
    """Prints both measurements."""
    parser = argparse.ArgumentParser(prog="python -m bench.minima")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    estimates(args.repeats)
    basins(args.repeats)


if __name__ == "__main__":
    main()
