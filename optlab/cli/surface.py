"""``optlab surface``: optimizers side by side on a 2-D surface."""

from __future__ import annotations

import argparse
from typing import Any

from optlab.cli.common import (
    add_problem_options,
    check_output,
    number,
    problem,
    table,
    warn_unusual,
)
from optlab.export import run_to_csv, run_to_json
from optlab.files import write_atomic
from optlab.optim.config import OptimizerConfig
from optlab.optim.plans import Plan
from optlab.script.surface import surface_script
from optlab.surface.problem import MAX_STEPS
from optlab.surface.run import SurfaceRunConfig
from optlab.surface.trajectory import REACH_TOL, collect, summarize


def add_parser(sub: Any) -> None:
    """The command's options."""
    run = sub.add_parser("surface", help="run optimizers on a 2-D surface")
    add_problem_options(run)
    run.add_argument("--steps", type=int, default=500, help=f"steps, 1..{MAX_STEPS} (500)")
    run.add_argument(
        "--opt",
        action="append",
        required=True,
        metavar="SPEC",
        help="key[:name=value,...], e.g. adam:lr=0.05 or sgd:momentum=0.9,nesterov=true",
    )
    run.add_argument(
        "--plan",
        action="append",
        default=[],
        metavar="PLAN",
        help="per --opt, in order: a scheduler and mid-run changes, e.g. "
        "cosine|200:lr=0.001|300:momentum=0.5 (none for no plan)",
    )
    run.add_argument("--out", help="write the run as JSON to this file")
    run.add_argument("--csv", help="write the trajectories as CSV to this file")
    run.add_argument(
        "--export-script",
        metavar="PATH",
        help="write a standalone torch script that repeats the run",
    )


def config(args: argparse.Namespace) -> SurfaceRunConfig:
    """The run the options describe (validated)."""
    if args.plan and len(args.plan) != len(args.opt):
        raise ValueError(f"--plan: one per --opt, got {len(args.plan)} for {len(args.opt)}")
    return SurfaceRunConfig(
        optimizers=tuple(OptimizerConfig.from_text(spec) for spec in args.opt),
        problem=problem(args),
        plans=tuple(Plan.from_text(text) for text in args.plan),
    )


def run(args: argparse.Namespace) -> int:
    """Runs the comparison, prints its summary and writes what was asked for."""
    check_output("--out", args.out)
    check_output("--csv", args.csv)
    check_output("--export-script", args.export_script)
    cfg = config(args)
    warn_unusual(
        (opt.label, (*opt.warnings(), *cfg.plan(i).warnings(opt.spec)))
        for i, opt in enumerate(cfg.optimizers)
    )
    script = surface_script(cfg) if args.export_script else None
    trajectories = collect(cfg)
    rows = [
        [
            r.optimizer,
            number(r.final_x),
            number(r.final_y),
            number(r.final_loss),
            number(r.best_loss),
            "-" if r.steps_to_min is None else str(r.steps_to_min),
            str(r.evals),
            r.status,
        ]
        for r in summarize(trajectories, cfg.resolved_surface)
    ]
    header = ["optimizer", "x", "y", "loss", "best loss", f"steps to f*+{REACH_TOL:g}"]
    header += ["evals", "status"]
    x0, y0 = cfg.problem.start
    print(f"{cfg.problem.where}: {cfg.problem.steps} steps from ({x0:g}, {y0:g})")
    print(table(header, rows))
    if args.out:
        write_atomic(args.out, run_to_json(cfg, trajectories))
        print(f"wrote {args.out}")
    if args.csv:
        write_atomic(args.csv, run_to_csv(trajectories))
        print(f"wrote {args.csv}")
    if script is not None:
        write_atomic(args.export_script, script)
        print(f"wrote {args.export_script}")
    return 0
