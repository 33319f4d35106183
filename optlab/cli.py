"""The command line: ``python -m optlab surface ...`` and ``python -m optlab list``.

A stable contract that tests and benchmarks use. Bad input exits with status
2 and one line on stderr naming the problem, never a traceback.

Examples::

    python -m optlab surface --surface rosenbrock --steps 500 \\
        --opt adam:lr=0.05 --opt sgd:lr=0.001,momentum=0.9,nesterov=true \\
        --opt lbfgs:lr=1,line_search_fn=strong_wolfe --out run.json
    python -m optlab surface --expr "x**2 + 10*y**2" --start 3,1 --opt rmsprop
    python -m optlab list
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from optlab.export import run_to_csv, run_to_json, write_atomic
from optlab.optimizers import OPTIMIZERS, PRESETS, OptimizerConfig
from optlab.surface_run import MAX_STEPS, SurfaceRunConfig
from optlab.surfaces import CUSTOM, SURFACES
from optlab.textform import parse_bounds, parse_point, parse_surface_values
from optlab.trajectory import REACH_TOL, collect, summarize


class UsageError(Exception):
    """Bad command-line input; the message is printed as one line."""


class _Parser(argparse.ArgumentParser):
    """argparse, but errors become one line instead of usage plus message."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def _build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m optlab", description="OptLab: torch.optim on 2-D surfaces.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    run = sub.add_parser("surface", help="run optimizers on a 2-D surface")
    where = run.add_mutually_exclusive_group(required=True)
    where.add_argument("--surface", help="a registered surface (see `list`)")
    where.add_argument("--expr", help='your own f(x, y), e.g. "x**2 + 10*y**2"')
    run.add_argument("--bounds", help="XMIN,XMAX,YMIN,YMAX (default: the surface's own)")
    run.add_argument(
        "--param", action="append", default=[], help="surface parameter NAME=VALUE (repeatable)"
    )
    run.add_argument("--start", help="start point X,Y (default: the surface's own)")
    run.add_argument("--steps", type=int, default=500, help=f"steps, 1..{MAX_STEPS} (500)")
    run.add_argument(
        "--opt",
        action="append",
        required=True,
        metavar="SPEC",
        help="key[:name=value,...], e.g. adam:lr=0.05 or sgd:momentum=0.9,nesterov=true",
    )
    run.add_argument("--noise", type=float, default=0.0, help="gradient noise σ (0)")
    run.add_argument("--seed", type=int, default=0, help="noise seed (0)")
    run.add_argument("--out", help="write the run as JSON to this file")
    run.add_argument("--csv", help="write the trajectories as CSV to this file")

    sub.add_parser("list", help="list optimizers (with hyperparameters) and surfaces")
    return parser


def _config(args: argparse.Namespace) -> SurfaceRunConfig:
    surface = CUSTOM if args.expr is not None else args.surface.strip().lower()
    if not math.isfinite(args.noise):
        raise ValueError(f"noise: expected a finite number, got {args.noise}")
    return SurfaceRunConfig(
        optimizers=tuple(OptimizerConfig.from_text(spec) for spec in args.opt),
        surface=surface,
        surface_values=parse_surface_values(surface, args.param),
        expr=args.expr,
        bounds=None if args.bounds is None else parse_bounds(args.bounds),
        start=None if args.start is None else parse_point(args.start),
        steps=args.steps,
        noise=args.noise,
        seed=args.seed,
    )


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows, strict=True)]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    rule = "  ".join("-" * w for w in widths)
    head = "  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))
    return "\n".join([head, rule, *lines])


def _num(v: float) -> str:
    return f"{v:.6g}"


def _check_output(option: str, path: str | None) -> None:
    if path is None:
        return
    folder = Path(path).resolve().parent
    if not folder.is_dir():
        raise ValueError(f"{option}: folder {str(folder)!r} does not exist")
    if Path(path).is_dir():
        raise ValueError(f"{option}: {path!r} is a folder, not a file")


def _cmd_surface(args: argparse.Namespace) -> int:
    _check_output("--out", args.out)
    _check_output("--csv", args.csv)
    cfg = _config(args)
    trajectories = collect(cfg)
    surface = cfg.resolved_surface
    rows = [
        [
            r.optimizer,
            _num(r.final_x),
            _num(r.final_y),
            _num(r.final_loss),
            _num(r.best_loss),
            "-" if r.steps_to_min is None else str(r.steps_to_min),
            str(r.evals),
            r.status,
        ]
        for r in summarize(trajectories, surface)
    ]
    header = ["optimizer", "x", "y", "loss", "best loss", f"steps to f*+{REACH_TOL:g}"]
    header += ["evals", "status"]
    where = surface.label if cfg.surface != CUSTOM else f"f(x, y) = {cfg.expr}"
    print(f"{where}: {cfg.steps} steps from ({cfg.start[0]:g}, {cfg.start[1]:g})")
    print(_table(header, rows))
    if args.out:
        write_atomic(args.out, run_to_json(cfg, trajectories))
        print(f"wrote {args.out}")
    if args.csv:
        write_atomic(args.csv, run_to_csv(trajectories))
        print(f"wrote {args.csv}")
    return 0


def _cmd_list() -> int:
    print("Optimizers (SPEC key, then name=default for each hyperparameter):")
    for spec in OPTIMIZERS:
        print(f"  {spec.key:<10} {spec.label}")
        for hp in spec.hparams:
            print(f"      {hp.name}={hp.format(hp.default):<14} {hp.help}")
    print("Presets (usable as SPEC keys):")
    for p in PRESETS:
        print(f"  {p.key:<14} {p.label}: {OptimizerConfig.create(p.key).to_text()}")
    print("Surfaces:")
    for s in SURFACES:
        minima = ", ".join(f"f({m.x:g}, {m.y:g}) = {m.value:g}" for m in s.minima) or "no minimum"
        params = "".join(f"  [--param {hp.name}={hp.format(hp.default)}]" for hp in s.params)
        print(f"  {s.key:<17} {s.label}: {minima}{params}")
    print(f'  {CUSTOM:<17} your own formula: --expr "..." [--bounds XMIN,XMAX,YMIN,YMAX]')
    return 0


#: Options whose values may start with "-" (a negative start, a formula "-x**2").
_VALUE_OPTIONS = ("--start", "--bounds", "--expr", "--param", "--opt")


def _attach_values(argv: Sequence[str]) -> list[str]:
    """Rewrites ``--start -1.5,2`` as ``--start=-1.5,2``.

    argparse takes any token starting with "-" for an option, so a negative
    coordinate or a formula starting with a minus would otherwise be refused.
    """
    out: list[str] = []
    tokens = iter(argv)
    for token in tokens:
        if token in _VALUE_OPTIONS:
            value = next(tokens, None)
            out.append(token if value is None else f"{token}={value}")
        else:
            out.append(token)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the CLI; returns the exit status."""
    if hasattr(sys.stdout, "reconfigure"):
        # Help texts use Greek letters; a console that cannot show them gets "?".
        sys.stdout.reconfigure(errors="replace")
    argv = _attach_values(sys.argv[1:] if argv is None else argv)
    try:
        args = _build_parser().parse_args(argv)
        if args.command == "list":
            return _cmd_list()
        return _cmd_surface(args)
    except (UsageError, ValueError) as err:
        print(f"optlab: error: {err}", file=sys.stderr)
        return 2
    except OSError as err:
        print(f"optlab: error: cannot write output: {err.strerror or err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
