"""``optlab download``: fetch CIFAR-10 into the cache before a workshop goes offline."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from optlab.cli.common import StatusLine, download_progress
from optlab.train.data import load_cifar10


def add_parser(sub: Any) -> None:
    """The command's options."""
    fetch = sub.add_parser(
        "download",
        help="download CIFAR-10 into the cache folder now (before a workshop goes offline)",
    )
    fetch.add_argument(
        "--cache", metavar="DIR", help="the cache folder ($OPTLAB_CACHE_DIR, else ~/.cache/optlab)"
    )
    fetch.add_argument(
        "--url", help="where to download from ($OPTLAB_CIFAR_URL, else the official URL)"
    )


def run(args: argparse.Namespace) -> int:
    """Downloads (or finds) CIFAR-10 as the CNN page will look for it."""
    if args.url is not None and not args.url.strip():
        raise ValueError("--url: give a URL")
    line = StatusLine(sys.stderr)
    try:
        data = load_cifar10(
            cache_dir=args.cache,
            url=args.url,
            progress=download_progress(line),
            synthetic=False,
        )
    finally:
        line.close()
    print(
        f"{data.source}: {len(data.train.labels):,} train / {len(data.test.labels):,} "
        "test images, ready for the CNN lab and `optlab train`"
    )
    return 0
