"""Benchmark: the CNN training engine vs the tutorial's plain loop, jobs, memory.

Three measurements, taken on the same machine in the same run:

1. Throughput (training images per second, over all optimizers) of the
   engine training SGD + momentum and Adam on SeedNet in lockstep
   (`TrainingSession.run`: one uint8 batch gathered and normalised per step,
   shared by both copies) against the loop the torch tutorials teach, written
   here: a per-sample `Dataset` whose ``__getitem__`` turns one uint8 HWC
   numpy image into a float CHW tensor in [0, 1] and normalises it (what
   ``ToTensor()`` + ``Normalize()`` do; no PIL round trip, so this loop is a
   little faster than the real tutorial), a ``DataLoader(batch_size=64,
   shuffle=True, num_workers=0)``, and one optimizer's whole training after
   the other. Same model and initial weights (`build_model` with one seed),
   loss, steps, batch size, data and thread count. The engine also does its
   per-step bookkeeping (gradient norm, update ratio, accuracy) and the one
   evaluation it always does at the last step, on ``batch_size`` test images;
   the plain loop only accumulates ``loss.item()``, as the tutorial does.
2. The overhead of the live-streaming job machinery: the same engine config
   run directly (``list(TrainingSession(cfg, data).run())``) vs submitted to
   a `JobRegistry` and polled with ``job.poll()`` every 0.5 s, as the page
   does, until it finishes (and the direct run in a bare thread; see below).
3. The peak resident memory of a fresh process that builds the full-size
   synthetic set (50,000 training and 10,000 test images) and trains both
   optimizers a few steps on all 50,000 training images (``VmHWM``, as
   ``ru_maxrss`` on Linux includes the parent's; see `max_rss_mib`).

Data for 1 and 2: the CIFAR-10 subset in ``../shared/data/cifar10-subset``
when present (or ``--data DIR``), else the synthetic set; the output says
which. Each repetition runs the arms back to back, alternating (rotating)
which goes first to cancel drift, and the medians of the paired ratios are
printed (the machines are noisy; absolute times drift).

On a machine other processes keep busy, GNU OpenMP's default spin-waiting
makes training in the main thread erratic (a fresh thread, as a job uses,
spins less once the process has more OpenMP threads than cores): part 2
therefore also times the run in a bare worker thread, to separate the job
machinery's own cost from that. ``OMP_WAIT_POLICY=PASSIVE`` evens it out,
for every arm alike, so the benchmark reruns itself with it unless the
variable is set or ``--omp-wait-policy keep`` is given; the header prints
the setting.

Usage::

    python -m bench.cnn_throughput [--steps 60] [--repeats 5] [--batch-size 64]
    python -m bench.cnn_throughput --quick     # about 30 s
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from optlab.optim.config import OptimizerConfig
from optlab.train.data import (
    CIFAR10_MEAN,
    CIFAR10_STD,
    SYNTHETIC_CLASSES,
    DataError,
    LoadedData,
    load_cifar10,
    synthetic_cifar,
)
from optlab.train.jobs import DONE, JobRegistry
from optlab.train.models import build_model
from optlab.train.run import TrainingSession, TrainRecord, TrainRunConfig, TrainSlot

ROOT = Path(__file__).resolve().parent.parent
#: The real-format CIFAR-10 subset the tests use.
SUBSET_DIR = ROOT.parent / "shared" / "data" / "cifar10-subset" / "cifar-10-batches-py"
MODEL = "seednet"
SEED = 0
#: How often the page polls a running job, in seconds.
POLL_EVERY_S = 0.5
#: Targets from the issue.
TARGET_SPEEDUP = 1.15
TARGET_OVERHEAD = 0.03
TARGET_PEAK_MIB = 1024.0
#: Synthetic images when no real data is found (train, test).
SYNTHETIC_SIZE = (5000, 1000)
MIB = 1 << 20


def benchmark_slots() -> tuple[TrainSlot, ...]:
    """SGD + momentum and Adam, the workshop's default pair."""
    return (
        TrainSlot(OptimizerConfig.create("sgd_momentum", lr=0.01)),
        TrainSlot(OptimizerConfig.create("adam", lr=1e-3)),
    )


