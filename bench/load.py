"""Load test: N concurrent browser sessions against one real `streamlit run` server.

It starts the app on 127.0.0.1 and drives it from one headless Chromium
(Debian's, never `playwright install`) with one browser context per session,
all running at once on Playwright's async API. Each session starts rounds
until ``--duration`` seconds have passed (a round begun is finished, so every
action is measured as often as the others); a round is:

- ``home``: loads ``/`` and waits until the default comparison is drawn;
- ``lr_change``: types a new learning rate for Adam and waits for the redraw;
- ``sweep``: opens the Sweeps page with a small grid (20 x 20 cells, 100 steps)
  and waits for the heatmap and the best cell's replay;
- one session in three also runs ``cnn_page`` (opens the CNN lab on a tiny
  synthetic run) and ``cnn_job`` (presses Start, waits for "Finished"; the
  time includes any wait in the job queue).

Every learning rate and every sweep grid is new (numbered), so the server
computes each of them instead of answering from its caches; the default
comparison on ``/`` is the same for all, as in a workshop.

The browser shares the machine's cores with the server, unlike a workshop's
laptops; the report splits the machine's CPU use into server, browser, this
harness and other processes. To keep the browser's share down, Chromium runs
without WebGL (``--disable-3d-apis``) unless ``--webgl`` is given: the
playground's hidden 3-D tab would otherwise be rendered in software on every
page load. Nothing the server sends changes.

A time to result is counted only for an action that succeeded. Errors are
counted by kind: ``exception`` (an exception box on the page), ``websocket``
(a websocket the page did not close itself), ``timeout``, ``job`` (a CNN job
that ended other than "Finished") and ``other``.

Before the N sessions, one session runs the same actions (one warm-up round,
then ``--baseline-runs`` measured rounds): its median per action is the
single-session time, and ``ideal = single x sessions doing it / cores``. The
server's RSS, CPU and thread count are read from ``/proc/<pid>/status`` and
``/proc/<pid>/stat`` by a background thread: cold (just started), before (after
the single session closed: every lazy start-up cost paid), during, after (all
sessions closed, and kept no longer than Streamlit's ``--session-ttl``). The
job queue is watched twice: from the pages (the queue positions they show)
and, exactly, inside the server by a counting wrapper around `Job._train`
and `Job._work` (read-only; ``--no-probe``
runs plain ``streamlit run`` instead).

``--soak K`` adds K sequential runs from one browser session and compares
the server's RSS after run 20 with the RSS after the last one. A soak run is
a new comparison on the playground (``lr_change``); every fifth is a new
sweep instead and every tenth a CNN training (``cnn_page`` and ``cnn_job``),
each followed by ``home`` to come back: every kind of work the server keeps
state for, 200 runs in a few minutes.

Usage::

    python -m bench.load [--sessions 30] [--duration 300] [--soak 0|200] [--port 0]

Targets (PASS/FAIL each; exit status 1 when one fails, 2 when the harness
itself broke): zero errors; every action's N-session p95 within 1.5x its
ideal; never more concurrent trainings than the server's cap, and queue
positions shown whenever a job had to wait; after every session closed, the
thread count back to its starting level and RSS within 50 MB of it; the soak's
RSS growth from round 20 to the last round within 50 MB.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import itertools
import json
import math
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.request
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.server import (
    CHROMIUM,
    CHROMIUM_ARGS,
    PATHS_ARE,
    free_port,
    run_args,
    stop,
    wait_healthy,
)

ROOT = Path(__file__).resolve().parent.parent
# The browser tests' flags, plus no throttling of pages Chromium deems in the background.
LOAD_CHROMIUM_ARGS = [
    *CHROMIUM_ARGS,
    "--disable-background-timer-throttling",
    "--disable-renderer-backgrounding",
    "--disable-backgrounding-occluded-windows",
]

ACTIONS = ("home", "lr_change", "sweep", "cnn_page", "cnn_job")
ERROR_KINDS = ("exception", "websocket", "timeout", "job", "other")
#: Targets.
P95_FACTOR = 1.5
RSS_SLACK_MB = 50.0
SOAK_REFERENCE_RUN = 20
#: A job that waited this long for a trainer must have shown its queue position.
QUEUE_SHOWN_AFTER_S = 2.0

# --------------------------------------------------------------------------- helpers


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
    """Reads the server's /proc every ``interval`` seconds into ``samples``, and the
    machine's CPU use (by the server, the browser, this harness, the rest) every
    fourth time into ``machine``."""

    def __init__(self, pid: int, interval: float = 0.5) -> None:
        super().__init__(name="load-sampler", daemon=True)
        self.pid = pid
        self.interval = interval
        self.samples: list[Sample] = []
        self.machine: list[MachineSample] = []
        self._stop_event = threading.Event()
        self._lock = threading.Lock()

    def run(self) -> None:
        me, n = os.getpid(), 0
        while not self._stop_event.is_set():
            with contextlib.suppress(OSError, ValueError, IndexError):
                s = read_process(self.pid)
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
                        subtree_ticks(table, me, {self.pid}),
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


def _fmt(x: float, digits: int = 2) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


# --------------------------------------------------------------------------- the server


def http_get(url: str) -> int:
    """The status of a plain GET (0 when it failed)."""
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            resp.read()
            return resp.status
    except OSError:
        return 0


SERVE_FLAG = "--_serve-with-probe"


def _install_probe(path: str) -> None:
    """In the server process: count trainings and jobs, write the counts to ``path``.

    Wraps `Job._run` (a training runs, holding one of the registry's
    slots, while it runs) and `Job._work` (a job is active, queued or
    training, while its worker runs). On SIGUSR1 it also writes the names of the process's Python
    threads to ``path + ".threads"`` (what a thread count is made of). Nothing
    is changed but the counting.
    """
    from optlab.train import jobs

    lock = threading.Lock()
    state = {"running": 0, "max_running": 0, "active": 0, "max_active": 0, "cap": 0}
    state.update(trainings=0, waits=[], seconds=[])
    began: dict[int, float] = {}

    def dump() -> None:
        tmp = f"{path}.tmp"
        with open(tmp, "w") as f:
            json.dump(state, f)
        os.replace(tmp, path)

    original_train = jobs.Job._run
    original_work = jobs.Job._work

    def train(self):
        with lock:
            waited = time.monotonic() - began.get(threading.get_ident(), time.monotonic())
            state["waits"].append(round(waited, 3))
            state["running"] += 1
            state["trainings"] += 1
            state["max_running"] = max(state["max_running"], state["running"])
            dump()
        started = time.monotonic()
        try:
            return original_train(self)
        finally:
            with lock:
                state["running"] -= 1
                state["seconds"].append(round(time.monotonic() - started, 3))
                dump()

    def work(self):
        with lock:
            began[threading.get_ident()] = time.monotonic()
            state["cap"] = getattr(self._slots, "_initial_value", 0)
            state["active"] += 1
            state["max_active"] = max(state["max_active"], state["active"])
            dump()
        try:
            return original_work(self)
        finally:
            with lock:
                began.pop(threading.get_ident(), None)
                state["active"] -= 1
                dump()

    def list_threads(*_) -> None:
        names = sorted(t.name for t in threading.enumerate())
        tmp = f"{path}.threads.tmp"
        with open(tmp, "w") as f:
            json.dump(names, f)
        os.replace(tmp, f"{path}.threads")

    jobs.Job._run = train
    jobs.Job._work = work

    def collect(*_) -> None:
        # Python frees objects in reference cycles only when its collector runs; a
        # reading taken before that would count garbage as kept memory.
        found = gc.collect()
        tmp = f"{path}.gc.tmp"
        with open(tmp, "w") as f:
            json.dump(found, f)
        os.replace(tmp, f"{path}.gc")

    signal.signal(signal.SIGUSR1, list_threads)
    signal.signal(signal.SIGUSR2, collect)
    with lock:
        dump()


def _serve_with_probe(argv: list[str]) -> None:
    """``python -m bench.load --_serve-with-probe FILE streamlit-args...``."""
    probe_file, *streamlit_args = argv
    sys.path.insert(0, str(ROOT))
    _install_probe(probe_file)
    from streamlit.web.cli import main

    sys.argv = ["streamlit", *streamlit_args]
    main(prog_name="streamlit")


@dataclass
class Server:
    url: str
    proc: subprocess.Popen
    probe_file: Path | None
    log: Path

    def _ask(self, sig: int, suffix: str, timeout: float) -> object | None:
        """Signals the probe and reads its answer from ``<probe file><suffix>``."""
        if self.probe_file is None:
            return None
        target = Path(f"{self.probe_file}{suffix}")
        target.unlink(missing_ok=True)
        self.proc.send_signal(sig)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError, ValueError):
                return json.loads(target.read_text())
            time.sleep(0.1)
        return None

    def python_threads(self, timeout: float = 5.0) -> list[str] | None:
        """The names of the server's Python threads now (through the probe), or None."""
        return self._ask(signal.SIGUSR1, ".threads", timeout)

    def collect_garbage(self, timeout: float = 30.0) -> int | None:
        """Runs Python's cycle collector in the server; the objects it found, or None."""
        return self._ask(signal.SIGUSR2, ".gc", timeout)

    def probe(self) -> dict | None:
        if self.probe_file is None:
            return None
        try:
            return json.loads(self.probe_file.read_text())
        except (OSError, ValueError):
            return None


