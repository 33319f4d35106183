"""The command line: ``python -m optlab surface|sweep|train|list ...``.

A stable contract that tests and benchmarks use. Bad input exits with status
2 and one line on stderr naming the problem, never a traceback.

Examples::

    python -m optlab surface --surface rosenbrock --steps 500 \\
        --opt adam:lr=0.05 --opt sgd:lr=0.001,momentum=0.9,nesterov=true \\
        --opt lbfgs:lr=1,line_search_fn=strong_wolfe --out run.json
    python -m optlab surface --expr "x**2 + 10*y**2" --start 3,1 --opt rmsprop
    python -m optlab train --synthetic --opt sgd:lr=0.05,momentum=0.9 --opt adam:lr=0.002 \\
        --steps 200 --checkpoint run.pt --out run.json
    python -m optlab train --synthetic --opt sgd:lr=0.05,momentum=0.9 --opt adam:lr=0.002 \\
        --steps 400 --resume run.pt    # 200 more steps
    python -m optlab sweep --surface rosenbrock --opt sgd:momentum=0.9 \\
        --x lr=1e-5:1e-2:log:50 --y momentum=0:0.99:lin:50 --steps 500 --out sweep.json
    python -m optlab list
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import shutil
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn, TextIO

from optlab.batched import sweepable
from optlab.checkpoint import CheckpointError, load_checkpoint, resume, save_checkpoint
from optlab.data import LoadedData, Progress, load_cifar10, synthetic_data
from optlab.export import run_to_csv, run_to_json, write_atomic
from optlab.models import MODELS, get_model_spec
from optlab.optimizers import OPTIMIZERS, PLUGIN_MESSAGES, PRESETS, OptimizerConfig
from optlab.plans import Plan
from optlab.schedulers import SCHEDULERS, SchedulerConfig
from optlab.script_export import data_folder_hint, surface_script, train_script
from optlab.surface_run import MAX_STEPS, SurfaceRunConfig
from optlab.surfaces import CUSTOM, SURFACES
from optlab.sweep import MAX_RESOLUTION, Axis, SweepConfig, run_sweep, sweep_summary
from optlab.textform import parse_bounds, parse_point, parse_surface_values
from optlab.train_report import (
    RunLog,
    fold,
    new_logs,
    results_rows,
    run_document,
    short_names,
)
from optlab.train_run import (
    DEVICES,
    DIVERGED,
    RUNNING,
    TrainingSession,
    TrainRecord,
    TrainRunConfig,
    TrainSlot,
)
from optlab.trajectory import REACH_TOL, collect, summarize


class UsageError(Exception):
    """Bad command-line input; the message is printed as one line."""


class _Parser(argparse.ArgumentParser):
    """argparse, but errors become one line instead of usage plus message."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def _build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="python -m optlab",
        description="OptLab: torch.optim on 2-D surfaces and a CIFAR-10 CNN.",
    )
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    run = sub.add_parser("surface", help="run optimizers on a 2-D surface")
    _add_problem_options(run)
    run.add_argument("--steps", type=int, default=500, help=f"steps, 1..{MAX_STEPS} (500)")
    run.add_argument(
        "--opt",
        action="append",
        required=True,
        metavar="SPEC",
        help="key[:name=value,...], e.g. adam:lr=0.05 or sgd:momentum=0.9,nesterov=true",
    )
    run.add_argument(
        "--plan",
        action="append",
        default=[],
        metavar="PLAN",
        help="per --opt, in order: a scheduler and mid-run changes, e.g. "
        "cosine|200:lr=0.001|300:momentum=0.5 (none for no plan)",
    )
    run.add_argument("--out", help="write the run as JSON to this file")
    run.add_argument("--csv", help="write the trajectories as CSV to this file")
    run.add_argument(
        "--export-script",
        metavar="PATH",
        help="write a standalone torch script that repeats the run",
    )

    _add_sweep_parser(sub)
    _add_train_parser(sub)
    sub.add_parser("list", help="list optimizers (with hyperparameters) and surfaces")
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
    return parser


def _cmd_download(args: argparse.Namespace) -> int:
    """Downloads (or finds) CIFAR-10 as the CNN page will look for it."""
    if args.url is not None and not args.url.strip():
        raise ValueError("--url: give a URL")
    line = _StatusLine(sys.stderr)
    try:
        data = load_cifar10(
            cache_dir=args.cache,
            url=args.url,
            progress=_download_progress(line),
            synthetic=False,
        )
    finally:
        line.close()
    print(
        f"{data.source}: {len(data.train.labels):,} train / {len(data.test.labels):,} "
        "test images, ready for the CNN lab and `optlab train`"
    )
    return 0


