"""What every command shares: one-line errors, tables, a status line, the problem options."""

from __future__ import annotations

import argparse
import math
import shutil
import sys
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import NoReturn, TextIO

from optlab.links.table import parse_bounds, parse_point, parse_surface_values
from optlab.surface.problem import Problem
from optlab.surface.surfaces import CUSTOM
from optlab.train.data import Progress


class UsageError(Exception):
    """Bad command-line input; the message is printed as one line."""


class Parser(argparse.ArgumentParser):
    """argparse, but errors become one line instead of usage plus message."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def warn_unusual(found: Iterable[tuple[str, Iterable[str]]]) -> None:
    """Prints ``warning: <label>: <line>`` on stderr for every accepted but unusual value
    (momentum ≥ 1, lr = 0...): torch takes them, so the run goes on."""
    for label, lines in found:
        for line in lines:
            print(f"warning: {label}: {line}", file=sys.stderr)


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A plain-text table: the header, a rule, then the rows, columns aligned."""
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows, strict=True)]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    rule = "  ".join("-" * w for w in widths)
    head = "  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))
    return "\n".join([head, rule, *lines])


def number(v: float) -> str:
    """A number for a table: six significant digits."""
    return f"{v:.6g}"


def check_output(option: str, path: str | None) -> None:
    """Refuses an output path whose folder is missing, or that is a folder, up front."""
    if path is None:
        return
    folder = Path(path).resolve().parent
    if not folder.is_dir():
        raise ValueError(f"{option}: folder {str(folder)!r} does not exist")
    if Path(path).is_dir():
        raise ValueError(f"{option}: {path!r} is a folder, not a file")


def add_problem_options(parser: argparse.ArgumentParser) -> None:
    """The options of a 2-D problem (see `problem`), except the steps."""
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--surface", help="a registered surface (see `list`)")
    where.add_argument("--expr", help='your own f(x, y), e.g. "x**2 + 10*y**2"')
    parser.add_argument("--bounds", help="XMIN,XMAX,YMIN,YMAX (default: the surface's own)")
    parser.add_argument(
        "--param", action="append", default=[], help="surface parameter NAME=VALUE (repeatable)"
    )
    parser.add_argument("--start", help="start point X,Y (default: the surface's own)")
    parser.add_argument("--noise", type=float, default=0.0, help="gradient noise σ (0)")
    parser.add_argument("--seed", type=int, default=0, help="noise seed (0)")


def problem(args: argparse.Namespace) -> Problem:
    """The validated 2-D problem the options name.

    Raises:
        ValueError: naming the bad option.
    """
    surface = CUSTOM if args.expr is not None else args.surface.strip().lower()
    if not math.isfinite(args.noise):
        raise ValueError(f"noise: expected a finite number, got {args.noise}")
    return Problem(
        surface=surface,
        surface_values=parse_surface_values(surface, args.param),
        expr=args.expr,
        bounds=None if args.bounds is None else parse_bounds(args.bounds),
        start=None if args.start is None else parse_point(args.start),
        steps=args.steps,
        noise=args.noise,
        seed=args.seed,
    )


class StatusLine:
    """A status line on stderr: redrawn in place on a terminal, else printed now and then.

    A log file or a pipe gets a new line at every tenth of the work (every few
    seconds when the total is unknown) instead of a stream of carriage returns.
    """

    REDRAW_S = 0.1
    QUIET_S = 5.0

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        isatty = getattr(stream, "isatty", None)
        self.tty = bool(isatty and isatty())
        self.width = 0
        self.decile = 0
        self.last = -math.inf

    def show(self, text: str, fraction: float | None, force: bool = False) -> None:
        """Shows ``text``, ``fraction`` of the way through (None: unknown)."""
        now = time.monotonic()
        if self.tty:
            if not force and now - self.last < self.REDRAW_S:
                return
            text = text[: shutil.get_terminal_size().columns - 1]
            self.stream.write("\r" + text.ljust(self.width))
            self.stream.flush()
            self.width = len(text)
        else:
            if fraction is not None:
                decile = int(fraction * 10 + 1e-9)
                if decile <= self.decile:
                    return
                self.decile = decile
            elif now - self.last < self.QUIET_S:
                return
            print(text, file=self.stream, flush=True)
        self.last = now

    def close(self) -> None:
        """Ends a line drawn in place."""
        if self.tty and self.width:
            self.stream.write("\n")
            self.stream.flush()
        self.width = 0


def download_progress(line: StatusLine) -> Progress:
    """Reports a CIFAR-10 download's progress on ``line``."""

    def report(done: int, total: int | None) -> None:
        text = f"downloading CIFAR-10: {done / 2**20:.1f} MiB"
        if total:
            text += f" of {total / 2**20:.1f} MiB"
        line.show(text, done / total if total else None, force=bool(total) and done >= total)

    return report