@contextlib.contextmanager
def serve(workdir: Path, port: int, probe: bool, env: dict[str, str], session_ttl: int = 120):
    """Runs `streamlit run app.py` on 127.0.0.1 (through the probe unless told not to).

    ``session_ttl`` is Streamlit's ``server.disconnectedSessionTTL``: how long
    a closed page's session is kept for it to reconnect to.
    """
    port = port or free_port()
    args = [*run_args(port), f"--server.disconnectedSessionTTL={session_ttl}"]
    probe_file = workdir / "probe.json" if probe else None
    if probe_file is not None:
        cmd = [sys.executable, "-m", "bench.load", SERVE_FLAG, str(probe_file), *args]
    else:
        cmd = [sys.executable, "-m", "streamlit", *args]
    log = workdir / "server.log"
    cache = workdir / "cache"
    cache.mkdir(exist_ok=True)
    server_env = {
        **os.environ,
        "OPTLAB_CACHE_DIR": str(cache),
        "OPTLAB_DATA_DIR": "",
        "OPTLAB_CIFAR_URL": "",
        **env,
    }
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, env=server_env)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, proc)
        yield Server(url, proc, probe_file, log)
    finally:
        stop(proc, timeout=15)


# --------------------------------------------------------------------------- the pages

IDLE = "() => !document.querySelector('[data-testid=stStatusWidget]')"
# The sweep heatmap's grid size and the replay path (tests/browser/test_sweep.py).
SWEEP_DONE = """([nx, ny]) => {
  const plots = [...document.querySelectorAll('.js-plotly-plot')];
  const g = plots.find(g => g._fullData && g._fullData.some(t => t.name === 'cells'));
  // One clickable point per cell (the heatmap itself is drawn from the cells' edges).
  if (!g || g._fullData.find(t => t.name === 'cells').x.length !== nx * ny) return false;
  const r = plots.find(g => g._fullData && g._fullData.length && g._fullData[0].type === 'contour');
  return !!(r && r._fullData.some(t => t.mode === 'lines+markers'));
}"""
MAIN_TEXT = """() => {
  const m = document.querySelector('[data-testid=stMain]');
  return {text: m ? m.innerText : '',
          exceptions: document.querySelectorAll('[data-testid=stException]').length};
}"""
DEFAULT_PATHS = ["SGD (momentum=0.9)", "Adam (lr=0.1)", "RMSprop"]
QUEUED_RE = re.compile(r"Waiting for a free trainer: number (\d+) in the queue \((\d+) training")
FINISHED_RE = re.compile(r"Finished ([\d,]+) steps in")
STOPPED_RE = re.compile(
    r"Stopped at step [\d,]+ \(([^)]*)\)|training failed: [^\n]*|Cannot (?:start|train)[^\n]*"
)
RUNNING_RE = re.compile(r"Step [\d,]+ of [\d,]+")

