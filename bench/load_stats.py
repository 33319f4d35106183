"""What the load test measures about processes and times: percentiles, and
readings of /proc (a process's RSS, threads and CPU ticks; the machine's CPU
split between the server, the browser, the harness and everything else),
plus the health-check poller that shows how quickly the server answers while
it is under load."""

from __future__ import annotations

import contextlib
import itertools
import math
import os
import statistics
import threading
import time
import urllib.request
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100) of ``values``, linear between closest ranks.

    The same as ``numpy.percentile``'s default method; NaN for no values.
    """
    if not 0 <= q <= 100:
        raise ValueError(f"percentile {q} is not within 0..100")
    data = sorted(values)
    if not data:
        return math.nan
    pos = (len(data) - 1) * q / 100
    lo = math.floor(pos)
    hi = min(lo + 1, len(data) - 1)
    return data[lo] + (data[hi] - data[lo]) * (pos - lo)


@dataclass(frozen=True)
class Summary:
    """p50, p95 and max of some times (NaN when there are none)."""

    count: int
    p50: float
    p95: float
    max: float


def summarize(values: Sequence[float]) -> Summary:
    """Count, p50, p95 and max of ``values``."""
    return Summary(
        len(values),
        percentile(values, 50),
        percentile(values, 95),
        max(values) if values else math.nan,
    )


def parse_status(text: str) -> dict[str, int]:
    """``VmRSS`` (kB) and ``Threads`` of a ``/proc/<pid>/status`` text.

    Returns ``{"rss_kb": ..., "threads": ...}``; raises ValueError when either is missing.
    """
    found: dict[str, int] = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key == "VmRSS":
            number, unit = value.split()
            if unit.lower() != "kb":
                raise ValueError(f"VmRSS in unexpected unit {unit!r}")
            found["rss_kb"] = int(number)
        elif key == "Threads":
            found["threads"] = int(value)
    if set(found) != {"rss_kb", "threads"}:
        raise ValueError("not a /proc/<pid>/status text (no VmRSS or Threads)")
    return found


def parse_stat(text: str) -> tuple[int, int]:
    """``(utime, stime)`` in clock ticks from a ``/proc/<pid>/stat`` line.

    The command name (field 2) is in parentheses and may itself hold spaces
    and parentheses, so the fields are counted from the last ``)``.
    """
    head, sep, rest = text.rpartition(")")
    if not sep or "(" not in head:
        raise ValueError("not a /proc/<pid>/stat line")
    fields = rest.split()  # fields[0] is field 3 (state)
    return int(fields[14 - 3]), int(fields[15 - 3])


def cpu_percent(ticks_before: int, ticks_after: int, seconds: float, hz: int) -> float:
    """CPU use between two readings, in percent of one core (200 = two cores busy)."""
    if seconds <= 0:
        return math.nan
    return 100.0 * (ticks_after - ticks_before) / hz / seconds


@dataclass(frozen=True)
class Sample:
    t: float
    rss_mb: float
    threads: int
    cpu_ticks: int


def read_process(pid: int) -> Sample:
    """One reading of a process's RSS, thread count and CPU ticks from /proc."""
    status = parse_status(Path(f"/proc/{pid}/status").read_text())
    utime, stime = parse_stat(Path(f"/proc/{pid}/stat").read_text())
    return Sample(time.monotonic(), status["rss_kb"] / 1024, status["threads"], utime + stime)


def read_processes(pids: Sequence[int]) -> Sample:
    """`read_process` of several processes added up (a server of several processes)."""
    parts = [read_process(pid) for pid in pids]
    return Sample(
        time.monotonic(),
        sum(p.rss_mb for p in parts),
        sum(p.threads for p in parts),
        sum(p.cpu_ticks for p in parts),
    )


