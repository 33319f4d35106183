"""Benchmark: a 12-trial study on a local Ray vs the same trials one after another here.

The study: SGD with momentum (0.9) and Adam, lr at 3 Sobol points of
1e-4:1 (log), 2 seeds: 12 trials, each ``--steps`` steps of 64 images from the
first 4,000 training images of the CIFAR-10 subset in
``../shared/data/cifar10-subset`` (``--data DIR``; ``--synthetic`` for the
synthetic set), tested on 500.

In one run, ``--repeats`` times:

1. inline: `InlineEngine`, every trial in this process, one after another,
   on one torch thread (what a Ray trial with one CPU gets);
2. ray (1 CPU): a local Ray offering one CPU, so the same 12 trials also run
   one at a time on one thread. Ray's overhead is ray / inline - 1 (target
   at most 10%): sending each trial and the data, the worker process's own
   start (importing torch, its first backward), collecting results. Ray's
   start-up (``ray.init``) and its processes' memory are printed apart, not in
   the ratio;
3. ray (all CPUs): the same trials on a local Ray with every CPU, one trial per
   CPU at once: the speed-up a study gets on this machine.

Every trial's numbers on Ray equal the inline ones bit for bit (checked; the
benchmark fails otherwise). One trial per Ray task, no batching of trials
into one lockstep session: the per-trial overhead printed shows why that is
enough for trials of this length.

Usage::

    python -m bench.study [--steps 100] [--repeats 1] [--data DIR | --synthetic]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from optlab.optim.config import OptimizerConfig
from optlab.study.config import StudyConfig
from optlab.study.engine import InlineEngine, RayEngine
from optlab.study.run import run_study
from optlab.study.space import Dimension
from optlab.study.store import StudyFolder
from optlab.train.data import LoadedData, load_cifar10, synthetic_data
from optlab.train.run import TrainRunConfig, TrainSlot

ROOT = Path(__file__).resolve().parents[1]
SUBSET = ROOT.parent / "shared" / "data" / "cifar10-subset"
TARGET_OVERHEAD = 0.10


def study_config(steps: int) -> StudyConfig:
    """The benchmark's 12 trials: 2 optimizers x 3 points x 2 seeds."""
    slots = (
        TrainSlot(OptimizerConfig.from_text("sgd:momentum=0.9")),
        TrainSlot(OptimizerConfig.from_text("adam")),
    )
    base = TrainRunConfig(
        slots,
        steps=steps,
        epochs=None,
        batch_size=64,
        train_limit=4000,
        test_limit=500,
        eval_every=max(1, steps // 2),
        device="cpu",
    )
    return StudyConfig(base, (Dimension("lr", 1e-4, 1.0, "log"),), trials=3, seeds=2, seed=0)


def load(args: argparse.Namespace) -> LoadedData:
    if args.synthetic:
        return synthetic_data((4000, 500), 0, "as asked by --synthetic")
    folder = args.data or str(SUBSET)
    if not Path(folder).exists():
        raise SystemExit(f"no CIFAR-10 folder {folder}; give --data DIR or --synthetic")
    return load_cifar10(folder, download=False, synthetic=False)


def ray_memory_mb() -> float:
    """Resident memory of Ray's processes on this machine (not this one), in MB."""
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmd = (entry / "cmdline").read_bytes()
            status = (entry / "status").read_text()
        except OSError:
            continue
        if b"ray" not in cmd:
            continue
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1])
    return total / 1024


def run_arm(cfg: StudyConfig, data: LoadedData, engine: Any) -> tuple[float, list[tuple]]:
    """Seconds of the whole study (engine already started) and its trials' numbers."""
    info = {"kind": data.kind, "source": data.source, "synthetic": data.synthetic}
    with tempfile.TemporaryDirectory() as tmp:
        folder = StudyFolder(Path(tmp) / "study")
        folder.start(cfg, info)
        started = time.perf_counter()
        doc = run_study(cfg, data, folder, engine, info)
        seconds = time.perf_counter() - started
    numbers = sorted(
        (t["id"], t["status"], t["final_test_acc"], t["final_test_loss"])
        for o in doc["optimizers"]
        for t in o["trials"]
    )
    return seconds, numbers


def ray_arm(cfg: StudyConfig, data: LoadedData, cpus: int | None) -> dict[str, Any]:
    engine = RayEngine(local_cpus=cpus)
    engine.start()
    try:
        seconds, numbers = run_arm(cfg, data, engine)
        memory = ray_memory_mb()
        info = engine.info()
    finally:
        engine.shutdown()
    return {
        "seconds": seconds,
        "numbers": numbers,
        "start_s": engine.started_s,
        "memory_mb": memory,
        "cpus": info["cpus"],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=1)
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--data")
    source.add_argument("--synthetic", action="store_true")
    args = parser.parse_args(argv)
    cfg = study_config(args.steps)
    data = load(args)
    print(
        f"study benchmark: {cfg.n_trials} trials (2 optimizers x 3 points x 2 seeds), "
        f"{args.steps} steps of 64 images each, torch {torch.__version__}, "
        f"{os.cpu_count()} CPUs"
    )
    print(f"  data: {data.source}")
    threads = torch.get_num_threads()
    ratios, failures = [], 0
    for r in range(1, args.repeats + 1):
        torch.set_num_threads(1)
        try:
            inline_s, inline_numbers = run_arm(cfg, data, InlineEngine())
        finally:
            torch.set_num_threads(threads)
        one = ray_arm(cfg, data, 1)
        every = ray_arm(cfg, data, None)
        same = one["numbers"] == inline_numbers == every["numbers"]
        failures += not same
        ratio = one["seconds"] / inline_s
        ratios.append(ratio)
        per_trial = (one["seconds"] - inline_s) / cfg.n_trials
        print(f"repeat {r}:")
        print(f"  inline (1 thread)    {inline_s:7.2f} s")
        print(
            f"  ray, 1 CPU           {one['seconds']:7.2f} s  ray/inline {ratio:.3f}  "
            f"overhead {ratio - 1:+.1%} ({per_trial * 1000:+.0f} ms per trial)"
        )
        print(
            f"  ray, {every['cpus']} CPUs          {every['seconds']:7.2f} s  "
            f"inline/ray {inline_s / every['seconds']:.2f}x faster"
        )
        print(
            f"  ray start-up {one['start_s']:.1f} s and {every['start_s']:.1f} s (not in the "
            f"ratios); Ray's processes held {one['memory_mb']:.0f} MB (1 CPU) and "
            f"{every['memory_mb']:.0f} MB ({every['cpus']} CPUs) at the end"
        )
        print(f"  every trial's numbers equal inline's bit for bit: {'yes' if same else 'NO'}")
    overhead = statistics.median(ratios) - 1
    verdict = "met" if overhead <= TARGET_OVERHEAD else "NOT met"
    print(
        f"Ray's overhead (median of {len(ratios)}): {overhead:+.1%}  "
        f"target <= {TARGET_OVERHEAD:.0%}: {verdict}"
    )
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