SWEEP_N, SWEEP_STEPS = 20, 100
CNN_STEPS = 30
CNN_QUERY = (
    "page=cnn&data=synthetic&opt=sgd:lr=0.01,momentum=0.9&opt=adam"
    f"&steps={CNN_STEPS}&train=512&test=100&batch=64&eval=10"
)


def sweep_query(k: int) -> str:
    """A small sweep grid, different for every ``k`` (its lr axis ends at 0.01 + k * 1e-6)."""
    hi = f"{0.01 + (k % 9000) * 1e-6:.6g}"
    return (
        "page=sweep&mode=sweep&surface=rosenbrock&opt=sgd:momentum=0.9"
        f"&x=lr=1e-05:{hi}:log:{SWEEP_N}&y=momentum=0:0.99:lin:{SWEEP_N}"
        f"&steps={SWEEP_STEPS}&metric=final_loss"
    )


def adam_lr(k: int) -> str:
    """A learning rate for Adam, different for every ``k`` below 8000: 0.01000 .. 0.08999."""
    return f"{0.01 + (k % 8000) * 1e-5:.5g}"


def describe_error(err: BaseException, default: str = "no message") -> str:
    """``Type: first line`` of an exception (asyncio's timeouts have no message)."""
    lines = str(err).strip().splitlines()
    return f"{type(err).__name__}: {(lines[0] if lines else default)[:200]}"


class ActionError(Exception):
    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


@dataclass
class Record:
    """Everything one phase measured."""

    times: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    errors: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    queue_positions: set[int] = field(default_factory=set)
    caps_shown: set[int] = field(default_factory=set)
    running_now: set[int] = field(default_factory=set)
    max_running_seen: int = 0
    actors: dict[str, set[int]] = field(default_factory=lambda: defaultdict(set))
    rounds: int = 0

    def error_count(self) -> int:
        return sum(len(v) for v in self.errors.values())


class Numbering:
    """A process-wide numbering of learning rates and sweep grids (never repeated)."""

    def __init__(self, start: int = 0) -> None:
        self._next = start

    def __call__(self) -> int:
        self._next += 1
        return self._next


