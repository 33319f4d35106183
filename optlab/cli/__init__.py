"""The command line: ``python -m optlab <command> ...``, one module per command.

A stable contract that tests and benchmarks use. Bad input exits with status
2 and one line on stderr naming the problem, never a traceback. Each command
is one module of this package (`surface`, `sweep`, `train`, `landscape`,
`study`, `download`, `list`, `workshop`) with an ``add_parser`` and a ``run``.

Examples::

    python -m optlab surface --surface rosenbrock --steps 500 \\
        --opt adam:lr=0.05 --opt sgd:lr=0.001,momentum=0.9,nesterov=true \\
        --opt lbfgs:lr=1,line_search_fn=strong_wolfe --out run.json
    python -m optlab surface --expr "x**2 + 10*y**2" --start 3,1 --opt rmsprop
    python -m optlab train --synthetic --opt sgd:lr=0.05,momentum=0.9 --opt adam:lr=0.002 \\
        --steps 200 --checkpoint run.pt --out run.json
    python -m optlab train --synthetic --opt sgd:lr=0.05,momentum=0.9 --opt adam:lr=0.002 \\
        --steps 400 --resume run.pt    # 200 more steps
    python -m optlab train --synthetic --opt sgd:lr=0.05,momentum=0.9 --opt adam:lr=0.002 \\
        --steps 200 --snapshot-every 10 --sharpness-every 50 --checkpoint run.pt --out run.json
    python -m optlab landscape --checkpoint run.pt --synthetic --grid 25 --out landscape.json
    python -m optlab sweep --surface rosenbrock --opt sgd:momentum=0.9 \\
        --x lr=1e-5:1e-2:log:50 --y momentum=0:0.99:lin:50 --steps 500 --out sweep.json
    python -m optlab study --synthetic --steps 200 --opt sgd:momentum=0.9 --opt adam \\
        --space lr=1e-4:1:log --trials 8 --seeds 2 --dir study1 --out study.json
    python -m optlab list
    python -m optlab workshop --replicas 4 --port 8501   # replicas behind HAProxy
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from optlab.cli import download, landscape, study, surface, sweep, train, workshop
from optlab.cli import list as list_command
from optlab.cli.common import Parser, UsageError

#: The commands, in the order ``--help`` lists them.
COMMANDS = {"surface": surface, "sweep": sweep, "train": train, "list": list_command}
COMMANDS["landscape"] = landscape
COMMANDS["study"] = study
COMMANDS["download"] = download
COMMANDS["workshop"] = workshop
#: Options whose values may start with "-" (a negative start, a formula "-x**2").
_VALUE_OPTIONS = ("--start", "--bounds", "--expr", "--param", "--opt", "--plan")


def build_parser() -> Parser:
    """The parser of every command."""
    parser = Parser(
        prog="python -m optlab",
        description="OptLab: torch.optim on 2-D surfaces and a CIFAR-10 CNN.",
    )
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    for command in COMMANDS.values():
        command.add_parser(sub)
    return parser


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
        args = build_parser().parse_args(argv)
        return COMMANDS[args.command].run(args)
    except (UsageError, ValueError) as err:
        print(f"optlab: error: {err}", file=sys.stderr)
        return 2
    except OSError as err:
        print(f"optlab: error: cannot write output: {err.strerror or err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
