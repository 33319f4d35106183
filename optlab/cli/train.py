"""``optlab train``: CNNs on CIFAR-10 with optimizers side by side, checkpoints, resume."""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
import time
from collections.abc import Sequence
from typing import Any

from optlab.caps import CAPS
from optlab.cli.common import StatusLine, check_output, download_progress, table, warn_unusual
from optlab.files import write_atomic
from optlab.optim.config import OptimizerConfig
from optlab.optim.schedulers import SCHEDULERS, SchedulerConfig
from optlab.script.train import data_folder_hint, train_script
from optlab.train.checkpoint import CheckpointError, load_checkpoint, resume, save_checkpoint
from optlab.train.data import LoadedData, load_cifar10, synthetic_data, synthetic_size
from optlab.train.freeze import Freeze
from optlab.train.models import MODELS, get_model_spec
from optlab.train.report import (
    RESULT_HEADERS,
    RunLog,
    fold,
    new_logs,
    results_cells,
    run_document,
    short_names,
    speed_text,
)
from optlab.train.run import (
    DEVICES,
    DIVERGED,
    IMAGES_PER_S,
    RUNNING,
    TrainingSession,
    TrainRecord,
    TrainRunConfig,
    TrainSlot,
)

#: TrainRunConfig's own defaults, so the CLI's and the engine's never drift apart.
_TRAIN_DEFAULTS: dict[str, Any] = {
    f.name: f.default
    for f in dataclasses.fields(TrainRunConfig)
    if f.default is not dataclasses.MISSING
}
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
    "snapshot_every": "--snapshot-every",
    "sharpness_every": "--sharpness-every",
    "sharpness_images": "--sharpness-images",
}


def _limit(text: str) -> int | None:
    """A subset size: a whole number, or ``all``."""
    if text.strip().lower() == "all":
        return None
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number or 'all', got {text!r}") from None