def engine_config(steps: int, batch_size: int, test_images: int | None = None) -> TrainRunConfig:
    """The engine's side: all training images, evaluation only where it must.

    The engine always evaluates at the last step (and at epoch ends); the
    test set is cut to ``test_images`` (default: one batch) so that this
    costs little, as the plain loop does not evaluate at all.
    """
    return TrainRunConfig(
        slots=benchmark_slots(),
        model=MODEL,
        batch_size=batch_size,
        steps=steps,
        epochs=None,
        train_limit=None,
        test_limit=test_images if test_images is not None else batch_size,
        eval_every=steps,
        seed=SEED,
        device="cpu",
    )


# --------------------------------------------------------------------------
# The tutorial's plain loop.


class TutorialDataset(Dataset):
    """One image at a time, the way ``ToTensor()`` + ``Normalize()`` feed it.

    Args:
        images: uint8 ``(N, H, W, C)`` numpy array (how torchvision's CIFAR10
            holds the images).
        labels: Class indices.
    """

    def __init__(self, images: np.ndarray, labels: Sequence[int]) -> None:
        self.images = images
        self.labels = list(labels)
        self.mean = torch.tensor(CIFAR10_MEAN, dtype=torch.float32).view(-1, 1, 1)
        self.std = torch.tensor(CIFAR10_STD, dtype=torch.float32).view(-1, 1, 1)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        # ToTensor: HWC uint8 -> CHW float32 in [0, 1].
        image = torch.from_numpy(self.images[index].transpose((2, 0, 1))).contiguous()
        image = image.to(torch.float32).div(255)
        # Normalize: per-channel (x - mean) / std, on a copy.
        image = image.clone().sub_(self.mean).div_(self.std)
        return image, self.labels[index]


def tutorial_dataset(data: LoadedData) -> TutorialDataset:
    """The training split as the tutorial holds it: HWC uint8 numpy, int labels."""
    hwc = data.train.images.permute(0, 2, 3, 1).contiguous().numpy()
    return TutorialDataset(hwc, data.train.labels.tolist())


def plain_loop(
    dataset: TutorialDataset, slots: Sequence[TrainSlot], steps: int, batch_size: int
) -> tuple[int, list[float]]:
    """Trains each optimizer in turn for ``steps`` steps, textbook style.

    Returns:
        The number of training images processed by all optimizers, and each
        optimizer's mean training loss.
    """
    images, mean_losses = 0, []
    for slot in slots:
        model = build_model(MODEL, SEED)
        optimizer = slot.optimizer.build(model.parameters())
        loss_fn = nn.CrossEntropyLoss()
        loader = DataLoader(
            dataset,
            batch_size=batch_size,
            shuffle=True,
            num_workers=0,
            generator=torch.Generator().manual_seed(SEED),
        )
        step, running_loss = 0, 0.0
        while step < steps:
            for inputs, labels in loader:
                optimizer.zero_grad()
                loss = loss_fn(model(inputs), labels)
                loss.backward()
                optimizer.step()
                running_loss += loss.item()
                images += len(labels)
                step += 1
                if step == steps:
                    break
        mean_losses.append(running_loss / steps)
    return images, mean_losses


# --------------------------------------------------------------------------
# The engine, directly and as a polled job.


def run_direct(cfg: TrainRunConfig, data: LoadedData) -> tuple[float, list]:
    """Seconds to run ``cfg`` straight through, and its records."""
    started = time.perf_counter()
    records = list(TrainingSession(cfg, data).run())
    return time.perf_counter() - started, records


def run_in_thread(cfg: TrainRunConfig, data: LoadedData) -> tuple[float, list]:
    """`run_direct` in a bare worker thread, as a job trains, without the job machinery.

    On a busy machine, training in the main thread and in a fresh thread can
    differ in speed (each thread has its own OpenMP team); this arm separates
    that from the cost of the records buffer, the lock and the polls.
    """
    result: list = []
    started = time.perf_counter()
    worker = threading.Thread(target=lambda: result.append(run_direct(cfg, data)))
    worker.start()
    worker.join()
    elapsed = time.perf_counter() - started
    if not result:
        raise SystemExit("the bare-thread run failed")
    return elapsed, result[0][1]


