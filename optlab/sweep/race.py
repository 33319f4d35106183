"""The fair comparison's race table: each tuned optimizer's run, in words a class can read.

Every cell is text: numbers through `optlab.numbers.number_text` (``2.105e+11``,
never ``210500000000``), a target never reached as "not reached", never
``None``. Column names are what the page shows.
"""

from __future__ import annotations

from collections.abc import Sequence

from optlab.numbers import number_text
from optlab.surface.run import DIVERGED
from optlab.surface.surfaces import REACH_TOL, Surface
from optlab.surface.trajectory import Trajectory
from optlab.sweep.run import Tuned

OPTIMIZER, TUNED_LR, FINAL, BEST = "optimizer", "tuned lr", "final loss", "best loss"
STEPS = f"steps to f* + {REACH_TOL:g}"
ENDS, STATUS = "ends at (x, y)", "status"
#: The table's columns, in order. (No function-evaluation count: every optimizer
#: a sweep can tune evaluates f once per step, so it would repeat the steps.)
COLUMNS = (OPTIMIZER, TUNED_LR, FINAL, BEST, STEPS, ENDS, STATUS)
#: The columns that hold one number each (a page keeps each on one line).
NUMBERS = (TUNED_LR, FINAL, BEST)


def race_rows(
    tuned: Sequence[Tuned], trajectories: Sequence[Trajectory], surface: Surface
) -> list[dict[str, str]]:
    """One row per raced optimizer, keyed by `COLUMNS`.

    Args:
        tuned: The optimizers that were raced (each with a best config), in race order.
        trajectories: Their runs with the tuned learning rate, in the same order.
        surface: The surface they ran on (its f* decides the steps column).

    Raises:
        ValueError: when the two sequences differ in length or an optimizer has no best lr.
    """
    if len(tuned) != len(trajectories):
        raise ValueError(f"{len(tuned)} tuned optimizers but {len(trajectories)} runs")
    rows = []
    for t, tr in zip(tuned, trajectories, strict=True):
        if t.best is None:
            raise ValueError(f"{t.optimizer.label}: every lr diverged, nothing was raced")
        if surface.f_min is None:
            steps = "no known f*"
        else:
            steps = number_text(tr.steps_to_reach(surface.f_min), missing="not reached")
        if tr.status == DIVERGED:
            status = f"diverged at step {number_text(tr.diverged_at)}"
        else:
            status = tr.status
        rows.append(
            {
                OPTIMIZER: t.optimizer.label,
                TUNED_LR: number_text(float(t.best.kwargs["lr"])),
                FINAL: number_text(tr.loss[-1]),
                BEST: number_text(tr.best_loss),
                STEPS: steps,
                ENDS: f"({number_text(tr.x[-1])}, {number_text(tr.y[-1])})",
                STATUS: status,
            }
        )
    return rows
