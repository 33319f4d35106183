"""The sweep benchmark: its plain side is a real torch.optim loop, and it runs end to end."""

from __future__ import annotations

import re
import subprocess
import sys

from bench.sweep import plain_run, sweep_config
from optlab.sweep.run import run_sweep
from tests.support.resources import ROOT


def test_plain_runs_end_where_the_sweep_cells_end() -> None:
    cfg = sweep_config(n=3, steps=40)
    result = run_sweep(cfg)
    for index in range(cfg.cells):
        x, y, loss = plain_run(cfg, index)
        iy, ix = divmod(index, cfg.x.n)
        assert (x, y) == tuple(result.final[iy, ix])  # bit for bit
        assert loss == result.final_loss[iy, ix]


def test_the_benchmark_prints_its_ratio_and_deviation() -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.sweep",
            "--n",
            "4",
            "--steps",
            "20",
            "--sample",
            "2",
            "--repeats",
            "1",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert re.search(r"median ratio \(plain / batched\): \d+x", proc.stdout), proc.stdout
    assert "max deviation on the samples:   0.00e+00" in proc.stdout
    assert "whole CLI command" in proc.stdout
