"""Run results as files: the JSON the CLI writes and the UI offers, and CSV.

The JSON layout is a stable contract (tests and benchmarks read it)::

    {"surface", "expr", "start", "steps", "seed", "noise", "torch_version",
     "runs": [{"optimizer", "hparams", "status", "diverged_at",
               "x": [...], "y": [...], "loss": [...], "evals": [...],
               "hessian_eigs": [[λ₁, λ₂], ...]}]}

``x``, ``y`` and ``loss`` hold the start point plus one entry per step taken.
``hessian_eigs`` holds, at each of those points, the two eigenvalues of the
surface's exact Hessian (autograd, float64: `optlab.surface.hessian`), in
ascending order, so ``λ₂`` is the sharpness λ_max. Non-finite numbers (a
diverged last point; the eigenvalues at a NaN point or where the Hessian is not
finite, ``[null, null]``) are written as null: JSON has no NaN or infinity.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from optlab.files import finite_or_none
from optlab.surface.hessian import hessian_eigs
from optlab.surface.run import SurfaceRunConfig
from optlab.surface.trajectory import Trajectory


def _finite(values: Sequence[float]) -> list[float | None]:
    return [finite_or_none(v) for v in values]


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def _eigenvalues(cfg: SurfaceRunConfig, tr: Trajectory) -> list[list[float | None]]:
    eigvals, _ = hessian_eigs(cfg.resolved_surface, np.column_stack([tr.x, tr.y]))
    return [_finite(row) for row in eigvals.tolist()]


def run_to_dict(cfg: SurfaceRunConfig, trajectories: Sequence[Trajectory]) -> dict[str, Any]:
    """The JSON-ready dict of a run (see the module docstring)."""
    return {
        "surface": cfg.problem.surface,
        "surface_params": dict(cfg.problem.surface_values),
        "expr": cfg.problem.expr,
        "bounds": [list(b) for b in cfg.problem.bounds] if cfg.problem.bounds else None,
        "start": list(cfg.problem.start),
        "steps": cfg.problem.steps,
        "seed": cfg.problem.seed,
        "noise": cfg.problem.noise,
        "plans": [plan.to_text() for plan in cfg.plans],
        "torch_version": torch.__version__,
        "runs": [
            {
                "optimizer": tr.optimizer.key,
                "label": tr.optimizer.label,
                "hparams": {k: _plain(v) for k, v in tr.optimizer.values},
                "status": tr.status,
                "diverged_at": tr.diverged_at,
                "x": _finite(tr.x),
                "y": _finite(tr.y),
                "loss": _finite(tr.loss),
                "grad_norm": _finite(tr.grad_norm),
                "lr": list(tr.lr),
                "momentum": list(tr.momentum),
                "evals": list(tr.evals),
                "hessian_eigs": _eigenvalues(cfg, tr),
            }
            for tr in trajectories
        ],
    }


def run_to_json(cfg: SurfaceRunConfig, trajectories: Sequence[Trajectory]) -> str:
    """The run as JSON text."""
    return json.dumps(run_to_dict(cfg, trajectories), allow_nan=False)


def run_to_csv(trajectories: Sequence[Trajectory]) -> str:
    """The run as CSV, one row per optimizer and step (long format)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(
        [
            "optimizer",
            "label",
            "step",
            "x",
            "y",
            "loss",
            "grad_norm",
            "lr",
            "momentum",
            "evals",
            "status",
        ]
    )
    for tr in trajectories:
        last = len(tr.step) - 1
        for i, step in enumerate(tr.step):
            status = tr.status if i == last else "running"
            writer.writerow(
                [
                    tr.optimizer.to_text(),
                    tr.optimizer.label,
                    step,
                    repr(tr.x[i]),
                    repr(tr.y[i]),
                    repr(tr.loss[i]),
                    repr(tr.grad_norm[i]),
                    repr(tr.lr[i]),
                    "" if not tr.momentum or tr.momentum[i] is None else repr(tr.momentum[i]),
                    tr.evals[i],
                    status,
                ]
            )
    return out.getvalue()


def figures_html(title: str, figures: Sequence[tuple[str, Any]], note: str = "") -> str:
    """One self-contained interactive HTML page of Plotly figures.

    plotly.js is inlined once (about 4.5 MB), so the file opens offline; an
    animated figure (the playground's replay) keeps its play button and slider.

    Args:
        title: The page title and top heading.
        figures: ``(heading, plotly figure)`` pairs, drawn in order.
        note: A line under the title (what was run, and how to reproduce it).
    """
    import html

    import plotly.io as pio

    parts = []
    for i, (heading, fig) in enumerate(figures):
        body = pio.to_html(fig, full_html=False, include_plotlyjs=i == 0, auto_play=False)
        parts.append(f"<h2>{html.escape(heading)}</h2>\n{body}")
    return (
        "<!DOCTYPE html>\n<html><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title>"
        "<style>body{font-family:sans-serif;margin:2em;max-width:1200px}</style></head><body>"
        f"<h1>{html.escape(title)}</h1><p>{html.escape(note)}</p>\n"
        + "\n".join(parts)
        + "\n</body></html>\n"
    )
