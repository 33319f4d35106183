"""bench/study.py runs end to end on a real local Ray and its figures agree."""

from __future__ import annotations

import re

from bench.study import TARGET_OVERHEAD, main


def test_the_study_benchmark_prints_consistent_figures(capsys) -> None:
    assert main(["--synthetic", "--steps", "2"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("study benchmark: 12 trials (2 optimizers x 3 points x 2 seeds), 2 steps")
    inline = float(re.search(r"inline \(1 thread\) +(\d+\.\d\d) s", out).group(1))
    one = re.search(
        r"ray, 1 CPU +(\d+\.\d\d) s  ray/inline (\d\.\d{3})  overhead ([+-]\d+\.\d)% "
        r"\(([+-]\d+) ms per trial\)",
        out,
    )
    assert one, out
    ray_s, ratio, overhead, per_trial = map(float, one.groups())
    assert abs(ratio - ray_s / inline) <= 0.01 + ratio * 0.01
    assert abs(overhead - (ratio - 1) * 100) <= 0.11
    assert abs(per_trial - (ray_s - inline) * 1000 / 12) <= 2 + abs(per_trial) * 0.02
    every = re.search(r"ray, (\d+) CPUs +(\d+\.\d\d) s  inline/ray (\d+\.\d\d)x faster", out)
    assert every and int(every.group(1)) >= 1, out
    start = re.search(r"ray start-up (\d+\.\d) s and (\d+\.\d) s .* held (\d+) MB", out)
    assert start and float(start.group(1)) > 0 and int(start.group(3)) > 100, out
    assert "every trial's numbers equal inline's bit for bit: yes" in out
    verdict = re.search(r"Ray's overhead \(median of 1\): ([+-]\d+\.\d)%  target <= 10%: (.+)", out)
    assert verdict and float(verdict.group(1)) == overhead, out
    assert verdict.group(2) == ("met" if overhead / 100 <= TARGET_OVERHEAD else "NOT met")
