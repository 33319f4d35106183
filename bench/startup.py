"""Start-up: ``python -m optlab list`` against ``python -c "import torch"``, side by side.

Every CLI run, exported-script check and page cold start pays OptLab's
start-up on top of torch's own import. The runs alternate (torch, list,
torch, list, ...) so a noisy machine slows both alike; the report is each
command's median wall time and the median of the paired differences, with
and without the example plugin (``$OPTLAB_PLUGINS``), whose smoke test the
list command pays since it lists the plugins, and with the pytorch_optimizer
pack (``$OPTLAB_PACKS``; skipped, with a line saying so, where it is not
installed): importing the library and nine smoke tests.

    python -m bench.startup [--repeats 7]
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TORCH = [sys.executable, "-c", "import torch"]
LIST = [sys.executable, "-m", "optlab", "list"]
EXAMPLES = str(ROOT / "optlab" / "examples")


def wall(cmd: list[str], env: dict[str, str]) -> float:
    """Seconds one run of ``cmd`` takes, start to exit."""
    started = time.perf_counter()
    subprocess.run(cmd, cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def paired(repeats: int, env: dict[str, str]) -> tuple[float, float, float]:
    """Medians of torch's import, of ``list``, and of their paired differences."""
    wall(TORCH, env)  # warm the file cache for both
    wall(LIST, env)
    torch_s, list_s = [], []
    for _ in range(repeats):
        torch_s.append(wall(TORCH, env))
        list_s.append(wall(LIST, env))
    diffs = [b - a for a, b in zip(torch_s, list_s, strict=True)]
    return statistics.median(torch_s), statistics.median(list_s), statistics.median(diffs)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7, help="pairs of runs (7)")
    args = parser.parse_args(argv)
    base = {k: v for k, v in os.environ.items() if k not in ("OPTLAB_PLUGINS", "OPTLAB_PACKS")}
    print(f"start-up, median of {args.repeats} alternating runs each:")
    runs = [("no plugins", base), ("example plugin", {**base, "OPTLAB_PLUGINS": EXAMPLES})]
    if importlib.util.find_spec("pytorch_optimizer") is not None:
        runs.append(("optimizer pack", {**base, "OPTLAB_PACKS": "pytorch_optimizer"}))
    else:
        print("  optimizer pack: not installed (pip install -r requirements-extra.txt)")
    for name, env in runs:
        torch_s, list_s, diff = paired(args.repeats, env)
        print(
            f"  {name:<15} import torch {torch_s:5.2f} s   optlab list {list_s:5.2f} s   "
            f"difference {diff:+5.2f} s (median of pairs)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