def run_job(cfg: TrainRunConfig, data: LoadedData) -> tuple[float, list, int]:
    """Seconds to run ``cfg`` as a job polled like the page polls, its records and polls."""
    registry = JobRegistry()
    started = time.perf_counter()
    job = registry.submit(cfg, data)
    polls = 0
    while not job.wait(POLL_EVERY_S):
        job.poll()
        polls += 1
    snapshot = job.poll()
    elapsed = time.perf_counter() - started
    if snapshot.state != DONE:
        raise SystemExit(f"benchmark job ended {snapshot.state}: {snapshot.message}")
    return elapsed, list(snapshot.records), polls + 1


def trained_images(records: list, batch_size: int) -> int:
    """Training images the engine processed, over all optimizers."""
    return batch_size * sum(1 for r in records if isinstance(r, TrainRecord))


def mean_train_losses(records: list, k: int) -> list[float]:
    """Each optimizer's mean raw training loss over the run."""
    losses: list[list[float]] = [[] for _ in range(k)]
    for r in records:
        if isinstance(r, TrainRecord):
            losses[r.index].append(r.train_loss)
    return [statistics.fmean(v) for v in losses]


# --------------------------------------------------------------------------
# Peak memory, in a fresh process.


def _proc_status_mib(field: str) -> float | None:
    """A ``kB`` field of ``/proc/self/status`` in MiB; None off Linux."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def ru_maxrss_mib() -> float:
    """``getrusage(RUSAGE_SELF).ru_maxrss`` in MiB (KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / MIB if sys.platform == "darwin" else peak / 1024


def max_rss_mib() -> float:
    """This process's resident-set high-water mark in MiB.

    On Linux this is ``VmHWM`` from ``/proc/self/status``: the peak of this
    process's own memory. ``ru_maxrss`` would not do in a child there: Linux
    carries the parent's high-water mark over ``fork`` + ``exec`` (a child of
    a 500 MiB process reports at least 500 MiB). Elsewhere, ``ru_maxrss``.
    """
    peak = _proc_status_mib("VmHWM")
    return peak if peak is not None else ru_maxrss_mib()


def memory_child(n_train: int, steps: int, batch_size: int) -> None:
    """Runs in the fresh process: loads the full-size set, trains, prints JSON."""
    baseline = max_rss_mib()  # torch and optlab imported, nothing loaded
    n_test = max(1, n_train // 5)
    train, test = synthetic_cifar(n_train, n_test, SEED)
    data = LoadedData(train, test, SYNTHETIC_CLASSES, "synthetic", "synthetic, full size")
    loaded, resident = max_rss_mib(), _proc_status_mib("VmRSS")
    cfg = engine_config(steps, batch_size, test_images=min(1000, n_test))
    records = list(TrainingSession(cfg, data).run())
    losses = mean_train_losses(records, len(cfg.slots))
    print(
        json.dumps(
            {
                "n_train": n_train,
                "n_test": n_test,
                "data_mib": (train.images.nbytes + test.images.nbytes) / MIB,
                "baseline_mib": baseline,
                "loaded_mib": loaded,
                "resident_mib": resident,
                "peak_mib": max_rss_mib(),
                "ru_maxrss_mib": ru_maxrss_mib(),
                "finite": all(math.isfinite(v) for v in losses),
            }
        )
    )


def measure_memory(n_train: int, steps: int, batch_size: int, threads: int) -> dict:
    """Peak RSS of `memory_child` in a new interpreter (nothing else counts)."""
    cmd = [
        sys.executable,
        "-m",
        "bench.cnn_throughput",
        "--memory-child",
        "--memory-images",
        str(n_train),
        "--memory-steps",
        str(steps),
        "--batch-size",
        str(batch_size),
        "--threads",
        str(threads),
    ]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"memory run failed:\n{done.stderr.strip()}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------------


def load_data(data_dir: str | None, synthetic: bool) -> LoadedData:
    """The named folder, else the shared subset, else the synthetic set."""
    why = "--synthetic given"
    if not synthetic:
        folder = data_dir or (str(SUBSET_DIR) if SUBSET_DIR.is_dir() else None)
        why = f"no {SUBSET_DIR}"
        if folder is not None:
            try:
                return load_cifar10(folder)
            except DataError as e:
                if data_dir:
                    raise SystemExit(str(e)) from None
                why = str(e)
    train, test = synthetic_cifar(*SYNTHETIC_SIZE, SEED)
    n_train, n_test = SYNTHETIC_SIZE
    return LoadedData(
        train,
        test,
        SYNTHETIC_CLASSES,
        "synthetic",
        f"synthetic shapes, not CIFAR-10 ({n_train} train / {n_test} test images; {why})",
    )


def verdict(ok: bool) -> str:
    return "met" if ok else "NOT met"


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=60, help="steps per run (default 60)")
    parser.add_argument("--repeats", type=int, default=5, help="paired repetitions (default 5)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2, help="torch threads; 0 leaves torch's")
    parser.add_argument("--data", default=None, help="a cifar-10-batches-py folder")
    parser.add_argument("--synthetic", action="store_true", help="use the synthetic set")
    parser.add_argument("--quick", action="store_true", help="a ~30 s run: 4 steps, 2 repeats")
    parser.add_argument("--memory-images", type=int, default=50_000, help="training images")
    parser.add_argument("--memory-steps", type=int, default=3)
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument(
        "--omp-wait-policy",
        choices=("passive", "keep"),
        default="passive",
        help="passive (default): rerun with OMP_WAIT_POLICY=PASSIVE unless it is set; "
        "keep: leave GNU OpenMP's spin-waiting as it is",
    )
    parser.add_argument("--memory-child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.omp_wait_policy == "passive" and "OMP_WAIT_POLICY" not in os.environ:
        # OpenMP reads it once, when torch loads it: too late in this process.
        argv = sys.argv[1:] if argv is None else list(argv)
        cmd = [sys.executable, "-m", "bench.cnn_throughput", *argv]
        env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE"}
        code = subprocess.run(cmd, cwd=ROOT, env=env, check=False).returncode
        if code:
            raise SystemExit(code)
        return
    if args.quick:
        args.steps, args.repeats = 4, 2
    for name in ("steps", "repeats", "batch_size", "memory_images", "memory_steps"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.threads > 0:
        torch.set_num_threads(args.threads)

    if args.memory_child:
        memory_child(args.memory_images, args.memory_steps, args.batch_size)
        return

    data = load_data(args.data, args.synthetic)
    cfg = engine_config(args.steps, args.batch_size)
    dataset = tutorial_dataset(data)
    k = len(cfg.slots)
    print(
        f"CNN engine benchmark: {MODEL}, {' vs '.join(s.label for s in cfg.slots)}, "
        f"batch {args.batch_size}, {args.steps} steps per run, {args.repeats} repetitions, "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU, "
        f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', 'unset')}"
    )
    print(f"  data: {data.source} ({'synthetic' if data.synthetic else 'real CIFAR-10'})")

    # Warm-up: allocator, oneDNN kernels, both code paths.
    warm = engine_config(min(args.steps, 3), args.batch_size)
    run_direct(warm, data)
    plain_loop(dataset, cfg.slots, min(args.steps, 3), args.batch_size)

    # 1. Engine vs plain loop.
    engine_ips, plain_ips, speedups = [], [], []
    engine_losses, plain_losses = [], []
    for rep in range(args.repeats):
        for side in ("engine", "plain") if rep % 2 == 0 else ("plain", "engine"):
            if side == "engine":
                seconds, records = run_direct(cfg, data)
                engine_ips.append(trained_images(records, args.batch_size) / seconds)
                engine_losses = mean_train_losses(records, k)
            else:
                started = time.perf_counter()
                images, plain_losses = plain_loop(dataset, cfg.slots, args.steps, args.batch_size)
                plain_ips.append(images / (time.perf_counter() - started))
        speedups.append(engine_ips[-1] / plain_ips[-1])
    speedup = statistics.median(speedups)
    print("1. training throughput, images/s over both optimizers (median)")
    plain_med, engine_med = statistics.median(plain_ips), statistics.median(engine_ips)
    print(f"   plain loop (Dataset + DataLoader, one after the other): {plain_med:7.1f}")
    print(f"   engine (lockstep, shared uint8 batches)               : {engine_med:7.1f}")
    print(
        "   mean train loss per optimizer: engine "
        + ", ".join(f"{v:.3f}" for v in engine_losses)
        + "; plain "
        + ", ".join(f"{v:.3f}" for v in plain_losses)
    )
    print(
        f"   engine/plain (median of {args.repeats} paired ratios): {speedup:.2f}x "
        f"[{min(speedups):.2f}..{max(speedups):.2f}]  target >= {TARGET_SPEEDUP:.2f}x: "
        f"{verdict(speedup >= TARGET_SPEEDUP)}"
    )

    # 2. Job machinery on vs off; the three arms rotate their order each repetition.
    times: dict[str, list[float]] = {"direct": [], "thread": [], "job": []}
    overheads, thread_overheads, polls = [], [], 0
    arms = list(times)
    for rep in range(args.repeats):
        counts = {}
        for arm in arms[rep % 3 :] + arms[: rep % 3]:
            if arm == "direct":
                seconds, records = run_direct(cfg, data)
            elif arm == "thread":
                seconds, records = run_in_thread(cfg, data)
            else:
                seconds, records, polls = run_job(cfg, data)
            times[arm].append(seconds)
            counts[arm] = len(records)
        if len(set(counts.values())) != 1:
            raise SystemExit(f"the arms gave different numbers of records: {counts}")
        overheads.append(times["job"][-1] / times["direct"][-1] - 1)
        thread_overheads.append(times["job"][-1] / times["thread"][-1] - 1)
    overhead = statistics.median(overheads)
    thread_overhead = statistics.median(thread_overheads)
    med = {arm: statistics.median(v) for arm, v in times.items()}
    print(f"2. live-streaming job machinery (poll every {POLL_EVERY_S} s), seconds per run, median")
    print(f"   direct list(TrainingSession.run()), main thread: {med['direct']:7.2f} s")
    print(f"   the same in a bare worker thread               : {med['thread']:7.2f} s")
    print(f"   JobRegistry.submit + job.poll() until done     : {med['job']:7.2f} s", end="")
    print(f" ({polls} polls)")
    print(
        f"   overhead job vs direct (median of {args.repeats} paired ratios - 1): "
        f"{overhead * 100:+.1f}% [{min(overheads) * 100:+.1f}%..{max(overheads) * 100:+.1f}%]  "
        f"target <= {TARGET_OVERHEAD * 100:.0f}%: {verdict(overhead <= TARGET_OVERHEAD)}"
    )
    print(
        f"   overhead job vs bare thread (machinery alone)          : "
        f"{thread_overhead * 100:+.1f}% "
        f"[{min(thread_overheads) * 100:+.1f}%..{max(thread_overheads) * 100:+.1f}%]  "
        f"target <= {TARGET_OVERHEAD * 100:.0f}%: {verdict(thread_overhead <= TARGET_OVERHEAD)}"
    )

    # 3. Peak memory with the full training set.
    if not args.skip_memory:
        mem = measure_memory(args.memory_images, args.memory_steps, args.batch_size, args.threads)
        print(
            f"3. peak memory, fresh process, synthetic {mem['n_train']} train / {mem['n_test']} "
            f"test images ({mem['data_mib']:.0f} MiB uint8), {args.memory_steps} steps x {k} "
            "optimizers"
        )
        print(f"   after importing torch + optlab : {mem['baseline_mib']:7.1f} MiB")
        resident = mem["resident_mib"]
        print(
            f"   after building the image set   : {mem['loaded_mib']:7.1f} MiB peak"
            + (f", {resident:.1f} MiB resident" if resident is not None else "")
        )
        print(
            f"   peak RSS (VmHWM)               : {mem['peak_mib']:7.1f} MiB  "
            f"target < {TARGET_PEAK_MIB:.0f} MiB: {verdict(mem['peak_mib'] < TARGET_PEAK_MIB)}"
        )
        print(
            f"   (its ru_maxrss: {mem['ru_maxrss_mib']:.1f} MiB; on Linux never below the "
            f"{ru_maxrss_mib():.0f} MiB of the parent, carried over fork + exec)"
        )
        if not mem["finite"]:
            raise SystemExit("the memory run's losses are not finite")

    if not all(math.isfinite(v) for v in engine_losses + plain_losses):
        raise SystemExit("a training loss is not finite: the comparison is void")


if __name__ == "__main__":
    main()
