"""Benchmark: the Python a page spends on its charts per rerun.

For the charts of two pages, as a user first sees them, this times what the
page's script thread does for each chart on every rerun: build the figure
(`optlab.surface.plots`, `optlab.surface.curves`, `optlab.sweep.plots`), style
it for the session's view and reserve its margins (`optlab.ui.view`'s own
``_styled``), and encode it as ``st.plotly_chart`` does
(``plotly.tools.return_figure_from_figure_or_data`` with validation, then
``plotly.io.to_json``). Under a workshop's load this Python holds the
interpreter lock that the server's event loop (every page's messages, the
health check) waits for.

- ``playground``: the default comparison (Rosenbrock; SGD + momentum, Adam,
  RMSprop; 500 steps): the clickable contour, the loss and the distance.
- ``sweep``: the load test's grid (SGD + momentum, lr x momentum, 20 x 20
  cells, 100 steps): the heatmap, its two slices and the best cell's path.

Each page in the normal view and in presenter view; the median of
``--repeat`` reruns, in milliseconds. The runs and sweeps themselves are
computed once, before timing (the pages take them from their caches).

Usage::

    python -m bench.figures [--repeat 30]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

import plotly.io as pio
import plotly.tools

from optlab.optim.config import OptimizerConfig
from optlab.surface import curves, plots
from optlab.surface.problem import Problem
from optlab.surface.trajectory import collect
from optlab.sweep import plots as sweep_plots
from optlab.sweep.config import Axis, SweepConfig
from optlab.sweep.run import run_sweep
from optlab.ui import view
from optlab.ui.playground.settings import default_config

Chart = Callable[[], Any]


def playground_charts() -> list[Chart]:
    cfg = default_config()
    surface, paths = cfg.resolved_surface, collect(cfg)
    return [
        lambda: plots.contour_figure(surface, paths, clickable=True),
        lambda: curves.loss_figure(surface, paths, height=320),
        lambda: curves.distance_figure(surface, paths, height=320),
    ]


def sweep_charts() -> list[Chart]:
    cfg = SweepConfig(
        OptimizerConfig.create("sgd", momentum=0.5),
        Axis("lr", 1e-4, 0.05, 20, "log"),
        Axis("momentum", 0.0, 0.9, 20),
        problem=Problem(steps=100),
    )
    result = run_sweep(cfg)
    best = result.best_cell()
    run = cfg.cell_run(best)
    paths = collect(run)
    return [
        lambda: sweep_plots.heatmap_figure(result, "final_loss", None),
        lambda: sweep_plots.slice_figure(result, "final_loss", 0, best),
        lambda: sweep_plots.slice_figure(result, "final_loss", 1, best),
        lambda: plots.contour_figure(run.resolved_surface, paths, height=440),
    ]


def rerun(charts: list[Chart]) -> None:
    """What a rerun's script thread does for each chart."""
    for build in charts:
        styled = view._styled(build(), None)
        figure = plotly.tools.return_figure_from_figure_or_data(styled, validate_figure=True)
        pio.to_json(figure, validate=False)


def median_ms(charts: list[Chart], presenter: bool, repeat: int) -> float:
    view.presenter = lambda: presenter  # the session's view, without a session
    rerun(charts)
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        rerun(charts)
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=30, help="reruns timed per page and view")
    args = parser.parse_args(argv)
    pages = {"playground": playground_charts(), "sweep": sweep_charts()}
    for name, charts in pages.items():
        for presenter in (False, True):
            ms = median_ms(charts, presenter, args.repeat)
            shown = "presenter" if presenter else "normal"
            print(f"{name:10s} {shown:9s} {len(charts)} charts  {ms:7.1f} ms per rerun")


if __name__ == "__main__":
    main()