def _config(args: argparse.Namespace) -> SurfaceRunConfig:
    if args.plan and len(args.plan) != len(args.opt):
        raise ValueError(f"--plan: one per --opt, got {len(args.plan)} for {len(args.opt)}")
    return SurfaceRunConfig(
        optimizers=tuple(OptimizerConfig.from_text(spec) for spec in args.opt),
        steps=args.steps,
        plans=tuple(Plan.from_text(text) for text in args.plan),
        **_problem(args),
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
    _check_output("--export-script", args.export_script)
    cfg = _config(args)
    script = surface_script(cfg) if args.export_script else None
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
    if script is not None:
        write_atomic(args.export_script, script)
        print(f"wrote {args.export_script}")
    return 0


def _cmd_list() -> int:
    print("Optimizers (SPEC key, then name=default for each hyperparameter):")
    for spec in OPTIMIZERS:
        print(f"  {spec.key:<10} {spec.label}")
        for hp in spec.hparams:
            print(f"      {hp.name}={hp.format(hp.default):<14} {hp.help}")
    for message in PLUGIN_MESSAGES:
        print(f"  (plugin) {message}")
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


# --- sweep: a grid of hyperparameters, every cell at once ---------------------------------


def _add_problem_options(parser: argparse.ArgumentParser) -> None:
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


def _add_sweep_parser(sub: Any) -> None:
    sweep = sub.add_parser("sweep", help="sweep one or two hyperparameters of one optimizer")
    _add_problem_options(sweep)
    sweep.add_argument(
        "--opt",
        required=True,
        metavar="SPEC",
        help="the optimizer and its fixed values, e.g. sgd:momentum=0.9 "
        f"(sweepable: {', '.join(sweepable())})",
    )
    axis_help = (
        "NAME=LOW:HIGH:log|lin:N, NAME a torch keyword (lr, momentum), betas.0 / betas.1, "
        f"or start_x / start_y; N up to {MAX_RESOLUTION}"
    )
    sweep.add_argument("--x", required=True, help=axis_help)
    sweep.add_argument("--y", help="a second axis, as --x")
    sweep.add_argument("--steps", type=int, default=500, help="steps per cell (500)")
    sweep.add_argument(
        "--target", type=float, help="loss that counts as reached (default: f* + 1e-3)"
    )
    sweep.add_argument("--out", help="write the axes and per-cell metrics as JSON")


def _problem(args: argparse.Namespace) -> dict[str, Any]:
    surface = CUSTOM if args.expr is not None else args.surface.strip().lower()
    if not math.isfinite(args.noise):
        raise ValueError(f"noise: expected a finite number, got {args.noise}")
    return {
        "surface": surface,
        "surface_values": parse_surface_values(surface, args.param),
        "expr": args.expr,
        "bounds": None if args.bounds is None else parse_bounds(args.bounds),
        "start": None if args.start is None else parse_point(args.start),
        "noise": args.noise,
        "seed": args.seed,
    }


def _cmd_sweep(args: argparse.Namespace) -> int:
    _check_output("--out", args.out)
    cfg = SweepConfig(
        optimizer=OptimizerConfig.from_text(args.opt),
        x=Axis.from_text(args.x),
        y=None if args.y is None else Axis.from_text(args.y),
        steps=args.steps,
        target=args.target,
        **_problem(args),
    )
    result = run_sweep(cfg)
    print(sweep_summary(result))
    if args.out:
        write_atomic(args.out, json.dumps(result.to_dict(), allow_nan=False))
        print(f"wrote {args.out}")
    return 0


# --- train: CNNs on CIFAR-10 -------------------------------------------------------------

#: TrainRunConfig's own defaults, so the CLI's and the engine's never drift apart.
_TRAIN_DEFAULTS: dict[str, Any] = {
    f.name: f.default
    for f in dataclasses.fields(TrainRunConfig)
    if f.default is not dataclasses.MISSING
}
#: Synthetic set sizes: the loader's default, and CIFAR-10's own size as a cap.
_SYNTHETIC_DEFAULT = (5000, 1000)
_SYNTHETIC_MAX = (50_000, 10_000)
#: Settings a resumed run may change: its length and where it runs.
_RESUMABLE_CHANGES = frozenset({"steps", "epochs", "device"})
#: The option that sets each config field, for messages.
_TRAIN_FLAGS = {
    "slots": "--opt",
    "model": "--model",
    "batch_size": "--batch-size",
    "train_limit": "--train-limit",
    "test_limit": "--test-limit",
    "augment": "--augment",
    "clip_grad_norm": "--clip-grad-norm",
    "eval_every": "--eval-every",
    "seed": "--seed",
}


def _limit(text: str) -> int | None:
    """A subset size: a whole number, or ``all``."""
    if text.strip().lower() == "all":
        return None
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number or 'all', got {text!r}") from None


def _add_train_parser(sub: Any) -> None:
    d = _TRAIN_DEFAULTS
    train = sub.add_parser("train", help="train a CIFAR-10 CNN with optimizers side by side")
    source = train.add_mutually_exclusive_group()
    source.add_argument("--data", metavar="DIR", help="a cifar-10-batches-py folder or its parent")
    source.add_argument(
        "--synthetic", action="store_true", help="use the synthetic shapes set, not CIFAR-10"
    )
    models = ", ".join(m.key for m in MODELS)
    train.add_argument("--model", default=d["model"], help=f"{models} ({d['model']})")
    train.add_argument(
        "--opt",
        action="append",
        required=True,
        metavar="SPEC",
        help="key[:name=value,...], e.g. adam:lr=0.002 or sgd:lr=0.05,momentum=0.9 (repeatable)",
    )
    train.add_argument(
        "--classifier-lr-mult",
        type=float,
        default=1.0,
        metavar="M",
        help="lr multiple of the classifier (linear) layers, for every --opt (1)",
    )
    schedulers = ", ".join(s.key for s in SCHEDULERS)
    train.add_argument(
        "--scheduler",
        default="none",
        metavar="NAME[:k=v,...]",
        help=f"lr scheduler for every --opt: {schedulers} (none)",
    )
    length = train.add_mutually_exclusive_group()
    length.add_argument("--epochs", type=int, help="passes over the training images (1)")
    length.add_argument("--steps", type=int, help="optimizer steps, instead of --epochs")
    train.add_argument(
        "--batch-size",
        type=int,
        default=d["batch_size"],
        help=f"images per step ({d['batch_size']})",
    )
    for name, what in (("train", "training"), ("test", "test")):
        train.add_argument(
            f"--{name}-limit",
            type=_limit,
            default=d[f"{name}_limit"],
            metavar="N|all",
            help=f"use the first N {what} images ({d[f'{name}_limit']})",
        )
    train.add_argument("--seed", type=int, default=d["seed"], help="weights, data order (0)")
    train.add_argument(
        "--device",
        default=d["device"],
        help=f"{'|'.join(DEVICES)} (auto: CUDA, then MPS, then CPU)",
    )
    train.add_argument(
        "--augment", action="store_true", help="random crop (padding 4) and flip per batch"
    )
    train.add_argument(
        "--clip-grad-norm", type=float, metavar="C", help="clip gradient norms to C (off)"
    )
    train.add_argument(
        "--eval-every",
        type=int,
        default=d["eval_every"],
        metavar="K",
        help=f"test every K steps and at each epoch end ({d['eval_every']})",
    )
    train.add_argument("--checkpoint", metavar="PATH", help="write a checkpoint at the end")
    train.add_argument(
        "--checkpoint-every", type=int, metavar="N", help="also write it every N steps"
    )
    train.add_argument(
        "--resume",
        metavar="PATH",
        help="continue a checkpointed run (--steps/--epochs count from its start)",
    )
    train.add_argument("--out", help="write the run as JSON to this file")
    train.add_argument(
        "--export-script",
        metavar="PATH",
        help="write a standalone torch script that repeats the run (CIFAR-10 only)",
    )


def _train_config(args: argparse.Namespace, saved: dict[str, Any] | None) -> TrainRunConfig:
    steps, epochs = args.steps, args.epochs
    if steps is None and epochs is None:
        # A resumed run goes on to its own end unless told otherwise.
        steps, epochs = (saved.get("steps"), saved.get("epochs")) if saved else (None, 1)
    scheduler = SchedulerConfig.from_text(args.scheduler)
    slots = tuple(
        TrainSlot(OptimizerConfig.from_text(spec), args.classifier_lr_mult, scheduler)
        for spec in args.opt
    )
    return TrainRunConfig(
        slots=slots,
        model=args.model.strip().lower(),
        batch_size=args.batch_size,
        steps=steps,
        epochs=epochs,
        train_limit=args.train_limit,
        test_limit=args.test_limit,
        augment=args.augment,
        clip_grad_norm=args.clip_grad_norm,
        eval_every=args.eval_every,
        seed=args.seed,
        device=args.device.strip().lower(),
    )


class _StatusLine:
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


def _download_progress(line: _StatusLine) -> Progress:
    def report(done: int, total: int | None) -> None:
        text = f"downloading CIFAR-10: {done / 2**20:.1f} MiB"
        if total:
            text += f" of {total / 2**20:.1f} MiB"
        line.show(text, done / total if total else None, force=bool(total) and done >= total)

    return report


def _load_data(args: argparse.Namespace, cfg: TrainRunConfig) -> LoadedData:
    # Only as many synthetic images as the run uses: generating them takes time.
    limits = (cfg.train_limit, cfg.test_limit)
    n_train, n_test = (
        default if limit is None else min(limit, cap)
        for limit, default, cap in zip(limits, _SYNTHETIC_DEFAULT, _SYNTHETIC_MAX, strict=True)
    )
    size = (n_train, n_test)
    if args.synthetic:
        return synthetic_data(size, 0, "as asked by --synthetic")
    if args.data is not None:
        if not args.data.strip():
            raise ValueError("--data: give a folder")
        return load_cifar10(data_dir=args.data, download=False, synthetic=False)
    line = _StatusLine(sys.stderr)
    try:
        return load_cifar10(progress=_download_progress(line), synthetic_size=size)
    finally:
        line.close()


def _saved_config(state: dict[str, Any]) -> dict[str, Any]:
    saved = state["config"]
    if not isinstance(saved, dict):
        raise CheckpointError("checkpoint: the file holds no valid configuration")
    return saved


def _setting(name: str, value: Any) -> str:
    if name != "slots" or not isinstance(value, list):
        return "all" if value is None and name.endswith("_limit") else str(value)
    texts = []
    for slot in value:
        if not isinstance(slot, dict):
            texts.append(str(slot))
            continue
        extra = []
        if slot.get("classifier_lr_mult", 1) != 1:
            extra.append(f"--classifier-lr-mult {slot.get('classifier_lr_mult'):g}")
        if slot.get("scheduler", "none") != "none":
            extra.append(f"--scheduler {slot.get('scheduler')}")
        texts.append(" ".join([str(slot.get("optimizer")), *extra]))
    return " / ".join(texts)


def _check_same_setup(cfg: TrainRunConfig, saved: dict[str, Any]) -> None:
    """Refuses to resume a checkpoint of another comparison, naming what differs."""
    mine = cfg.to_dict()
    names = [*mine, *(k for k in saved if k not in mine)]
    differ = [k for k in names if k not in _RESUMABLE_CHANGES and mine.get(k) != saved.get(k)]
    if differ:
        parts = [
            f"{_TRAIN_FLAGS.get(k, k)} {_setting(k, saved.get(k))} there, "
            f"{_setting(k, mine.get(k))} here"
            for k in differ
        ]
        raise CheckpointError(
            f"--resume: the checkpoint was made with other settings ({'; '.join(parts)})"
        )


def _train(
    session: TrainingSession,
    logs: list[RunLog],
    checkpoint: str | None,
    every: int | None,
) -> None:
    """Runs the session to its end, showing progress and checkpointing every N steps."""
    line = _StatusLine(sys.stderr)
    names = short_names(session.cfg.slots)
    first, total, batch = session.step, session.total_steps, session.cfg.batch_size
    active = [i for i, s in enumerate(session.status) if s == RUNNING]
    started = time.perf_counter()
    try:
        for record in session.run():
            logs[record.index].add(record)
            if isinstance(record, TrainRecord):
                if record.index != active[-1]:
                    continue  # the step's other optimizers have yet to report
                active = [i for i in active if session.status[i] != DIVERGED]
                done, elapsed = record.step - first, time.perf_counter() - started
                losses = "  ".join(
                    f"{name} {'diverged' if log.status == DIVERGED else f'{log.smooth_loss:.3f}'}"
                    for name, log in zip(names, logs, strict=True)
                )
                speed = f"{done * batch / elapsed:.0f} img/s" if elapsed > 0 else "- img/s"
                eta = f"ETA {(total - record.step) * elapsed / done:.0f}s"
                text = f"step {record.step}/{total} (epoch {record.epoch + 1})  {losses}  {speed}"
                line.show(f"{text}  {eta}", done / (total - first), force=record.step == total)
                # A step ends with its last training record unless evaluations follow.
                step_over = not active or not session.evaluates_after(record.step)
            else:
                step_over = record.index == active[-1]
            if step_over and every and record.step % every == 0 and record.step < total and active:
                save_checkpoint(session, checkpoint)
    finally:
        line.close()


def _train_table(logs: Sequence[RunLog]) -> str:
    def pct(v: float | None) -> str:
        return "-" if v is None else f"{v:.1%}"

    def num(v: float | None, fmt: str) -> str:
        return "-" if v is None else format(v, fmt)

    header = ["optimizer", "final test acc", "best test acc", "train loss (EMA)"]
    header += ["time (s)", "images/s (median)", "status"]
    rows = [
        [
            r["optimizer"],
            pct(r["final_test_acc"]),
            pct(r["best_test_acc"]),
            num(r["train_loss"], ".4g"),
            num(r["seconds"], ".1f"),
            num(r["images_per_s"], ".0f"),
            r["status"],
        ]
        for r in results_rows(logs)
    ]
    return _table(header, rows)


def _cmd_train(args: argparse.Namespace) -> int:
    _check_output("--out", args.out)
    _check_output("--checkpoint", args.checkpoint)
    _check_output("--export-script", args.export_script)
    if args.checkpoint_every is not None:
        if args.checkpoint is None:
            raise ValueError("--checkpoint-every: needs --checkpoint PATH")
        if args.checkpoint_every < 1:
            raise ValueError(f"--checkpoint-every: must be at least 1, got {args.checkpoint_every}")
    # A bad checkpoint or setting fails before any data is loaded.
    state = load_checkpoint(args.resume) if args.resume is not None else None
    saved = _saved_config(state) if state is not None else None
    cfg = _train_config(args, saved)
    if saved is not None:
        _check_same_setup(cfg, saved)
    data = _load_data(args, cfg)
    script = None
    if args.export_script:
        hint = data_folder_hint(data.kind, args.data)
        script = train_script(cfg, hint, data_kind=data.kind)
    session = TrainingSession(cfg, data)
    if state is not None:
        resume(session, state)
    first = session.step
    # Only now, so that bad input still gets exactly one line on stderr.
    print(f"data: {data.source}", file=sys.stderr)
    logs = new_logs(session)
    fold(logs, session.history)  # a resumed run's history starts at step 1
    try:
        _train(session, logs, args.checkpoint, args.checkpoint_every)
    except RuntimeError as err:
        text = str(err).strip().splitlines()
        print(f"optlab: error: training failed: {text[0] if text else err!r}", file=sys.stderr)
        return 1
    where = f"steps {first + 1}-{session.total_steps} resumed from {args.resume}" if first else ""
    print(
        f"{get_model_spec(cfg.model).label}: {session.total_steps} steps of {cfg.batch_size} "
        f"images{f' ({where})' if where else ''}, {len(session.train_labels)} train / "
        f"{len(session.test_labels)} test images ({data.kind}), on {session.device}"
    )
    print(_train_table(logs))
    if args.checkpoint:
        save_checkpoint(session, args.checkpoint)
        print(f"wrote {args.checkpoint} (step {session.step})")
    if args.out:
        resumed = {"checkpoint": args.resume, "step": first} if state else None
        out = run_document(session, logs, data.source, data.kind, resumed)
        write_atomic(args.out, json.dumps(out, allow_nan=False))
        print(f"wrote {args.out}")
    if script is not None:
        write_atomic(args.export_script, script)
        print(f"wrote {args.export_script}")
    return 0


#: Options whose values may start with "-" (a negative start, a formula "-x**2").
_VALUE_OPTIONS = ("--start", "--bounds", "--expr", "--param", "--opt", "--plan")


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
        if args.command == "train":
            return _cmd_train(args)
        if args.command == "sweep":
            return _cmd_sweep(args)
        if args.command == "download":
            return _cmd_download(args)
        return _cmd_surface(args)
    except (UsageError, ValueError) as err:
        print(f"optlab: error: {err}", file=sys.stderr)
        return 2
    except OSError as err:
        print(f"optlab: error: cannot write output: {err.strerror or err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