class BrowserSession:
    """One browser context and its tab, driving the app through the actions."""

    def __init__(self, idx: int, context, page, url: str, timeout_s: float, counter: Numbering):
        self.idx = idx
        self.context = context
        self.page = page
        self.url = url
        self.timeout_s = timeout_s
        self.counter = counter
        self.sockets: set = set()
        self.retired: set = set()
        self.lost: list[str] = []
        page.on("websocket", self._on_websocket)

    @classmethod
    async def open(cls, browser, idx: int, url: str, timeout_s: float, counter: Numbering):
        context = await browser.new_context(viewport={"width": 1400, "height": 1000})
        page = await context.new_page()
        page.set_default_timeout(timeout_s * 1000)
        return cls(idx, context, page, url, timeout_s, counter)

    def _on_websocket(self, ws) -> None:
        if "/_stcore/stream" not in ws.url:
            return

        def closed(_=None) -> None:
            if ws not in self.retired:
                self.lost.append(f"websocket closed by the other side ({ws.url})")

        def failed(error=None) -> None:
            if ws not in self.retired:
                self.lost.append(f"websocket error: {error}")

        ws.on("close", closed)
        ws.on("socketerror", failed)
        self.sockets.add(ws)

    def _retire_sockets(self) -> None:
        self.retired |= self.sockets

    async def goto(self, path: str) -> None:
        self._retire_sockets()  # navigating away closes them: not an error
        await self.page.goto(f"{self.url}{path}")

    async def close(self) -> None:
        self._retire_sockets()
        with contextlib.suppress(Exception):
            await self.context.close()

    async def idle(self) -> None:
        await self.page.wait_for_function(IDLE)

    # The actions. Each returns when its result is on the page.

    async def home(self, rec: Record) -> None:
        await self.goto("/")
        await self.page.wait_for_function(PATHS_ARE, arg=DEFAULT_PATHS)
        await self.idle()

    async def lr_change(self, rec: Record) -> None:
        from optlab.optim.config import OptimizerConfig

        value = adam_lr(self.counter())
        want = list(DEFAULT_PATHS)
        want[1] = OptimizerConfig.create("adam", lr=float(value)).label
        box = self.page.get_by_label("lr", exact=True).nth(1)
        await box.fill(value)
        await box.press("Enter")
        await self.page.wait_for_function(PATHS_ARE, arg=want)
        await self.idle()

    async def sweep(self, rec: Record) -> None:
        await self.goto(f"/sweeps?{sweep_query(self.counter())}")
        await self.page.wait_for_function(SWEEP_DONE, arg=[SWEEP_N, SWEEP_N])
        await self.idle()

    async def cnn_page(self, rec: Record) -> None:
        await self.goto(f"/cnn-lab?{CNN_QUERY}")
        start = self.page.get_by_test_id("stSidebar").get_by_role("button", name="Start")
        await start.wait_for()
        await self.idle()
        if not await start.is_enabled():
            raise ActionError("other", "the CNN lab's Start button is disabled")

    async def cnn_job(self, rec: Record) -> None:
        start = self.page.get_by_test_id("stSidebar").get_by_role("button", name="Start")
        await start.click()
        deadline = time.monotonic() + self.timeout_s
        try:
            while True:
                seen = await self.page.evaluate(MAIN_TEXT)
                text = seen["text"]
                if seen["exceptions"]:
                    raise ActionError("exception", "exception box on the CNN lab")
                if found := QUEUED_RE.search(text):
                    rec.queue_positions.add(int(found[1]))
                    rec.caps_shown.add(int(found[2]))
                    rec.running_now.discard(self.idx)
                elif FINISHED_RE.search(text):
                    break
                elif found := STOPPED_RE.search(text):
                    raise ActionError("job", f"the CNN job ended: {found[0]}")
                elif RUNNING_RE.search(text):
                    rec.running_now.add(self.idx)
                    rec.max_running_seen = max(rec.max_running_seen, len(rec.running_now))
                if time.monotonic() > deadline:
                    raise ActionError("timeout", f"no 'Finished' within {self.timeout_s:.0f} s")
                await asyncio.sleep(0.5)
        finally:
            rec.running_now.discard(self.idx)
        await self.idle()

    async def act(self, name: str, rec: Record) -> bool:
        """Runs one action and records its time or its error; whether it succeeded."""
        action: Callable = getattr(self, name)
        rec.actors[name].add(self.idx)
        lost_before = len(self.lost)
        t0 = time.monotonic()
        kind, message = None, ""
        try:
            await asyncio.wait_for(action(rec), self.timeout_s + 10)
            elapsed = time.monotonic() - t0
            if await self.page.locator("[data-testid=stException]").count():
                kind, message = "exception", "exception box after the action"
        except ActionError as err:
            kind, message = err.kind, str(err)
        except TimeoutError as err:
            kind, message = "timeout", describe_error(err, f"over {self.timeout_s + 10:.0f} s")
        except Exception as err:
            is_timeout = type(err).__name__ == "TimeoutError"
            kind = "timeout" if is_timeout else "other"
            message = describe_error(err)
        if kind in ("timeout", "other"):  # an exception box explains a wait that never ended
            with contextlib.suppress(Exception):
                box = self.page.locator("[data-testid=stException]")
                if await box.count():
                    text = (await box.first.inner_text(timeout=5000)).strip()
                    kind, message = "exception", f"{text[:200]} (after {message})"
        if len(self.lost) > lost_before:  # a lost websocket explains whatever else happened
            kind, message = "websocket", self.lost[-1]
        if kind is None:
            rec.times[name].append(elapsed)
            return True
        rec.errors[kind].append(f"session {self.idx}, {name}: {message}")
        return False

    async def soak_run(self, rec: Record, i: int) -> bool:
        """Soak run ``i`` (from 0): a comparison, or every fifth a sweep, every tenth
        a CNN training; the first (and any after a page change) loads the home page."""
        if i % 10 == 9:
            names = ("cnn_page", "cnn_job", "home")
        elif i % 5 == 4:
            names = ("sweep", "home")
        else:
            names = ("home", "lr_change") if i == 0 else ("lr_change",)
        for name in names:
            if not await self.act(name, rec):
                return False
        rec.rounds += 1
        return True

    async def round(self, rec: Record, cnn: bool) -> bool:
        """One round of the actions; stops early at an error."""
        names = ACTIONS if cnn else ACTIONS[:3]
        for name in names:
            if not await self.act(name, rec):
                return False
        rec.rounds += 1
        return True


