"""Benchmark: a CNN run watched on the page vs the same run from the CLI.

The CNN lab trains in a worker thread of the Streamlit server, while the
page's polling fragment rebuilds and redraws the live charts; ``optlab train``
trains the same comparison alone. Both report the same speed
(`TrainingSession.images_per_s`: steps x batch size / the seconds of those
steps), so this prints the page's speed as a ratio of the CLI's, measured
side by side in one run, alternating which goes first.

- ``cli``: ``python -m optlab train`` with the page's default comparison (SGD +
  momentum vs Adam on SeedNet, its weight snapshots and sharpness included),
  its images/s read from ``--out``'s JSON;
- ``page``: a real ``streamlit run`` server on 127.0.0.1 and one headless
  Chromium tab (Debian's) on the CNN lab with its defaults; Start, then the
  images/s the page shows once it says "Finished" (the page polls and redraws
  all along, every `optlab.ui.cnn.jobs.POLL_S` seconds, as a watching
  attendee's tab does). The browser
  runs on the same cores as the server here, unlike in a workshop. One page
  run of one epoch warms the server first and is not counted.

Data: the CIFAR-10 subset in ``../shared/data/cifar10-subset`` (or ``--data``).

Usage::

    python -m bench.cnn_page [--repeats 2] [--epochs 2]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from optlab.train.data import find_cifar10
from tests.browser.test_cnn import cnn_lab
from tests.support.server import CHROMIUM, CHROMIUM_ARGS, serve_app

ROOT = Path(__file__).resolve().parent.parent
SUBSET = ROOT.parent / "shared" / "data" / "cifar10-subset"
SPEED = re.compile(r"Speed: ([\d,]+) images/s")


def cli_args(data: Path, epochs: int, out: Path) -> list[str]:
    """``optlab train``'s arguments for the page's default comparison."""
    from optlab.ui.cnn.settings import default_config

    cfg = default_config()
    args = [sys.executable, "-m", "optlab", "train", "--data", str(data)]
    for slot in cfg.slots:
        args += ["--opt", slot.optimizer.to_text()]
    args += [
        "--epochs",
        str(epochs),
        "--batch-size",
        str(cfg.batch_size),
        "--train-limit",
        str(cfg.train_limit),
        "--test-limit",
        str(cfg.test_limit),
        "--eval-every",
        str(cfg.eval_every),
        "--seed",
        str(cfg.seed),
        "--snapshot-every",
        str(cfg.snapshot_every),
        "--sharpness-every",
        str(cfg.sharpness_every),
        "--sharpness-images",
        str(cfg.sharpness_images),
        "--device",
        "cpu",
        "--out",
        str(out),
    ]
    return args


def run_cli(data: Path, epochs: int, tmp: Path) -> float:
    """The CLI's images/s for the default comparison."""
    out = tmp / "cli.json"
    subprocess.run(cli_args(data, epochs, out), check=True, cwd=ROOT, capture_output=True)
    return float(json.loads(out.read_text())["images_per_s"])


def run_page(browser, url: str, epochs: int) -> float:
    """The images/s the CNN page shows for its default comparison, watched to the end."""
    with cnn_lab(browser, url) as tab:
        tab.set_default_timeout(120_000)
        sidebar = tab.get_by_test_id("stSidebar")
        box = sidebar.get_by_label("Epochs", exact=True)
        box.fill(str(epochs))
        box.press("Enter")
        tab.wait_for_timeout(1500)
        sidebar.get_by_role("button", name="Start").click()
        tab.get_by_text(re.compile(r"Finished [\d,]+ steps")).wait_for(timeout=900_000)
        caption = tab.get_by_text(SPEED).first.inner_text()
        return float(SPEED.search(caption)[1].replace(",", ""))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=2, help="of the default 10,000 images")
    parser.add_argument("--data", type=Path, default=SUBSET)
    args = parser.parse_args(argv)
    source = find_cifar10(data_dir=str(args.data)).source
    from playwright.sync_api import sync_playwright

    print(f"data: {source}; {os.cpu_count()} cores; default comparison, {args.epochs} epochs")
    with tempfile.TemporaryDirectory() as folder, sync_playwright() as pw:
        tmp = Path(folder)
        env = {
            "OPTLAB_DATA_DIR": str(args.data),
            "OPTLAB_CACHE_DIR": str(tmp / "cache"),
            "OPTLAB_RUNS_DIR": str(tmp / "runs"),
            # Every repeat trains: a kept result would replay instead.
            "OPTLAB_CAP_RESULT_STORE_MB": "1",
        }
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        with serve_app(tmp / "server.log", env=env) as url:
            # A workshop's server is warm: its first training pays one-off costs
            # (lazy imports, the first passes of each kernel) that are not its speed.
            warm = run_page(browser, url, 1)
            print(f"  warm-up page run: {warm:,.0f} images/s (not counted)")
            ratios, cli, page = [], [], []
            for repeat in range(args.repeats):
                arms = ["cli", "page"]
                if repeat % 2:
                    arms.reverse()
                got = {}
                for name in arms:
                    started = time.perf_counter()
                    if name == "cli":
                        got[name] = run_cli(args.data, args.epochs, tmp)
                    else:
                        got[name] = run_page(browser, url, args.epochs)
                    took = time.perf_counter() - started
                    print(
                        f"  repeat {repeat + 1} {name:4s}: {got[name]:,.0f} images/s ({took:.0f} s)"
                    )
                cli.append(got["cli"])
                page.append(got["page"])
                ratios.append(got["page"] / got["cli"])
        browser.close()
    print(f"cli  images/s: median {statistics.median(cli):,.0f}")
    print(f"page images/s: median {statistics.median(page):,.0f}")
    print(f"page / cli: median {statistics.median(ratios):.2f} (target >= 0.80)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
