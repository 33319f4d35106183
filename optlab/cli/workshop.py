"""``optlab workshop``: N OptLab replicas behind HAProxy, with sticky sessions and failover.

Example::

    python -m optlab workshop --replicas 4 --port 8501
    python -m optlab workshop --replicas 4 --host 0.0.0.0 --runs-dir /srv/optlab/runs

Runs until Ctrl-C, SIGTERM or SIGHUP, which stop HAProxy and every replica. A
replica that dies is restarted; meanwhile HAProxy sends its browsers to
another replica, where each attendee resumes their run from its last
autosave (see `optlab.workshop`).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile
from pathlib import Path
from typing import Any

from optlab.caps import CAPS
from optlab.train.autosave import default_runs_dir
from optlab.workshop.config import WorkshopConfig, default_replicas
from optlab.workshop.supervisor import (
    HAPROXY,
    Workshop,
    WorkshopError,
    check_ports_free,
    find_haproxy,
)

#: Overrides where HAProxy is looked for (a path or a name on $PATH).
HAPROXY_ENV = "OPTLAB_HAPROXY"


def add_parser(sub: Any) -> None:
    """The command's options."""
    cmd = sub.add_parser(
        "workshop",
        help="serve a workshop: several OptLab replicas behind HAProxy, with failover",
    )
    cmd.add_argument(
        "--replicas",
        type=int,
        default=None,
        help=f"streamlit processes, 1 to {CAPS.workshop_replicas} (this machine's cores + 1: "
        f"{default_replicas()})",
    )
    cmd.add_argument(
        "--port",
        type=int,
        default=8501,
        help="HAProxy's port; the replicas take the next ports (8501)",
    )
    cmd.add_argument(
        "--host",
        default="127.0.0.1",
        help="HAProxy's address: 127.0.0.1 (this machine only), 0.0.0.0 (the network)",
    )
    cmd.add_argument(
        "--runs-dir",
        metavar="DIR",
        help="the runs folder the replicas share ($OPTLAB_RUNS_DIR, else the cache's runs)",
    )
    cmd.add_argument(
        "--state-dir",
        metavar="DIR",
        help="where haproxy.cfg and the logs go (a new temporary folder)",
    )
    cmd.add_argument(
        "--haproxy",
        default=os.environ.get(HAPROXY_ENV, HAPROXY),
        help=f"the HAProxy executable (${HAPROXY_ENV}, else {HAPROXY})",
    )


def run(args: argparse.Namespace) -> int:
    """Starts the workshop and supervises it until Ctrl-C or SIGTERM."""
    runs = Path(args.runs_dir).expanduser() if args.runs_dir else default_runs_dir()
    replicas = default_replicas() if args.replicas is None else args.replicas
    cfg = WorkshopConfig(replicas, args.port, runs.resolve(), args.host)
    haproxy = find_haproxy(args.haproxy)
    check_ports_free(cfg)
    if args.state_dir:
        state = Path(args.state_dir).expanduser().resolve()
    else:
        state = Path(tempfile.mkdtemp(prefix=f"optlab-workshop-{cfg.port}-"))
    workshop = Workshop(cfg, state, haproxy)

    def stop_on_signal(signum: int, _frame: object) -> None:
        workshop.say(f"{signal.Signals(signum).name}: stopping")
        workshop.stopping.set()

    # A closed terminal (SIGHUP) stops the workshop too: the children run in process
    # groups of their own, which the terminal's hang-up does not reach, and would
    # otherwise outlive the launcher.
    names = ("SIGINT", "SIGTERM", "SIGHUP")
    stops = [getattr(signal, name) for name in names if hasattr(signal, name)]
    previous = {s: signal.signal(s, stop_on_signal) for s in stops}
    try:
        workshop.start()
        if workshop.stopping.is_set():
            return 0
        if cfg.host == "0.0.0.0":
            workshop.say(
                f"listening on every network interface: attendees open http://<this "
                f"machine's address>:{cfg.port}"
            )
        workshop.say("Ctrl-C stops HAProxy and every replica")
        workshop.supervise()
        return 0
    except WorkshopError as err:
        print(f"optlab: error: {err}", file=sys.stderr)
        return 1
    finally:
        workshop.stop()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
