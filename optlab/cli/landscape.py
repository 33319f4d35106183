"""``optlab landscape``: a checkpoint's optimizer paths on a plane of the CNN's loss landscape.

Reads a checkpoint written by ``train --snapshot-every K --checkpoint PATH``,
evaluates the loss over a G×G grid of the plane (`optlab.train.trajectories`),
the loss lines and every snapshot's loss on the first M training images, and
writes the JSON of `LandscapeResult.to_json`.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from typing import Any

from optlab.cli.common import StatusLine, check_output
from optlab.cli.train import load_data
from optlab.files import write_atomic
from optlab.train.checkpoint import CheckpointError, load_checkpoint
from optlab.train.config import TrainRunConfig
from optlab.train.landscape import MAX_IMAGES, MAX_RESOLUTION
from optlab.train.models import get_model_spec
from optlab.train.planes import PLANE_KINDS
from optlab.train.report import short_names
from optlab.train.run import DEVICES, data_digest, resolve_device
from optlab.train.snapshots import Snapshots
from optlab.train.trajectories import (
    EVAL_IMAGES,
    LandscapeResult,
    LandscapeSettings,
    evaluation_images,
    landscape_passes,
)

GRID = LandscapeSettings.grid


def add_parser(sub: Any) -> None:
    """The command's options."""
    p = sub.add_parser(
        "landscape", help="a checkpoint's optimizer paths on a plane of the CNN's loss landscape"
    )
    p.add_argument(
        "--checkpoint",
        required=True,
        metavar="PATH",
        help="a checkpoint of `train --snapshot-every K --checkpoint PATH`",
    )
    p.add_argument(
        "--plane",
        choices=PLANE_KINDS,
        help="endpoints: θ₀ and the first two optimizers' weights (the default with two or "
        "more); pca: the snapshots' top two directions (the default with one); random: "
        "filter-normalised random directions around the first optimizer's weights",
    )
    p.add_argument("--grid", type=int, default=GRID, metavar="G", help=f"points per axis ({GRID})")
    p.add_argument(
        "--span",
        type=float,
        metavar="S",
        help="the grid covers [-S, S]² around the plane's origin (default: every path with "
        "a 15%% margin; random: [-1, 1]²)",
    )
    p.add_argument(
        "--eval-images",
        type=int,
        default=EVAL_IMAGES,
        metavar="M",
        help=f"the loss on the run's first M training images (≤ {MAX_IMAGES}) ({EVAL_IMAGES})",
    )
    p.add_argument("--seed", type=int, default=0, help="the random plane's seed (0)")
    source = p.add_mutually_exclusive_group()
    source.add_argument(
        "--data", metavar="DIR", help="the run's cifar-10-batches-py folder or its parent"
    )
    source.add_argument("--synthetic", action="store_true", help="the run used the synthetic set")
    p.add_argument("--device", default="auto", help=f"{'|'.join(DEVICES)} (auto)")
    p.add_argument("--out", help="write the landscape as JSON to this file")


def _settings(args: argparse.Namespace, n_optimizers: int) -> LandscapeSettings:
    if not 2 <= args.grid <= MAX_RESOLUTION:
        raise ValueError(f"--grid: must be between 2 and {MAX_RESOLUTION}, got {args.grid}")
    if not 1 <= args.eval_images <= MAX_IMAGES:
        raise ValueError(
            f"--eval-images: must be between 1 and {MAX_IMAGES}, got {args.eval_images}"
        )
    if args.seed < 0:
        raise ValueError(f"--seed: must be at least 0, got {args.seed}")
    plane = args.plane or ("endpoints" if n_optimizers >= 2 else "pca")
    if plane == "endpoints" and n_optimizers < 2:
        raise ValueError(
            "--plane endpoints: needs two optimizers, the checkpoint has one; "
            "use --plane pca or random"
        )
    if args.span is not None and not (math.isfinite(args.span) and args.span > 0):
        raise ValueError(f"--span: must be a positive number, got {args.span}")
    return LandscapeSettings(plane=plane, grid=args.grid, span=args.span, seed=args.seed)


def _read(path: str) -> tuple[TrainRunConfig, dict, Snapshots]:
    state = load_checkpoint(path)
    try:
        cfg = TrainRunConfig.from_dict(state["config"])
    except ValueError as err:
        raise CheckpointError(f"checkpoint: {err}") from None
    if "snapshots" not in state or cfg.snapshot_every is None:
        raise CheckpointError(
            "checkpoint: it holds no weight snapshots; train with --snapshot-every K "
            "--checkpoint PATH"
        )
    try:
        snapshots = Snapshots.from_state(state["snapshots"], cfg.snapshot_every)
    except ValueError as err:
        raise CheckpointError(f"checkpoint: {err}") from None
    if snapshots.n_optimizers != len(cfg.slots):
        raise CheckpointError("checkpoint: damaged (snapshots of another number of optimizers)")
    return cfg, state, snapshots


def _summary(result: LandscapeResult, seconds: float) -> list[str]:
    grid = result.grid
    lines = [
        f"{result.plane.kind} plane ({', '.join(result.plane.optimizers)}): "
        f"{grid.resolution}x{grid.resolution} grid, a in [{grid.a[0]:.4g}, {grid.a[-1]:.4g}], "
        f"b in [{grid.b[0]:.4g}, {grid.b[-1]:.4g}], {result.eval_images} images, {seconds:.1f} s"
    ]
    for run in result.runs:
        residual = max((r for r in run.residual if r == r), default=float("nan"))
        loss = run.loss[-1] if run.loss else float("nan")
        lines.append(
            f"  {run.optimizer}: {len(run.steps)} snapshots to step {run.steps[-1]}, "
            f"final loss {loss:.4f}, largest residual {residual:.3g}"
        )
    return lines


def run(args: argparse.Namespace) -> int:
    """Computes the landscape of a checkpoint's paths; prints a summary, writes --out."""
    check_output("--out", args.out)
    cfg, state, snapshots = _read(args.checkpoint)
    settings = _settings(args, len(cfg.slots))
    device = resolve_device(args.device.strip().lower())
    data = load_data(args, cfg)
    train, test = data.train.head(cfg.train_limit), data.test.head(cfg.test_limit)
    digest = state.get("data_digest")
    if digest is not None and digest != data_digest(
        train.images, train.labels, test.images, test.labels
    ):
        raise CheckpointError(
            "checkpoint: it was trained on other images than these (another data set, or "
            "another subset); pick its data with --data DIR or --synthetic"
        )
    images, labels = evaluation_images(data, cfg, args.eval_images, "--eval-images")
    print(f"data: {data.source}", file=sys.stderr)
    view = snapshots.view()
    names = short_names(cfg.slots)
    line = StatusLine(sys.stderr)
    started = time.perf_counter()

    def progress(done: int, total: int) -> None:
        line.show(f"landscape: {done}/{total} weight vectors", done / total, force=done >= total)

    result = None
    try:
        for found in landscape_passes(
            cfg.model,
            names,
            view.steps,
            view.rows,
            images,
            labels,
            settings,
            on_progress=progress,
            device=device,
        ):
            result = found
    finally:
        line.close()
    assert result is not None and result.complete
    label = get_model_spec(cfg.model).label
    print(f"{label}, checkpoint {args.checkpoint} (step {state['step']})")
    for text in _summary(result, time.perf_counter() - started):
        print(text)
    if args.out:
        write_atomic(args.out, json.dumps(result.to_json(), allow_nan=False))
        print(f"wrote {args.out}")
    return 0
