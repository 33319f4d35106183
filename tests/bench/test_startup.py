"""bench/startup.py runs and reports what it claims: both commands, paired, every setup
(the optimizer pack's where its library is installed)."""

from __future__ import annotations

import importlib.util
import re

from bench.startup import LIST, TORCH, main


def test_the_startup_benchmark_prints_paired_figures(capsys) -> None:
    assert main(["--repeats", "1"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0] == "start-up, median of 1 alternating runs each:"
    pattern = re.compile(
        r"  (no plugins|example plugin|optimizer pack) +import torch +(\d+\.\d\d) s"
        r" +optlab list +(\d+\.\d\d) s"
        r" +difference +([+-]\d+\.\d\d) s \(median of pairs\)"
    )
    setups = ["no plugins", "example plugin"]
    if importlib.util.find_spec("pytorch_optimizer") is None:
        lines.remove("  optimizer pack: not installed (pip install -r requirements-extra.txt)")
    else:
        setups.append("optimizer pack")
    found = [pattern.fullmatch(line) for line in lines[1:]]
    assert all(found) and [m.group(1) for m in found] == setups
    for m in found:
        torch_s, list_s, diff = (float(m.group(i)) for i in (2, 3, 4))
        assert torch_s > 0 and list_s > 0
        assert abs(list_s - torch_s - diff) < 0.02  # one pair: the difference is its own
    assert TORCH[1:] == ["-c", "import torch"] and LIST[1:] == ["-m", "optlab", "list"]