# --------------------------------------------------------------------------- the run


@dataclass
class Results:
    sessions: int
    duration: float
    cores: int
    cold: Usage | None = None
    before: Usage | None = None
    during: Usage | None = None
    after: Usage | None = None
    settle_s: float = math.nan
    single: Record = field(default_factory=Record)
    load: Record = field(default_factory=Record)
    load_wall_s: float = math.nan
    probe: dict | None = None
    rss_before_gc: float = math.nan
    gc_found: int | None = None
    soak_rss: list[float] = field(default_factory=list)
    soak: Record = field(default_factory=Record)
    soak_wall_s: float = math.nan
    cpu: dict[str, dict[str, float] | None] = field(default_factory=dict)
    py_threads: dict[str, list[str] | None] = field(default_factory=dict)


async def drive(args, server: Server, sampler: Sampler, res: Results, hz: int) -> None:
    from playwright.async_api import async_playwright

    counter = Numbering()
    timeout = args.action_timeout
    res.cold = usage(sampler.between(0, time.monotonic()), hz)
    async with async_playwright() as p:
        browser = await p.chromium.launch(
            executable_path=CHROMIUM,
            args=LOAD_CHROMIUM_ARGS + ([] if args.webgl else ["--disable-3d-apis"]),
            headless=True,
        )
        try:
            # The single session: a warm-up round (its errors count), then measured rounds.
            one = await BrowserSession.open(browser, 0, server.url, timeout, counter)
            warm = Record()
            await one.round(warm, cnn=True)
            for kind, errs in warm.errors.items():
                res.single.errors[kind].extend(f"(warm-up) {e}" for e in errs)
            t0 = time.monotonic()
            for _ in range(args.baseline_runs):
                await one.round(res.single, cnn=True)
            res.cpu["single"] = sampler.machine_use(t0, time.monotonic(), hz)
            await one.close()
            await asyncio.sleep(args.settle_pause)
            t_before = time.monotonic()
            await asyncio.sleep(3.0)
            res.before = usage(sampler.between(t_before, time.monotonic()), hz)
            res.py_threads["before"] = await asyncio.to_thread(server.python_threads)
            log(f"single session done; before: {res.before}")

            if args.sessions > 0:
                sessions = [
                    await BrowserSession.open(browser, i + 1, server.url, timeout, counter)
                    for i in range(args.sessions)
                ]
                start = time.monotonic()
                until = start + args.duration

                async def loop(s: BrowserSession) -> None:
                    cnn = (s.idx - 1) % 3 == 0  # sessions 1, 4, 7, ...: a third
                    while time.monotonic() < until:  # a round begun is finished
                        await s.round(res.load, cnn)

                await asyncio.gather(*(loop(s) for s in sessions))
                end = time.monotonic()
                res.load_wall_s = end - start
                res.during = usage(sampler.between(start, end), hz, peak=True)
                res.cpu["load"] = sampler.machine_use(start, end, hz)
                log(f"{args.sessions} sessions done after {end - start:.0f} s")
                for s in sessions:
                    await s.close()
                # Streamlit keeps a closed page's session for server.disconnectedSessionTTL
                # seconds (a flaky connection comes back to it), and drops expired ones
                # when it next stores a session: past the TTL, one visit does that.
                closed = time.monotonic()
                await asyncio.sleep(max(0.0, closed + args.session_ttl + 2 - time.monotonic()))
                visitor = await BrowserSession.open(browser, 0, server.url, timeout, counter)
                await visitor.act("home", Record())
                await visitor.close()
                # Then wait until the thread count is back (or the wait runs out),
                # with a plain GET / every 5 s as a monitoring check would send:
                # AnyIO (Starlette's file serving) retires idle worker threads only
                # when it is next used.
                waited = last_get = time.monotonic()
                while time.monotonic() - waited < args.settle_timeout:
                    last = sampler.between(time.monotonic() - 1.5, time.monotonic())
                    if last and last[-1].threads <= res.before.threads:
                        break
                    if time.monotonic() - last_get >= 5:
                        await asyncio.to_thread(http_get, f"{server.url}/")
                        last_get = time.monotonic()
                    await asyncio.sleep(1.0)
                res.rss_before_gc = read_process(server.proc.pid).rss_mb
                res.gc_found = await asyncio.to_thread(server.collect_garbage)
                res.settle_s = time.monotonic() - closed
                await asyncio.sleep(args.settle_pause)
                t_after = time.monotonic()
                await asyncio.sleep(3.0)
                res.after = usage(sampler.between(t_after, time.monotonic()), hz)
                res.py_threads["after"] = await asyncio.to_thread(server.python_threads)
                log(f"after: {res.after}")

            if args.soak > 0:
                soaker = await BrowserSession.open(browser, 0, server.url, timeout, counter)
                t0 = time.monotonic()
                for i in range(args.soak):
                    if not await soaker.soak_run(res.soak, i):
                        await soaker.act("home", res.soak)  # back to a known page
                    res.soak_rss.append(read_process(server.proc.pid).rss_mb)
                    if (i + 1) % 20 == 0:
                        log(f"soak run {i + 1}: RSS {res.soak_rss[-1]:.0f} MB")
                res.soak_wall_s = time.monotonic() - t0
                res.cpu["soak"] = sampler.machine_use(t0, time.monotonic(), hz)
                await soaker.close()
        finally:
            await browser.close()
            res.probe = server.probe()


