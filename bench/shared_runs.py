"""Benchmark: a class pressing Start on the default CNN comparison within a minute.

Without shared runs, the server would train the default comparison once per
attendee, one after the other (one trainer on 2 cores): the last would wait
about thirty runs. With them, identical comparisons join one training. This
measures what each attendee sees, with simulated browsers speaking
Streamlit's own websocket protocol (`bench.st_protocol`), so the server's
cores are not spent on thirty Chromiums:

1. one attendee alone: Start on the CNN lab's defaults, then polled as the
   page's fragment does, until it says "Finished" (one run's time, T1);
2. N attendees (default 30) opening the CNN lab and pressing Start at moments
   spread evenly over ``--spread`` seconds (default 60), each polled the same
   way until their page says "Finished" (or "Replayed"); per attendee, the time
   from their own Start to that.

The two phases run on one fresh server; phase 2's comparison has another
seed than phase 1's, so it trains (a finished identical one would replay).
It prints each attendee's wait over T1 and whether the slowest is within
the target (1.3 x T1), with the server's CPU time per phase.

Data: the CIFAR-10 subset in ``../shared/data/cifar10-subset`` (``--data``).

Usage::

    python -m bench.shared_runs [--attendees 30] [--spread 60] [--epochs 4]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

from bench.load_stats import read_process
from bench.st_protocol import Session
from tests.support.server import launch_app, stop_app

ROOT = Path(__file__).resolve().parent.parent
SUBSET = ROOT.parent / "shared" / "data" / "cifar10-subset"
DONE = re.compile(r"Finished [\d,]+ steps|Replayed [\d,]+ steps")
ENDED = re.compile(r"Stopped at step|failed")
TARGET = 1.3


async def attend(url: str, delay: float, seed: int, epochs: int, timeout_s: float) -> dict:
    """One attendee: waits ``delay`` s, opens the CNN lab, presses Start, polls until
    the page says it finished; what it saw, and when."""
    await asyncio.sleep(delay)
    async with Session(url, timeout_s=timeout_s) as tab:
        await tab.load("")  # a fresh server's first deep link is not found
        await tab.load("cnn-lab")
        await tab.set("Epochs", epochs)
        await tab.set("Seed", seed)
        started = time.monotonic()
        result = await tab.click("Start")
        joined = "you joined their training" in result.text
        watching = 0
        while not DONE.search(result.text):
            if ENDED.search(result.text) or result.exceptions:
                raise RuntimeError(f"the run ended badly: {result.text[-300:]}")
            if time.monotonic() - started > timeout_s:
                raise TimeoutError(f"no 'Finished' within {timeout_s:.0f} s")
            if found := re.search(r"(\d+) people are watching", result.text):
                watching = max(watching, int(found[1]))
            await asyncio.sleep(min(tab.fragments.values(), default=1.0))
            result = await tab.tick() or await tab.load("cnn-lab")
            joined = joined or "you joined their training" in result.text
        return {
            "wait_s": time.monotonic() - started,
            "joined": joined,
            "replayed": "Replayed" in result.text,
            "most_watching": watching,
        }


def cpu_s(pid: int) -> float:
    """A process's CPU seconds so far (user + system)."""
    return read_process(pid).cpu_ticks / os.sysconf("SC_CLK_TCK")


async def class_of(url: str, n: int, spread: float, seed: int, epochs: int) -> list[dict]:
    delays = [spread * i / max(1, n - 1) for i in range(n)]
    return await asyncio.gather(*(attend(url, d, seed, epochs, 900.0) for d in delays))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--attendees", type=int, default=30)
    parser.add_argument("--spread", type=float, default=60.0, help="seconds over which they start")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--data", type=Path, default=SUBSET)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        env = {
            "OPTLAB_DATA_DIR": str(args.data),
            "OPTLAB_CACHE_DIR": str(tmp / "cache"),
            "OPTLAB_RUNS_DIR": str(tmp / "runs"),
        }
        proc, url = launch_app(tmp / "server.log", env)
        try:
            pid = proc.pid
            cpu0 = cpu_s(pid)
            (alone,) = asyncio.run(class_of(url, 1, 0.0, 1, args.epochs))
            cpu1 = cpu_s(pid)
            t1 = alone["wait_s"]
            print(f"one attendee alone: {t1:.1f} s (server CPU {cpu1 - cpu0:.0f} s)")
            began = time.monotonic()
            seen = asyncio.run(class_of(url, args.attendees, args.spread, 2, args.epochs))
            took = time.monotonic() - began
            cpu2 = cpu_s(pid)
        finally:
            stop_app(proc, tmp / "server.log")
    ratios = sorted(s["wait_s"] / t1 for s in seen)
    joined = sum(s["joined"] for s in seen)
    replayed = sum(s["replayed"] for s in seen)
    worst = ratios[-1]
    print(
        f"{args.attendees} attendees starting over {args.spread:.0f} s: {joined} joined a "
        f"running job, {replayed} replayed a finished one, "
        f"{args.attendees - joined - replayed} started one; all done {took:.0f} s after "
        f"the first Start (server CPU {cpu2 - cpu1:.0f} s)"
    )
    print(
        f"wait / one run's time: median {statistics.median(ratios):.2f}, "
        f"max {worst:.2f} (target <= {TARGET}: {'PASS' if worst <= TARGET else 'FAIL'})"
    )
    print(f"most watchers one page showed: {max(s['most_watching'] for s in seen)}")
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "one_run_s": t1,
                    "attendees": args.attendees,
                    "spread_s": args.spread,
                    "wait_ratio_median": statistics.median(ratios),
                    "wait_ratio_max": worst,
                    "joined": joined,
                    "replayed": replayed,
                    "target": TARGET,
                },
                indent=2,
            )
        )
    return 0 if worst <= TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
