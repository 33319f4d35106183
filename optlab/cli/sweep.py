"""``optlab sweep``: one or two hyperparameters of one optimizer, every cell at once."""

from __future__ import annotations

import argparse
import json
from typing import Any

from optlab.cli.common import add_problem_options, check_output, problem, warn_unusual
from optlab.files import write_atomic
from optlab.optim.config import OptimizerConfig
from optlab.sweep.batched import sweepable
from optlab.sweep.config import MAX_RESOLUTION, Axis, SweepConfig
from optlab.sweep.run import run_sweep, sweep_summary


def add_parser(sub: Any) -> None:
    """The command's options."""
    sweep = sub.add_parser("sweep", help="sweep one or two hyperparameters of one optimizer")
    add_problem_options(sweep)
    sweep.add_argument(
        "--opt",
        required=True,
        metavar="SPEC",
        help="the optimizer and its fixed values, e.g. sgd:momentum=0.9 "
        f"(sweepable: {', '.join(sweepable())})",
    )
    axis_help = (
        "NAME=LOW:HIGH:log|lin:N, NAME a torch keyword (lr, momentum), betas.0 / betas.1, "
        f"or start_x / start_y; N up to {MAX_RESOLUTION}"
    )
    sweep.add_argument("--x", required=True, help=axis_help)
    sweep.add_argument("--y", help="a second axis, as --x")
    sweep.add_argument("--steps", type=int, default=500, help="steps per cell (500)")
    sweep.add_argument(
        "--target", type=float, help="loss that counts as reached (default: f* + 1e-3)"
    )
    sweep.add_argument("--out", help="write the axes and per-cell metrics as JSON")


def run(args: argparse.Namespace) -> int:
    """Runs the sweep, prints its summary and writes the JSON if asked."""
    check_output("--out", args.out)
    cfg = SweepConfig(
        optimizer=OptimizerConfig.from_text(args.opt),
        x=Axis.from_text(args.x),
        y=None if args.y is None else Axis.from_text(args.y),
        problem=problem(args),
        target=args.target,
    )
    warn_unusual([(cfg.optimizer.label, cfg.optimizer.warnings())])
    result = run_sweep(cfg)
    print(sweep_summary(result))
    if args.out:
        write_atomic(args.out, json.dumps(result.to_dict(), allow_nan=False))
        print(f"wrote {args.out}")
    return 0