def parse_machine_stat(text: str) -> tuple[int, int]:
    """``(busy, total)`` clock ticks of all CPUs from ``/proc/stat``'s ``cpu`` line.

    Idle time is ``idle`` + ``iowait`` (fields 4 and 5); ``guest`` time is
    already inside ``user``, so only the first eight fields are summed.
    """
    for line in text.splitlines():
        fields = line.split()
        if fields and fields[0] == "cpu":
            values = [int(v) for v in fields[1:9]]
            total = sum(values)
            return total - values[3] - values[4], total
    raise ValueError("no cpu line in /proc/stat")


def process_table() -> dict[int, tuple[int, int]]:
    """Every process's ``(parent pid, utime + stime)``, from /proc."""
    table: dict[int, tuple[int, int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            text = Path(entry.path, "stat").read_text()
        except OSError:
            continue
        rest = text.rpartition(")")[2].split()
        table[int(entry.name)] = (int(rest[1]), int(rest[11]) + int(rest[12]))
    return table


def descendants(roots: Sequence[int], table: dict[int, tuple[int, int]] | None = None) -> list[int]:
    """Every descendant of ``roots`` (not the roots), from ``table`` or /proc now."""
    table = process_table() if table is None else table
    children: dict[int, list[int]] = defaultdict(list)
    for pid, (ppid, _) in table.items():
        children[ppid].append(pid)
    found, todo = [], [c for r in roots for c in children[r]]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children[pid])
    return found


def subtree_ticks(table: dict[int, tuple[int, int]], root: int, skip: set[int]) -> int:
    """CPU ticks of ``root``'s descendants (not ``root``), leaving out ``skip``'s subtrees."""
    children: dict[int, list[int]] = defaultdict(list)
    for pid, (ppid, _) in table.items():
        children[ppid].append(pid)
    total, todo = 0, list(children[root])
    while todo:
        pid = todo.pop()
        if pid in skip:
            continue
        total += table[pid][1]
        todo.extend(children[pid])
    return total


@dataclass(frozen=True)
class MachineSample:
    t: float
    busy: int  # all CPUs, clock ticks
    total: int
    browser: int  # this harness's descendants but the server (Playwright's driver, Chromium)
    harness: int  # this process


class Sampler(threading.Thread):
    """Reads the server's /proc every ``interval`` seconds into ``samples`` (its
    processes added up: replicas and HAProxy), and the machine's CPU use (by the
    server, the browser, this harness, the rest) every fourth time into ``machine``."""

    def __init__(
        self, pids: Sequence[int] | Callable[[], Sequence[int]], interval: float = 0.5
    ) -> None:
        super().__init__(name="load-sampler", daemon=True)
        # A callable is asked at every reading: the server's processes may change
        # (a replica's engine process starts with its first page).
        self.pids = pids if callable(pids) else (lambda fixed=list(pids): fixed)
        self.interval = interval
        self.samples: list[Sample] = []
        self.machine: list[MachineSample] = []
        self._stop_event = threading.Event()
        self._lock = threading.Lock()

    def run(self) -> None:
        me, n = os.getpid(), 0
        while not self._stop_event.is_set():
            pids: list[int] = []
            with contextlib.suppress(OSError, ValueError, IndexError):
                pids = list(self.pids())
                s = read_processes(pids)
                with self._lock:
                    self.samples.append(s)
            if n % 4 == 0:
                with contextlib.suppress(OSError, ValueError, IndexError):
                    busy, total = parse_machine_stat(Path("/proc/stat").read_text())
                    table = process_table()
                    m = MachineSample(
                        time.monotonic(),
                        busy,
                        total,
                        subtree_ticks(table, me, set(pids)),
                        table[me][1],
                    )
                    with self._lock:
                        self.machine.append(m)
            n += 1
            self._stop_event.wait(self.interval)

    def stop(self) -> None:
        self._stop_event.set()
        self.join(timeout=5)

    def between(self, t0: float, t1: float) -> list[Sample]:
        with self._lock:
            return [s for s in self.samples if t0 <= s.t <= t1]

    def machine_use(self, t0: float, t1: float, hz: int) -> dict[str, float] | None:
        """Mean CPU use over ``[t0, t1]`` in percent of one core: the machine, the
        server, the browser, this harness and everything else."""
        with self._lock:
            ms = [m for m in self.machine if t0 <= m.t <= t1]
            ss = [s for s in self.samples if t0 <= s.t <= t1]
        if len(ms) < 2 or len(ss) < 2:
            return None
        a, b = ms[0], ms[-1]
        cores = os.cpu_count() or 1
        if b.total == a.total:
            return None
        machine = 100.0 * cores * (b.busy - a.busy) / (b.total - a.total)
        server = cpu_percent(ss[0].cpu_ticks, ss[-1].cpu_ticks, ss[-1].t - ss[0].t, hz)
        browser = cpu_percent(a.browser, b.browser, b.t - a.t, hz)
        harness = cpu_percent(a.harness, b.harness, b.t - a.t, hz)
        return {
            "machine": machine,
            "server": server,
            "browser": browser,
            "harness": harness,
            "other": max(0.0, machine - server - browser - harness),
        }


@dataclass(frozen=True)
class Usage:
    """The server over one stretch of time."""

    rss_mb: float  # median over the stretch (the peak for "during")
    threads: int  # last reading (the peak for "during")
    cpu_pct: float  # mean over the stretch, percent of one core
    cpu_peak_pct: float  # the busiest sampling interval


def usage(samples: Sequence[Sample], hz: int, peak: bool = False) -> Usage:
    """Condenses samples: medians and last values, or peaks with ``peak``."""
    if not samples:
        return Usage(math.nan, 0, math.nan, math.nan)
    steps = [
        cpu_percent(a.cpu_ticks, b.cpu_ticks, b.t - a.t, hz) for a, b in itertools.pairwise(samples)
    ]
    span = samples[-1].t - samples[0].t
    mean = cpu_percent(samples[0].cpu_ticks, samples[-1].cpu_ticks, span, hz)
    return Usage(
        max(s.rss_mb for s in samples) if peak else statistics.median(s.rss_mb for s in samples),
        max(s.threads for s in samples) if peak else samples[-1].threads,
        mean if span > 0 else math.nan,
        max(steps) if steps else math.nan,
    )


def fmt(x: float, digits: int = 2) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


class HealthPoller(threading.Thread):
    """Times ``GET <url>/_stcore/health`` every ``interval`` seconds.

    What a load balancer or an attendee's reconnecting page sees: the health
    check is answered on the server's event loop, so a slow answer means the
    loop (which also carries every websocket) is starved. A failed or timed-out
    check counts as ``timeout`` seconds and is counted in ``failures``.
    """

    def __init__(self, url: str, interval: float = 0.5, timeout: float = 10.0) -> None:
        super().__init__(name="load-health", daemon=True)
        self.url = f"{url.rstrip('/')}/_stcore/health"
        self.interval = interval
        self.timeout = timeout
        self.times: list[float] = []
        self.failures: list[str] = []
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.is_set():
            t0 = time.monotonic()
            try:
                with urllib.request.urlopen(self.url, timeout=self.timeout) as resp:
                    resp.read()
                    if resp.status != 200:
                        self.failures.append(f"status {resp.status}")
            except OSError as err:
                self.failures.append(f"{type(err).__name__}: {err}"[:200])
            elapsed = time.monotonic() - t0
            self.times.append(min(elapsed, self.timeout))
            self._stop_event.wait(max(0.0, self.interval - elapsed))

    def stop(self) -> Summary:
        """Stops polling; the summary of the times measured."""
        self._stop_event.set()
        self.join(timeout=self.timeout + 5)
        return summarize(self.times)


def threads_left(before: list[str], after: list[str], pools: dict[str, int]) -> list[str]:
    """The threads running after a load that were not running before it and are no
    worker of a bounded thread pool (``pools``: name prefix -> max workers; a pool's
    workers are named ``<prefix>_<n>``, n from 0, and wait for work as long as the
    pool lives). What sessions left behind; sorted."""
    left = []
    for name in sorted((Counter(after) - Counter(before)).elements()):
        prefix, _, n = name.rpartition("_")
        if not (prefix in pools and n.isdigit() and int(n) < pools[prefix]):
            left.append(name)
    return left
