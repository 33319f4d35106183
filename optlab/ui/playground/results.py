"""What the playground shows of a finished comparison: its curves, summary and downloads."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

import pandas as pd
import streamlit as st

from optlab.export import figures_html, run_to_csv, run_to_json
from optlab.links.playground import config_to_params
from optlab.numbers import number_text
from optlab.optim.packs import library_of
from optlab.script.surface import surface_script
from optlab.surface import curves as surface_curves
from optlab.surface import plots
from optlab.surface.replay import replay_figure
from optlab.surface.run import SurfaceRunConfig
from optlab.surface.trajectory import REACH_TOL, Trajectory, summarize
from optlab.ui.view import show_shared_chart


def summary_table(cfg: SurfaceRunConfig, trajectories: list[Trajectory]) -> pd.DataFrame:
    """The comparison table as it reads: every number written by `number_text`, a
    target never reached as "not reached"."""
    rows = summarize(trajectories, cfg.resolved_surface)
    return pd.DataFrame(
        [
            {
                "optimizer": row.optimizer,
                "x": number_text(row.final_x, digits=5),
                "y": number_text(row.final_y, digits=5),
                "final loss": number_text(row.final_loss),
                "best loss": number_text(row.best_loss),
                f"steps to f* + {REACH_TOL:g}": number_text(
                    row.steps_to_min, missing="not reached"
                ),
                "function evals": number_text(row.evals),
                "status": row.status,
            }
            for row in rows
        ]
    )


def curves(
    cfg: SurfaceRunConfig,
    trajectories: list[Trajectory],
    seeds: list[list[Trajectory]],
    finished: bool = False,
) -> None:
    """Loss, the lr (when a plan changes it) and the distance to the minimum; over
    several noise seeds (``seeds``, ``trajectories`` first), medians with bands. A
    ``finished`` comparison's charts (``seeds`` all of ``cfg``'s) are built once
    for every session and rerun (`show_shared_chart`)."""
    surface, name = cfg.resolved_surface, cfg.problem.surface
    if len(seeds) > 1:
        x_axis = "step"
        first = cfg.problem.seed
        st.caption(
            f"Loss and distance: each optimizer's median over seeds {first} to "
            f"{first + len(seeds) - 1}, with a band from the 25% to the 75% quartile; "
            f"the paths, the table and the inspector show seed {first}."
        )
    else:
        x_axis = st.radio(
            "Curves against",
            ["step", "evals"],
            format_func={"step": "steps", "evals": "function evaluations (fair for L-BFGS)"}.get,
            horizontal=True,
            key="x_axis",
            persist_state="session",
        )

    def chart(build: Callable[[], Any], kind: str, key: str) -> None:
        share = (f"playground-{kind}", cfg, x_axis) if finished else None
        show_shared_chart(build, share, 0, f"{name}-{kind}", key=key)

    chart(
        lambda: surface_curves.loss_figure(
            surface, trajectories, x=x_axis, height=320, seeds=seeds
        ),
        "loss",
        "loss",
    )
    if cfg.plans:
        chart(lambda: surface_curves.schedule_figure(trajectories, x=x_axis), "lr", "lr_curves")
    if not surface.minima:
        st.info("This surface has no known minimum, so there is no distance to plot.")
    else:
        chart(
            lambda: surface_curves.distance_figure(
                surface, trajectories, x=x_axis, height=320, seeds=seeds
            ),
            "distance",
            "distance",
        )


def summary(cfg: SurfaceRunConfig, trajectories: list[Trajectory]) -> None:
    """The comparison table: a static table, which wraps rather than cuts a cell."""
    st.subheader("Summary")
    st.table(summary_table(cfg, trajectories), hide_index=True)


def _interactive_html(cfg: SurfaceRunConfig, trajectories: list[Trajectory]) -> str:
    surface = cfg.resolved_surface
    figures = [
        ("Paths", plots.contour_figure(surface, trajectories)),
        ("Replay (press play)", replay_figure(surface, trajectories)),
        ("3-D view", plots.surface3d_figure(surface, trajectories)),
        ("Loss", surface_curves.loss_figure(surface, trajectories)),
    ]
    if cfg.plans:
        figures.append(("Learning rate", surface_curves.schedule_figure(trajectories)))
    link = "?" + urlencode(config_to_params(cfg), doseq=True)
    return figures_html(f"OptLab: {surface.label}", figures, f"Share-link query: {link}")


def downloads(cfg: SurfaceRunConfig, trajectories: list[Trajectory]) -> None:
    """CSV, JSON, an interactive HTML file of the charts, and the run as a script."""
    name = cfg.problem.surface
    # A row that wraps: no label is ever cut, at any width or font size.
    row = st.container(horizontal=True)
    row.download_button(
        "Download CSV",
        # Built on click, like the others: every rerun would build it otherwise.
        data=lambda: run_to_csv(trajectories),
        file_name="optlab-run.csv",
        mime="text/csv",
        on_click="ignore",
    )
    row.download_button(
        "Download JSON",
        # Built on click: it holds the exact Hessian's eigenvalues at every point.
        data=lambda: run_to_json(cfg, trajectories),
        file_name="optlab-run.json",
        mime="application/json",
        on_click="ignore",
    )
    row.download_button(
        "Download interactive HTML",
        data=lambda: _interactive_html(cfg, trajectories),
        file_name=f"optlab-{name}.html",
        mime="text/html",
        on_click="ignore",
        help="The charts as one offline HTML file, the replay animation included.",
    )
    packed = [o.label for o in cfg.optimizers if library_of(o.spec.factory) is not None]
    row.download_button(
        "Export as script",
        data=lambda: surface_script(cfg),
        file_name=f"optlab-{name}.py",
        mime="text/x-python",
        on_click="ignore",
        disabled=bool(packed),
        help=f"Not with {', '.join(packed)}: an optimizer pack's optimizer needs its "
        "library, and an exported script needs only torch."
        if packed
        else "A standalone Python file that needs only torch: it repeats this run with "
        "torch.optim's textbook loop and prints where each optimizer ended.",
    )