def _freeze(text: str) -> Freeze | None:
    """A ``--freeze-features`` value: N steps, ``epochN`` or ``off``."""
    try:
        return Freeze.from_text(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def add_run_options(
    parser: argparse.ArgumentParser, seed_help: str, opt_required: bool = True
) -> None:
    """The options that set up a training run (data, model, optimizers, length...):
    ``train``'s and ``study``'s alike."""
    d = _TRAIN_DEFAULTS
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--data", metavar="DIR", help="a cifar-10-batches-py folder or its parent")
    source.add_argument(
        "--synthetic", action="store_true", help="use the synthetic shapes set, not CIFAR-10"
    )
    models = ", ".join(m.key for m in MODELS)
    parser.add_argument("--model", default=d["model"], help=f"{models} ({d['model']})")
    parser.add_argument(
        "--opt",
        action="append",
        required=opt_required,
        metavar="SPEC",
        help="key[:name=value,...], e.g. adam:lr=0.002 or sgd:lr=0.05,momentum=0.9 (repeatable)",
    )
    parser.add_argument(
        "--classifier-lr-mult",
        type=float,
        default=1.0,
        metavar="M",
        help="lr multiple of the classifier (linear) layers, for every --opt (1)",
    )
    parser.add_argument(
        "--freeze-features",
        type=_freeze,
        default=None,
        metavar="N|epochN",
        help="train the classifier alone for N steps (or epochs), then add the features "
        "with optimizer.add_param_group, for every --opt that can add a group (not "
        "lbfgs, one group only; not muon, whose weights are split with --rest) (off)",
    )
    schedulers = ", ".join(s.key for s in SCHEDULERS)
    parser.add_argument(
        "--scheduler",
        default="none",
        metavar="NAME[:k=v,...]",
        help=f"lr scheduler for every --opt: {schedulers} (none)",
    )
    length = parser.add_mutually_exclusive_group()
    length.add_argument("--epochs", type=int, help="passes over the training images (1)")
    length.add_argument("--steps", type=int, help="optimizer steps, instead of --epochs")
    parser.add_argument(
        "--batch-size",
        type=int,
        default=d["batch_size"],
        help=f"images per step ({d['batch_size']})",
    )
    for name, what in (("train", "training"), ("test", "test")):
        parser.add_argument(
            f"--{name}-limit",
            type=_limit,
            default=d[f"{name}_limit"],
            metavar="N|all",
            help=f"use the first N {what} images ({d[f'{name}_limit']})",
        )
    parser.add_argument("--seed", type=int, default=d["seed"], help=seed_help)
    parser.add_argument(
        "--device",
        default=d["device"],
        help=f"{'|'.join(DEVICES)} (auto: CUDA, then MPS, then CPU)",
    )
    parser.add_argument(
        "--augment", action="store_true", help="random crop (padding 4) and flip per batch"
    )
    parser.add_argument(
        "--clip-grad-norm", type=float, metavar="C", help="clip gradient norms to C (off)"
    )
    parser.add_argument(
        "--eval-every",
        type=int,
        default=d["eval_every"],
        metavar="K",
        help=f"test every K steps and at each epoch end ({d['eval_every']})",
    )


def add_parser(sub: Any) -> None:
    """The command's options."""
    d = _TRAIN_DEFAULTS
    train = sub.add_parser("train", help="train a CIFAR-10 CNN with optimizers side by side")
    add_run_options(train, seed_help="weights, data order (0)")
    train.add_argument(
        "--snapshot-every",
        type=int,
        metavar="K",
        help="keep every optimizer's weights at steps 0, K, 2K, … and the last, in the "
        f"checkpoint (for `landscape`; at most {CAPS.snapshot_mb} MB: past it every second "
        "one is dropped and K doubles) (off)",
    )
    train.add_argument(
        "--sharpness-every",
        type=int,
        metavar="K",
        help="measure each optimizer's sharpness (top Hessian eigenvalue) every K steps "
        "and at the last, into --out (off)",
    )
    train.add_argument(
        "--sharpness-images",
        type=int,
        default=d["sharpness_images"],
        metavar="M",
        help=f"on the first M training images (≤ {CAPS.sharpness_images}) "
        f"({d['sharpness_images']})",
    )
    train.add_argument(
        "--rest",
        metavar="SPEC",
        help="for an optimizer of 2-D weights only (muon): the optimizer of every other "
        "parameter (conv kernels, biases), e.g. adamw:lr=0.001 "
        "(adamw:lr=0.0003,weight_decay=0.01, as in torch's Muon docs)",
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


def train_config(args: argparse.Namespace, saved: dict[str, Any] | None) -> TrainRunConfig:
    steps, epochs = args.steps, args.epochs
    if steps is None and epochs is None:
        # A resumed run goes on to its own end unless told otherwise.
        steps, epochs = (saved.get("steps"), saved.get("epochs")) if saved else (None, 1)
    scheduler = SchedulerConfig.from_text(args.scheduler)
    given = getattr(args, "rest", None)
    rest = OptimizerConfig.from_text(given) if given else None
    optimizers = [OptimizerConfig.from_text(spec) for spec in args.opt]
    if rest is not None and not any(opt.spec.matrices_only for opt in optimizers):
        raise ValueError("--rest: no optimizer of 2-D weights only (muon) among --opt")
    freeze = getattr(args, "freeze_features", None)
    # As in the CNN lab, which offers the freeze only where it can work: SGD fine-tuned
    # beside Muon is a comparison worth running. Given to no optimizer that can take
    # it, every slot gets it and TrainSlot's check says why it cannot.
    takes = [not (opt.spec.uses_closure or opt.spec.matrices_only) for opt in optimizers]
    slots = tuple(
        TrainSlot(
            opt,
            args.classifier_lr_mult,
            scheduler,
            freeze=freeze if can or not any(takes) else None,
            companion=rest if opt.spec.matrices_only else None,
        )
        for opt, can in zip(optimizers, takes, strict=True)
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
        snapshot_every=getattr(args, "snapshot_every", None),
        sharpness_every=getattr(args, "sharpness_every", None),
        sharpness_images=getattr(args, "sharpness_images", _TRAIN_DEFAULTS["sharpness_images"]),
    )


def load_data(args: argparse.Namespace, cfg: TrainRunConfig) -> LoadedData:
    """The images ``--data``/``--synthetic`` name (else found as `load_cifar10` finds them)."""
    # Only as many synthetic images as the run uses: generating them takes time.
    size = synthetic_size(cfg.train_limit, cfg.test_limit)
    if args.synthetic:
        return synthetic_data(size, 0, "as asked by --synthetic")
    if args.data is not None:
        if not args.data.strip():
            raise ValueError("--data: give a folder")
        return load_cifar10(data_dir=args.data, download=False, synthetic=False)
    line = StatusLine(sys.stderr)
    try:
        return load_cifar10(progress=download_progress(line), synthetic_size=size)
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
        if "freeze" in slot:
            extra.append(f"--freeze-features {slot.get('freeze')}")
        if slot.get("companion"):
            extra.append(f"--rest {slot.get('companion')}")
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
    line = StatusLine(sys.stderr)
    names = short_names(session.cfg.slots)
    first, total = session.step, session.total_steps
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
                speed = speed_text(session.images_per_s)
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
    """The page's results table, as text."""
    cells = results_cells(logs)
    return table(list(RESULT_HEADERS.values()), [[row[k] for k in RESULT_HEADERS] for row in cells])


def _observer_lines(session: TrainingSession) -> list[str]:
    """What the snapshots and the sharpness took, beside the training's own time."""
    lines = []
    if session.snapshots is not None:
        snapshots = session.snapshots
        lines.append(
            f"snapshots: {len(snapshots.steps)} per optimizer (every {snapshots.every} steps "
            f"and the last), {snapshots.nbytes / 2**20:.1f} MB, "
            f"{session.observers.snapshot_s:.1f} s"
        )
    if session.cfg.sharpness_every is not None:
        count = sum(len(records) for records in session.sharpness)
        share = session.sharpness_s / session.train_s if session.train_s > 0 else math.nan
        lines.append(
            f"sharpness: {count} estimates on {session.cfg.sharpness_images} images in "
            f"{session.sharpness_s:.1f} s, {share:.0%} of the {session.train_s:.1f} s of training"
        )
    return lines


def run(args: argparse.Namespace) -> int:
    """Trains (or resumes) the comparison, prints its results, writes what was asked for."""
    check_output("--out", args.out)
    check_output("--checkpoint", args.checkpoint)
    check_output("--export-script", args.export_script)
    if args.checkpoint_every is not None:
        if args.checkpoint is None:
            raise ValueError("--checkpoint-every: needs --checkpoint PATH")
        if args.checkpoint_every < 1:
            raise ValueError(f"--checkpoint-every: must be at least 1, got {args.checkpoint_every}")
    # A bad checkpoint or setting fails before any data is loaded.
    state = load_checkpoint(args.resume) if args.resume is not None else None
    saved = _saved_config(state) if state is not None else None
    cfg = train_config(args, saved)
    if saved is not None:
        _check_same_setup(cfg, saved)
    warn_unusual(
        (
            slot.optimizer.label,
            (*slot.optimizer.warnings(), *slot.scheduler.warnings(slot.optimizer.spec)),
        )
        for slot in cfg.slots
    )
    data = load_data(args, cfg)
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
    print(f"speed: {speed_text(session.images_per_s)} ({IMAGES_PER_S})")
    for line in _observer_lines(session):
        print(line)
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
