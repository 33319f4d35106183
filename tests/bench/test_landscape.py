"""bench/landscape.py runs end to end and its figures agree with one another."""

from __future__ import annotations

import re

from bench.landscape import TARGET_RATIO, main


def test_the_landscape_benchmark_prints_consistent_figures(capsys) -> None:
    argv = ["--grid", "3", "--images", "64", "--points", "4", "--repeats", "1"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    lines = out.strip().splitlines()
    assert re.fullmatch(
        r"loss landscape benchmark: seednet \(145578 parameters\), random plane \(seed 0\) "
        r"a, b in \[-1, 1\], 3x3 grid, 64 images, torch \S+, \d+ threads, CPU",
        lines[0],
    ), lines[0]
    assert re.search(r"^  data: .*\((real CIFAR-10|synthetic)\)$", out, re.M), out
    flops = re.search(r"one forward: (\d+\.\d) MFLOP per image", out)
    assert flops and 24 < float(flops.group(1)) < 26, out  # SeedNet's convolutions and linears

    repeat = re.search(
        r"repeat 1: loop (\d+\.\d\d) s, sequential (\d+\.\d\d) s, vmap (\d+\.\d\d) s", out
    )
    assert repeat, out
    once = dict(zip(("loop", "sequential", "vmap"), map(float, repeat.groups()), strict=True))
    arm = re.compile(
        r"   (loop|sequential|vmap) +(\d+\.\d\d) s median, +(\d+) images/s"
        r"(?:, loop/\1 (\d+\.\d\d)x \(median of 1 paired ratios\), max deviation (\S+))?"
    )
    found = {m.group(1): m for m in map(arm.fullmatch, lines) if m}
    assert set(found) == {"loop", "sequential", "vmap"}, out
    work = 4 * 64  # images evaluated per arm
    for name, m in found.items():
        seconds = float(m.group(2))
        assert seconds == once[name] > 0  # one repeat: the median is that repeat
        # The rate and the ratio use the unrounded seconds: within the rounding's reach.
        low, high = seconds - 0.005, seconds + 0.005
        assert work / high - 1 <= int(m.group(3)) <= work / max(low, 1e-9) + 1
        if name != "loop":
            ratio = float(m.group(4))
            loop_low, loop_high = once["loop"] - 0.005, once["loop"] + 0.005
            assert loop_low / high - 0.005 <= ratio <= loop_high / max(low, 1e-9) + 0.005
            assert float(m.group(5)) <= 1e-5
    default = re.search(
        r"default method on cpu \((\w+)\): (\d+\.\d\d)x the loop  target >= 2x: (.+)", out
    )
    assert default and default.group(1) == "sequential", out
    assert default.group(2) == found["sequential"].group(4)
    assert default.group(3) == ("met" if float(default.group(2)) >= TARGET_RATIO else "NOT met")

    # 3 <= 7 points per axis: one pass, and no verdict for a setup the target is not about.
    grid = re.search(
        r"2\. grid_passes \(sequential, coarse 7x7 first\): 3x3 pass (\d+\.\d\d) s  (.+)", out
    )
    assert grid and float(grid.group(1)) > 0, out
    assert grid.group(2) == "(the 30 s target is for 25x25 on 1024 images)"
    assert re.search(r"max relative deviation from the loop: \S+ \(tolerance 1e-05\)$", out)
