"""``optlab study``: tune every optimizer on the same budget, trials on Ray."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from optlab.cli.common import check_output, table
from optlab.cli.train import add_run_options, load_data, train_config
from optlab.files import write_atomic
from optlab.study.config import MAX_SEEDS, MAX_TRIALS, StudyConfig
from optlab.study.engine import ADDRESS_ENV, EngineError, RayEngine
from optlab.study.run import Progress, run_study
from optlab.study.space import Dimension
from optlab.study.store import StudyFolder


def add_parser(sub: Any) -> None:
    """The command's options."""
    study = sub.add_parser(
        "study", help="tune each optimizer on the same budget and compare (trials on Ray)"
    )
    add_run_options(
        study, seed_help="the first training seed, and the points' seed (0)", opt_required=False
    )
    study.add_argument(
        "--space",
        action="append",
        default=[],
        metavar="[KEY:]NAME=LOW:HIGH:log|lin",
        help="a searched hyperparameter for every --opt (KEY: for those of one key), e.g. "
        "lr=1e-4:1:log or sgd:momentum=0.8:0.99:lin; lr is always searched (repeatable)",
    )
    study.add_argument(
        "--trials", type=int, default=8, help=f"points per optimizer, at most {MAX_TRIALS} (8)"
    )
    study.add_argument(
        "--seeds", type=int, default=1, help=f"training seeds per point, at most {MAX_SEEDS} (1)"
    )
    study.add_argument(
        "--grid", action="store_true", help="points on a grid (--trials = k^dimensions)"
    )
    study.add_argument("--dir", help="the study's folder (default: ./study-DATE-TIME)")
    study.add_argument(
        "--resume", action="store_true", help="continue the study in --dir (finished trials stay)"
    )
    study.add_argument(
        "--ray-address",
        metavar="ADDR",
        help=f"join the Ray cluster at HOST:PORT or auto (${ADDRESS_ENV}; default: a local Ray)",
    )
    study.add_argument("--out", help="also write the study's JSON to this file")


def _study_config(args: argparse.Namespace) -> StudyConfig:
    if not args.opt:
        raise ValueError("--opt: name at least one optimizer (or --resume a study)")
    if not args.space:
        raise ValueError("--space: give at least an lr range, e.g. --space lr=1e-4:1:log")
    base = train_config(args, None)
    dims = tuple(Dimension.from_text(text) for text in args.space)
    return StudyConfig(base, dims, args.trials, args.seeds, args.seed, args.grid)


def _open(args: argparse.Namespace) -> tuple[StudyConfig, StudyFolder, dict[str, Any] | None]:
    """The study and its folder: new, or read back for ``--resume``."""
    if args.resume:
        if not args.dir:
            raise ValueError("--resume: name the study's folder with --dir")
        folder = StudyFolder(args.dir)
        cfg, data_info = folder.read()
        if args.opt and _study_config(args).to_dict() != cfg.to_dict():
            raise ValueError(
                f"--resume: {args.dir} holds a study with other settings; leave out the "
                "settings to continue it as it was"
            )
        return cfg, folder, data_info
    cfg = _study_config(args)
    folder = StudyFolder(args.dir or f"study-{time.strftime('%Y%m%d-%H%M%S')}")
    if folder.exists:
        folder.start(cfg, {})  # refuses, naming --resume
    return cfg, folder, None


def _values(hparams: dict[str, float]) -> str:
    return " ".join(f"{k}={v:.3g}" for k, v in hparams.items())


def _progress_line(cfg: StudyConfig, progress: Progress) -> str:
    r = progress.result
    name = cfg.base.slots[r["optimizer"]].optimizer.spec.label
    head = (
        f"trial {progress.done}/{progress.total}  {name} {_values(r['hparams'])} seed {r['seed']}"
    )
    if r["status"] == "failed":
        return f"{head}: failed ({r.get('error', '')}); --resume runs it again"
    acc = r["final_test_acc"]
    result = "diverged" if r["status"] != "done" else f"test acc {acc:.3f}"
    return f"{head}: {result} ({r['seconds']:.1f} s, node {r['node'][:8]})"


def _summary_lines(doc: dict[str, Any]) -> list[str]:
    rows = []
    for opt in doc["optimizers"]:
        curve = opt["expected_best"]
        best = opt["best"]
        at = [1, len(curve) // 2, len(curve)] if curve else []
        rows.append(
            [
                opt["label"],
                "-" if best is None else f"{best['score']:.3f}",
                "-" if best is None else _values(best["hparams"]),
                "  ".join(f"k={k}: {curve[k - 1]:.3f}" for k in dict.fromkeys(at) if k),
            ]
        )
    lines = [table(["optimizer", "best acc", "at", "expected best after k trials"], rows)]
    for opt in doc["optimizers"]:
        if opt["edge"]:
            lines.append(
                f"warning: {opt['label']}: the best point lies at the edge of the space "
                f"({'; '.join(opt['edge_notes'])}); widen the range"
            )
    return lines


def run(args: argparse.Namespace) -> int:
    """Runs (or resumes) the study; prints each trial as it finishes and a summary."""
    check_output("--out", args.out)
    cfg, folder, saved_data = _open(args)
    engine = RayEngine(args.ray_address)
    try:
        engine.check_address()
    except EngineError as err:
        raise ValueError(str(err)) from None
    data = load_data(args, cfg.base)
    data_info = {"kind": data.kind, "source": data.source, "synthetic": data.synthetic}
    if saved_data is not None and saved_data.get("synthetic") != data.synthetic:
        made = "synthetic" if saved_data.get("synthetic") else "CIFAR-10"
        raise ValueError(f"--resume: the study was made on {made} images; give the same data")
    if saved_data is None:
        folder.start(cfg, data_info)
    try:
        try:
            engine.start()
        except EngineError as err:
            raise ValueError(str(err)) from None
        info = engine.info()
        print(
            f"data: {data.source}\nray {info['version']} at {info['address']}: "
            f"{info['nodes']} node(s), {info['cpus']} CPUs (started in {engine.started_s:.1f} s)",
            file=sys.stderr,
        )
        done = len(folder.finished())
        if done:
            print(f"resuming: {done} of {cfg.n_trials} trials already finished", file=sys.stderr)

        def show(progress: Progress) -> None:
            print(_progress_line(cfg, progress), file=sys.stderr, flush=True)

        try:
            doc = run_study(cfg, data, folder, engine, data_info, on_trial=show)
        except KeyboardInterrupt:
            left = cfg.n_trials - len(folder.finished())
            print(
                f"interrupted: {left} trials left; continue with --dir {folder.path} --resume",
                file=sys.stderr,
            )
            return 130
    finally:
        engine.shutdown()
    print("\n".join(_summary_lines(doc)))
    print(f"wrote {Path(folder.path) / 'summary.json'}")
    if doc["trials_done"] < cfg.n_trials:
        print(
            f"{cfg.n_trials - doc['trials_done']} trials failed; continue with "
            f"--dir {folder.path} --resume",
            file=sys.stderr,
        )
    if args.out:
        write_atomic(args.out, json.dumps(doc, allow_nan=False))
        print(f"wrote {args.out}")
    return 0 if doc["trials_done"] == cfg.n_trials else 1
