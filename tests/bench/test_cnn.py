"""The CNN throughput benchmark: its plain loop is the tutorial's, and it runs end to end."""

from __future__ import annotations

import re
import subprocess
import sys

import torch

from bench.cnn_throughput import TutorialDataset, engine_config, plain_loop, tutorial_dataset
from optlab.train.data import SYNTHETIC_CLASSES, LoadedData, normalise, synthetic_cifar
from tests.support.resources import ROOT


def _data(n_train: int = 96) -> LoadedData:
    train, test = synthetic_cifar(n_train, 16, seed=3)
    return LoadedData(train, test, SYNTHETIC_CLASSES, "synthetic", "test")


def test_tutorial_dataset_feeds_the_engines_inputs() -> None:
    data = _data()
    dataset = tutorial_dataset(data)
    assert isinstance(dataset, TutorialDataset)
    expected = normalise(data.train.images[:5])
    for i in range(5):
        image, label = dataset[i]
        assert image.dtype == torch.float32 and image.shape == (3, 32, 32)
        torch.testing.assert_close(image, expected[i], rtol=1e-5, atol=1e-5)
        assert label == int(data.train.labels[i])


def test_plain_loop_trains_every_optimizer_its_steps() -> None:
    data = _data(n_train=20)  # one full batch of 16 and a partial one of 4
    cfg = engine_config(steps=3, batch_size=16)
    images, losses = plain_loop(tutorial_dataset(data), cfg.slots, 3, 16)
    # 16 + 4 + 16 per optimizer: the loader's epochs wrap, as the tutorial's do.
    assert images == len(cfg.slots) * (16 + 4 + 16)
    assert len(losses) == len(cfg.slots)
    assert all(torch.isfinite(torch.tensor(losses)))


def test_benchmark_runs_and_reports_all_three_figures() -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.cnn_throughput",
            "--steps",
            "2",
            "--repeats",
            "1",
            "--batch-size",
            "8",
            "--memory-images",
            "256",
            "--memory-steps",
            "1",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert re.search(r"data: .*\((real CIFAR-10|synthetic)\)", out), out
    assert re.search(r"engine/plain \(median of 1 paired ratios\): \d+\.\d\dx", out), out
    assert re.search(r"overhead job vs direct .*: [+-]\d+\.\d%", out), out
    peak = re.search(r"peak RSS \(VmHWM\) +: +(\d+\.\d) MiB", out)
    assert peak and 50 < float(peak.group(1)) < 4096, out