def log(message: str) -> None:
    print(f"[load {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- the report


@dataclass(frozen=True)
class Target:
    name: str
    ok: bool | None  # None: not measured in this run
    detail: str


def single_time(res: Results, action: str) -> float:
    values = res.single.times.get(action, [])
    return statistics.median(values) if values else math.nan


def targets(res: Results) -> list[Target]:
    out: list[Target] = []
    errors = res.single.error_count() + res.load.error_count() + res.soak.error_count()
    out.append(Target("zero errors", errors == 0, f"{errors} error(s)"))
    if res.sessions > 0:
        worst, parts = 0.0, []
        missing = [a for a in ACTIONS if not res.load.times.get(a)]
        for action in ACTIONS:
            ratio = p95_ratio(res, action)
            if not math.isnan(ratio):
                worst = max(worst, ratio)
                parts.append(f"{action} {ratio:.2f}")
        ok = not missing and worst <= P95_FACTOR
        detail = ", ".join(parts) + (f"; no times for {', '.join(missing)}" if missing else "")
        out.append(Target(f"p95 within {P95_FACTOR}x of ideal", ok, detail))
    probe = res.probe
    if probe is not None:
        cap, peak = probe.get("cap", 0), probe.get("max_running", 0)
        waited = [w for w in probe.get("waits", []) if w >= QUEUE_SHOWN_AFTER_S]
        shown = res.load.queue_positions | res.soak.queue_positions | res.single.queue_positions
        ok_cap = probe.get("trainings", 0) > 0 and cap > 0 and peak <= cap
        ok_shown = not waited or bool(shown)
        out.append(
            Target(
                "job cap honoured, queue positions shown",
                ok_cap and ok_shown,
                f"max {peak} training(s) at once, cap {cap}; {len(waited)} job(s) waited "
                f">= {QUEUE_SHOWN_AFTER_S:g} s, positions shown: {sorted(shown) or 'none'}",
            )
        )
    else:
        shown = res.load.queue_positions
        out.append(
            Target(
                "job cap honoured, queue positions shown",
                None,
                f"no server probe (--no-probe); positions shown: {sorted(shown) or 'none'}",
            )
        )
    if res.after is not None and res.before is not None:
        ok_t = res.after.threads <= res.before.threads
        out.append(
            Target(
                "threads back to the starting level",
                ok_t,
                f"before {res.before.threads}, after {res.after.threads} "
                f"(checked {res.settle_s:.0f} s after the last page closed)",
            )
        )
        grow = res.after.rss_mb - res.before.rss_mb
        out.append(
            Target(
                f"RSS within {RSS_SLACK_MB:g} MB of the start",
                grow <= RSS_SLACK_MB,
                f"before {res.before.rss_mb:.0f} MB, after {res.after.rss_mb:.0f} MB "
                f"({grow:+.0f} MB)",
            )
        )
    if res.soak_rss:
        ref = soak_reference(len(res.soak_rss))
        grow = res.soak_rss[-1] - res.soak_rss[ref - 1]
        out.append(
            Target(
                f"soak: RSS growth from run {ref} to run {len(res.soak_rss)} "
                f"within {RSS_SLACK_MB:g} MB",
                grow <= RSS_SLACK_MB and res.soak.rounds == len(res.soak_rss),
                f"{res.soak_rss[ref - 1]:.0f} -> {res.soak_rss[-1]:.0f} MB ({grow:+.0f} MB); "
                f"{res.soak.rounds} of {len(res.soak_rss)} runs complete",
            )
        )
    return out


def soak_reference(runs: int) -> int:
    """The run whose RSS the soak compares with (1-based): run 20, or half-way in a short soak."""
    return max(1, min(SOAK_REFERENCE_RUN, runs // 2))


def actors(res: Results, action: str) -> int:
    return len(res.load.actors.get(action, ())) or res.sessions


def ideal(res: Results, action: str) -> float:
    """Single-session time x sessions doing this action / cores."""
    return single_time(res, action) * actors(res, action) / res.cores


def p95_ratio(res: Results, action: str) -> float:
    s = summarize(res.load.times.get(action, []))
    base = ideal(res, action)
    return s.p95 / base if base and not math.isnan(base) else math.nan


def report(res: Results, args) -> str:
    lines: list[str] = []
    add = lines.append
    add(
        f"== Load test: {res.sessions} sessions for {res.duration:.0f} s "
        f"(ran {_fmt(res.load_wall_s, 0)} s), {res.cores} cores, one headless Chromium =="
    )
    add(
        f"Chromium WebGL {'on' if args.webgl else 'off'}; action timeout "
        f"{args.action_timeout:g} s; server env: {' '.join(args.server_env) or 'as inherited'}"
        f"{'; no server probe' if args.no_probe else ''}"
    )
    add("")
    add("== Actions (seconds to result; N-session phase) ==")
    add(
        f"{'action':<10} {'sessions':>8} {'count':>6} {'p50':>7} {'p95':>7} {'max':>7} "
        f"{'single':>7} {'ideal':>7} {'p95/ideal':>9}"
    )
    for action in ACTIONS:
        s = summarize(res.load.times.get(action, []))
        add(
            f"{action:<10} {actors(res, action):>8} {s.count:>6} {_fmt(s.p50):>7} "
            f"{_fmt(s.p95):>7} {_fmt(s.max):>7} {_fmt(single_time(res, action)):>7} "
            f"{_fmt(ideal(res, action)):>7} {_fmt(p95_ratio(res, action)):>9}"
        )
    add(f"rounds completed: {res.load.rounds}")
    add("")
    add("== Single-session baseline ==")
    add(f"{'action':<10} {'count':>6} {'p50':>7} {'max':>7}")
    for action in ACTIONS:
        s = summarize(res.single.times.get(action, []))
        add(f"{action:<10} {s.count:>6} {_fmt(s.p50):>7} {_fmt(s.max):>7}")
    add(f"ideal = single-session median x sessions doing the action / {res.cores} cores")
    add("")
    add("== Errors ==")
    for label, rec in (("single", res.single), ("load", res.load), ("soak", res.soak)):
        counts = ", ".join(f"{k} {len(rec.errors.get(k, []))}" for k in ERROR_KINDS)
        add(f"{label:<7} total {rec.error_count()}: {counts}")
        for kind in ERROR_KINDS:
            for message in rec.errors.get(kind, [])[: args.show_errors]:
                add(f"        [{kind}] {message}")
            more = len(rec.errors.get(kind, [])) - args.show_errors
            if more > 0:
                add(f"        [{kind}] ... and {more} more")
    add("")
    add("== Job queue ==")
    probe = res.probe
    if probe is not None:
        waits = probe.get("waits", [])
        add(
            f"server probe: cap {probe.get('cap')}, max concurrent trainings "
            f"{probe.get('max_running')}, max jobs active (queued + training) "
            f"{probe.get('max_active')}, trainings {probe.get('trainings')}"
        )
        for label, values in (
            ("queue wait per job", waits),
            ("training time per job", probe.get("seconds", [])),
        ):
            if values:
                add(
                    f"{label} (s): p50 {_fmt(percentile(values, 50))}, "
                    f"p95 {_fmt(percentile(values, 95))}, max {_fmt(max(values))}"
                )
    else:
        add("server probe: off (--no-probe)")
    shown = sorted(res.load.queue_positions | res.single.queue_positions)
    add(f"queue positions shown on the pages: {shown or 'none'}")
    add(f"cap shown on the pages: {sorted(res.load.caps_shown) or 'none'}")
    add(f"max sessions seen training at once by the pages: {res.load.max_running_seen}")
    add("")
    add("== Server (RSS MB, threads, CPU % of one core) ==")
    add(f"{'phase':<8} {'RSS':>8} {'threads':>8} {'CPU mean':>9} {'CPU peak':>9}")
    for label, u in (
        ("cold", res.cold),
        ("before", res.before),
        ("during", res.during),
        ("after", res.after),
    ):
        if u is None:
            add(f"{label:<8} {'-':>8}")
            continue
        add(
            f"{label:<8} {_fmt(u.rss_mb, 0):>8} {u.threads:>8} {_fmt(u.cpu_pct, 0):>9} "
            f"{_fmt(u.cpu_peak_pct, 0):>9}"
        )
    add(
        "cold: just started; before: after the single session closed; "
        "during: peaks of the N-session phase; after: all sessions closed, past the "
        "session TTL, and Python's cycle collector run"
    )
    if res.gc_found is not None:
        add(
            f"after, before the collector ran: {_fmt(res.rss_before_gc, 0)} MB "
            f"({res.gc_found} unreachable objects collected)"
        )
    before, after = res.py_threads.get("before"), res.py_threads.get("after")
    if before is not None and after is not None:
        gone = Counter(before) - Counter(after)
        new = Counter(after) - Counter(before)
        add(
            f"Python threads: before {len(before)}, after {len(after)}"
            + (f"; new after: {', '.join(sorted(new.elements()))}" if new else "")
            + (f"; gone after: {', '.join(sorted(gone.elements()))}" if gone else "")
        )
    add("machine CPU (mean % of one core): total = server + browser + harness + other")
    for phase, use in res.cpu.items():
        if use:
            add(
                f"  {phase:<7} total {use['machine']:.0f} = server {use['server']:.0f} + "
                f"browser {use['browser']:.0f} + harness {use['harness']:.0f} + "
                f"other {use['other']:.0f}"
            )
    if res.soak_rss:
        add("")
        n = len(res.soak_rss)
        add(f"== Soak: {n} runs from one session in {_fmt(res.soak_wall_s, 0)} s ==")
        marks = sorted({1, soak_reference(n), n // 4, n // 2, 3 * n // 4, n} - {0})
        add("RSS after run: " + ", ".join(f"{m}: {res.soak_rss[m - 1]:.0f} MB" for m in marks))
        for action in ACTIONS:
            s = summarize(res.soak.times.get(action, []))
            if s.count:
                add(f"{action:<10} {s.count:>6} p50 {_fmt(s.p50)} p95 {_fmt(s.p95)}")
    add("")
    add("== Targets ==")
    for t in targets(res):
        verdict = "n/a " if t.ok is None else ("PASS" if t.ok else "FAIL")
        add(f"{verdict} {t.name}: {t.detail}")
    return "\n".join(lines)


def to_json(res: Results) -> dict:
    def rec(r: Record) -> dict:
        return {
            "times": dict(r.times),
            "errors": dict(r.errors),
            "queue_positions": sorted(r.queue_positions),
            "rounds": r.rounds,
        }

    return {
        "sessions": res.sessions,
        "duration": res.duration,
        "cores": res.cores,
        "usage": {
            k: vars(v) if v else None
            for k, v in (
                ("cold", res.cold),
                ("before", res.before),
                ("during", res.during),
                ("after", res.after),
            )
        },
        "single": rec(res.single),
        "load": rec(res.load),
        "soak": {**rec(res.soak), "rss_mb": res.soak_rss},
        "probe": res.probe,
        "cpu": res.cpu,
        "python_threads": res.py_threads,
        "targets": [vars(t) for t in targets(res)],
    }


def parse_args(argv: Iterable[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.load", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--sessions", type=int, default=30, help="concurrent sessions (30)")
    parser.add_argument("--duration", type=float, default=300, help="seconds of load (300)")
    parser.add_argument("--soak", type=int, default=0, help="sequential soak runs (0: none)")
    parser.add_argument("--port", type=int, default=0, help="server port (0: a free one)")
    parser.add_argument("--baseline-runs", type=int, default=2, help="measured single rounds")
    parser.add_argument("--action-timeout", type=float, default=180, help="seconds per action")
    parser.add_argument("--settle-timeout", type=float, default=90, help="wait for threads (s)")
    parser.add_argument("--settle-pause", type=float, default=3, help="pause before a reading")
    parser.add_argument(
        "--session-ttl",
        type=int,
        default=120,
        help="the server's server.disconnectedSessionTTL, waited for before the after "
        "reading (120: Streamlit's default)",
    )
    parser.add_argument("--max-jobs", type=int, default=0, help="OPTLAB_MAX_JOBS (0: default)")
    parser.add_argument("--no-probe", action="store_true", help="plain streamlit run")
    parser.add_argument(
        "--server-env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="an environment variable for the server (repeatable)",
    )
    parser.add_argument(
        "--webgl",
        action="store_true",
        help="let Chromium draw the 3-D view (in software, on the server's cores)",
    )
    parser.add_argument("--json", type=Path, help="also write the raw results here")
    parser.add_argument("--show-errors", type=int, default=5, help="messages shown per kind")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a smoke run: 3 sessions for 10 s, one measured single round",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.sessions, args.duration, args.baseline_runs = 3, 10, 1
        args.settle_timeout, args.session_ttl = 45, 5
    if args.sessions < 0 or args.duration < 0 or args.soak < 0:
        parser.error("--sessions, --duration and --soak must not be negative")
    return args


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == [SERVE_FLAG]:
        _serve_with_probe(argv[1:])
        return 0
    args = parse_args(argv)
    if not Path(CHROMIUM).exists():
        print(f"Chromium not found at {CHROMIUM} (set OPTLAB_CHROMIUM)", file=sys.stderr)
        return 2
    hz = os.sysconf("SC_CLK_TCK")
    res = Results(args.sessions, args.duration, os.cpu_count() or 1)
    env = {"OPTLAB_MAX_JOBS": str(args.max_jobs)} if args.max_jobs else {}
    for item in args.server_env:
        key, sep, value = item.partition("=")
        if not sep or not key:
            print(f"--server-env wants KEY=VALUE, not {item!r}", file=sys.stderr)
            return 2
        env[key] = value
    with tempfile.TemporaryDirectory(prefix="optlab-load-") as tmp:
        try:
            with serve(Path(tmp), args.port, not args.no_probe, env, args.session_ttl) as server:
                log(f"server {server.url}, pid {server.proc.pid}")
                sampler = Sampler(server.proc.pid)
                sampler.start()
                try:
                    asyncio.run(drive(args, server, sampler, res, hz))
                finally:
                    sampler.stop()
                if server.proc.poll() is not None:
                    res.load.errors["other"].append(
                        f"the server exited with status {server.proc.returncode}"
                    )
        except Exception:
            print(f"load harness failed:\n{traceback.format_exc()}", file=sys.stderr)
            log_tail = Path(tmp, "server.log")
            if log_tail.exists():
                print(log_tail.read_text(errors="replace")[-3000:], file=sys.stderr)
            return 2
    print(report(res, args), flush=True)
    if args.json:
        args.json.write_text(json.dumps(to_json(res), indent=1, default=str))
    return 0 if all(t.ok is not False for t in targets(res)) else 1


if __name__ == "__main__":
    sys.exit(main())
