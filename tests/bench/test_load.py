"""The load harness: its helpers on known inputs, and a short run end to end.

The end-to-end run starts its own server and drives it with the protocol
client (`python -m bench.load --quick`: one single session, then 3
concurrent sessions for 10 s, then a 5-run soak of comparisons and a sweep)
and checks that the report has every section, no errors, and that the JSON
holds the same figures.
Whether the timing targets pass depends on the machine, so the exit status
may be 0 or 1, never 2 (the harness itself broke). The browser client
(``--client browser``, one Chromium for every session) is the same harness
with `bench.load_browser.BrowserSession` in place of the protocol session;
its quick run takes minutes, so it is run by hand (docs/load-test.md).
"""

from __future__ import annotations

import asyncio
import math
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from bench.load import parse_args, trains
from bench.load_actions import (
    ACTIONS,
    ERROR_KINDS,
    LoadSession,
    Numbering,
    Record,
    adam_lr,
    cnn_query,
    sweep_query,
)
from bench.load_report import soak_reference
from bench.load_server import merge_probes
from bench.load_stats import (
    HealthPoller,
    Sample,
    Usage,
    cpu_percent,
    descendants,
    parse_machine_stat,
    parse_stat,
    parse_status,
    percentile,
    process_table,
    read_process,
    read_processes,
    subtree_ticks,
    summarize,
    threads_left,
    usage,
)
from bench.st_protocol import trace_length
from tests.support.load_run import run_load

STATUS = """Name:\tpython3
Umask:\t0022
State:\tS (sleeping)
Tgid:\t4242
Pid:\t4242
VmPeak:\t 2868564 kB
VmSize:\t 2868564 kB
VmHWM:\t  612000 kB
VmRSS:\t  466316 kB
RssAnon:\t  400000 kB
Threads:\t17
SigQ:\t0/95694
"""


def stat_line(comm: str, utime: int, stime: int) -> str:
    """A /proc/<pid>/stat line: pid (comm) state, then fields 4.. with utime/stime at 14/15."""
    fields = ["S", "1", "4242", "4242", "0", "-1", "4194560", "100", "0", "0", "0"]
    fields += [str(utime), str(stime), "5", "6", "20", "0", "17", "0", "123456"]
    return f"4242 ({comm}) " + " ".join(fields) + " 0 0\n"


# ------------------------------------------------------------------ percentiles


def test_percentiles_match_linear_interpolation_between_ranks() -> None:
    values = [4.0, 1.0, 3.0, 2.0]  # unsorted on purpose
    assert percentile(values, 0) == 1.0
    assert percentile(values, 100) == 4.0
    assert percentile(values, 50) == 2.5
    assert percentile(values, 95) == pytest.approx(3.85)  # 3 + 0.85 * (4 - 3)
    assert percentile(list(range(1, 101)), 95) == pytest.approx(95.05)
    assert percentile([7.0], 95) == 7.0
    assert math.isnan(percentile([], 50))
    with pytest.raises(ValueError):
        percentile(values, 101)


def test_percentiles_agree_with_numpy() -> None:
    np = pytest.importorskip("numpy")
    rng = np.random.default_rng(0)
    for n in (1, 2, 5, 31, 200):
        data = rng.exponential(2.0, n).tolist()
        for q in (0, 5, 50, 90, 95, 99, 100):
            assert percentile(data, q) == pytest.approx(float(np.percentile(data, q)))


def test_summary_of_times() -> None:
    s = summarize([1.0, 2.0, 3.0, 10.0])
    assert (s.count, s.p50, s.max) == (4, 2.5, 10.0)
    assert s.p95 == pytest.approx(3.0 + 0.85 * 7.0)
    empty = summarize([])
    assert empty.count == 0 and math.isnan(empty.p50) and math.isnan(empty.max)


# ------------------------------------------------------------------ /proc readers


def test_status_gives_rss_and_threads() -> None:
    assert parse_status(STATUS) == {"rss_kb": 466316, "threads": 17}
    with pytest.raises(ValueError):
        parse_status("Name:\tpython3\nThreads:\t3\n")  # a kernel thread has no VmRSS


def test_stat_counts_fields_after_the_last_parenthesis() -> None:
    assert parse_stat(stat_line("python3", 1234, 56)) == (1234, 56)
    # A command name may hold spaces and parentheses.
    assert parse_stat(stat_line("we ird) (name", 7, 8)) == (7, 8)
    with pytest.raises(ValueError):
        parse_stat("no parentheses here")


def test_machine_stat_busy_and_total() -> None:
    text = "cpu  100 5 50 1000 20 1 2 3 4 5\ncpu0 50 2 25 500 10 0 1 1 2 2\nintr 1 2\n"
    busy, total = parse_machine_stat(text)
    assert total == 100 + 5 + 50 + 1000 + 20 + 1 + 2 + 3  # guest time is inside user
    assert busy == total - 1000 - 20
    with pytest.raises(ValueError):
        parse_machine_stat("intr 1 2\n")


def test_cpu_percent_is_per_core() -> None:
    assert cpu_percent(0, 200, 1.0, 100) == 200.0  # two cores busy for a second
    assert cpu_percent(50, 100, 2.0, 100) == 25.0
    assert math.isnan(cpu_percent(0, 10, 0.0, 100))


def test_usage_condenses_samples() -> None:
    samples = [
        Sample(0.0, 500.0, 8, 0),
        Sample(1.0, 520.0, 12, 50),
        Sample(2.0, 510.0, 9, 250),
    ]
    calm = usage(samples, 100)
    assert (calm.rss_mb, calm.threads) == (510.0, 9)  # median RSS, last thread count
    assert calm.cpu_pct == pytest.approx(125.0)  # 250 ticks over 2 s
    assert calm.cpu_peak_pct == pytest.approx(200.0)
    peak = usage(samples, 100, peak=True)
    assert (peak.rss_mb, peak.threads) == (520.0, 12)


def test_reading_this_process() -> None:
    stop = threading.Event()
    extra = threading.Thread(target=stop.wait)
    extra.start()
    try:
        s = read_process(os.getpid())
        assert s.threads >= 2
    finally:
        stop.set()
        extra.join()
    rss_kb = parse_status(Path("/proc/self/status").read_text())["rss_kb"]
    assert abs(s.rss_mb - rss_kb / 1024) < 50
    # CPU ticks: burn a little CPU, see them grow by about as much.
    hz = os.sysconf("SC_CLK_TCK")
    before, t0 = read_process(os.getpid()).cpu_ticks, time.process_time()
    while time.process_time() - t0 < 0.3:
        pass
    used = read_process(os.getpid()).cpu_ticks - before
    assert 0.15 * hz <= used <= 2 * hz


def test_reading_several_processes_adds_them_up() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        time.sleep(0.3)
        me, other = read_process(os.getpid()), read_process(child.pid)
        both = read_processes([os.getpid(), child.pid])
    finally:
        child.kill()
        child.wait()
    assert both.threads == me.threads + other.threads
    assert both.rss_mb == pytest.approx(me.rss_mb + other.rss_mb, abs=20)
    assert me.cpu_ticks + other.cpu_ticks <= both.cpu_ticks <= me.cpu_ticks + other.cpu_ticks + 50


def test_the_replicas_probes_add_up_and_a_replica_over_its_cap_shows() -> None:
    one = {"running": 0, "max_running": 1, "active": 0, "max_active": 4, "cap": 1}
    one.update(trainings=3, waits=[0.1, 5.0], seconds=[4.0, 4.1, 4.2])
    two = {"running": 1, "max_running": 1, "active": 1, "max_active": 2, "cap": 1}
    two.update(trainings=2, waits=[0.0], seconds=[3.9])
    merged = merge_probes([one, two])
    assert merged["replicas"] == 2
    assert (merged["cap"], merged["max_running"], merged["trainings"]) == (2, 2, 5)
    assert (merged["running"], merged["active"], merged["max_active"]) == (1, 1, 6)
    assert merged["waits"] == [0.1, 5.0, 0.0]
    assert merged["seconds"] == [4.0, 4.1, 4.2, 3.9]
    assert merged["over_cap"] is False
    # Two trainings at once on one replica of cap 1, none on the other: the sums
    # (2 <= 2) would hide it, the flag does not.
    assert merge_probes([{**one, "max_running": 2}, {**two, "max_running": 0}])["over_cap"]


def test_threads_left_behind_are_those_no_bounded_pool_explains() -> None:
    before = ["MainThread", "MainThread", "ThreadPoolExecutor-0_0", "ThreadPoolExecutor-0_1"]
    pools = {"ThreadPoolExecutor-0": 6, "jobs": 2}
    # An idle worker the load started, in each of two replicas: within the pool's bound.
    after = [*before, "ThreadPoolExecutor-0_2", "ThreadPoolExecutor-0_2", "jobs_1"]
    assert threads_left(before, after, pools) == []
    # Past the bound, a pool nobody tracks, a session's script thread: left behind.
    after += ["ThreadPoolExecutor-0_6", "Other-0_0", "ScriptRunner.scriptThread"]
    assert threads_left(before, after, pools) == [
        "Other-0_0",
        "ScriptRunner.scriptThread",
        "ThreadPoolExecutor-0_6",
    ]
    # Threads gone since are no threads left.
    assert threads_left(before, ["MainThread"], pools) == []


def test_the_threads_target_reads_the_probes_census() -> None:
    from bench.load_report import Results, threads_target

    res = Results(sessions=3, duration=10, cores=2)
    res.before, res.after = Usage(1000, 20, 1, 1), Usage(1100, 21, 1, 1)
    res.settle_s = 12
    res.py_threads = {
        "before": {"names": ["MainThread", "P_0"], "pools": {}},
        "after": {"names": ["MainThread", "P_0", "P_1"], "pools": {"P": 4}},
    }
    target = threads_target(res)
    assert target.ok and target.detail.endswith(
        "idle workers of bounded thread pools: 1 more of P (at most 4 per process)"
    )
    res.py_threads["after"]["names"].append("ScriptRunner.scriptThread")
    target = threads_target(res)
    assert not target.ok and target.detail.endswith("left behind: ScriptRunner.scriptThread")
    # Without the probe: the process's thread count must be back.
    res.py_threads = {}
    assert threads_target(res).name == "threads back to the starting level"
    assert not threads_target(res).ok


def test_repeated_loads_compare_the_rss_after_the_last_with_after_the_first() -> None:
    from bench.load_report import Results, targets

    def memory_target(after_loads: list[float]):
        res = Results(sessions=3, duration=10, cores=2, after_loads_rss=after_loads)
        found = [t for t in targets(res) if t.name.startswith("RSS after load")]
        return found[0] if found else None

    assert memory_target([2000.0]) is None  # one load: nothing to compare
    steady = memory_target([2000.0, 2040.0, 2010.0])
    assert steady.ok and steady.name == "RSS after load 3 within 50 MB of after load 1"
    assert steady.detail == "after each load: 2000, 2040, 2010 MB (+10 MB)"
    assert not memory_target([2000.0, 2100.0]).ok
    # What the caches took meanwhile (each within its budget) is no leak.
    res = Results(sessions=3, duration=10, cores=2, after_loads_rss=[2000.0, 2100.0])
    res.after_loads_caches = [100.0, 180.0]
    (filled,) = [t for t in targets(res) if t.name.startswith("RSS after load")]
    assert filled.ok and filled.name.endswith("of after load 1, besides the caches")
    assert filled.detail.endswith("the caches held 100, 180 MB (+80 MB), the rest grew +20 MB")
    assert parse_args(["--loads", "2"]).loads == 2 and parse_args([]).loads == 1
    with pytest.raises(SystemExit):
        parse_args(["--loads", "0"])


def test_a_servers_processes_include_what_its_replicas_started() -> None:
    """A replica's engine process counts with the server (its RSS, threads, CPU)."""
    table = {
        20: (1, 0),  # replica 1
        21: (20, 0),  # its engine process
        22: (21, 0),  # anything that one started
        30: (1, 0),  # replica 2, no children
        40: (1, 0),  # someone else
    }
    assert sorted(descendants([20, 30], table)) == [21, 22]
    assert descendants([40], table) == []
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        assert child.pid in descendants([os.getpid()])
    finally:
        child.kill()
        child.wait()


def test_subtree_ticks_skips_the_root_and_the_skipped_branch() -> None:
    table = {
        1: (0, 1000),
        10: (1, 5),  # the harness
        11: (10, 7),  # playwright's driver
        12: (11, 30),  # chromium
        13: (12, 40),  # a renderer
        20: (10, 900),  # the server (skipped)
        21: (20, 99),  # a child of the server (skipped too)
        30: (1, 500),  # someone else
    }
    assert subtree_ticks(table, 10, {20}) == 7 + 30 + 40
    assert subtree_ticks(table, 10, set()) == 7 + 30 + 40 + 900 + 99
    me = process_table()[os.getpid()]
    assert me[0] == os.getppid()


# ------------------------------------------------------------------ what the sessions ask for


def test_learning_rates_and_sweep_grids_never_repeat() -> None:
    rates = [adam_lr(k) for k in range(1, 8000)]
    assert len(set(rates)) == len(rates)
    assert all(0.01 <= float(r) < 0.09 for r in rates)
    assert adam_lr(37) == "0.01037"
    grids = {sweep_query(k) for k in range(1, 9000)}
    assert len(grids) == 8999
    q = sweep_query(37)
    assert "x=lr=1e-05:0.010037:log:20" in q and "y=momentum=0:0.99:lin:20" in q
    assert "steps=100" in q


def test_soak_compares_with_run_20_or_half_way() -> None:
    assert soak_reference(200) == 20
    assert soak_reference(40) == 20
    assert soak_reference(30) == 15
    assert soak_reference(1) == 1


def test_a_cnn_job_may_wait_in_the_queue_up_to_its_target() -> None:
    """With a third of N sessions training, the queue alone outlasts a fixed timeout
    at N = 100; a job times out only past the longer of the action timeout and its
    target (1.5 x its ideal), and only the CNN job gets the longer limit."""
    from bench.load_protocol import ProtocolSession
    from bench.load_report import Results, job_timeout

    res = Results(sessions=100, duration=60, cores=2)
    assert job_timeout(res, 180) == 180  # no single-session time: no ideal
    res.single.times["cnn_job"] = [8.0, 8.4]
    assert job_timeout(res, 180) == pytest.approx(1.5 * 8.2 * 100 / 2)
    res.sessions = 30  # ideal 123 s: 1.5 x 123 = 184.5 s
    assert job_timeout(res, 180) == pytest.approx(184.5)
    res.sessions = 10
    assert job_timeout(res, 180) == 180
    session = ProtocolSession(1, "http://127.0.0.1:1", 180, Numbering())
    assert session.limit_s("cnn_job") == session.limit_s("sweep") == 180
    session.job_timeout_s = 615.0
    assert session.limit_s("cnn_job") == 615 and session.limit_s("sweep") == 180


def test_a_navigation_leaves_the_old_stream_closing_alongside() -> None:
    """A browser leaving a page does not wait for the server's half of the closing
    handshake before loading the next one; the protocol session neither. A real
    websocket server whose event loop is busy for 1 s (as a loaded server's is)
    answers the close late: leaving returns at once, the close finishes alongside,
    its time recorded, and closing the session waits for it."""
    import websockets
    from websockets.asyncio.server import serve

    from bench.load_actions import Record
    from bench.load_protocol import ProtocolSession
    from bench.st_protocol import Session

    ready, stop = threading.Event(), threading.Event()
    port: list[int] = []

    async def handler(ws: websockets.ServerConnection) -> None:
        try:
            async for message in ws:
                if message == "busy":
                    await ws.send("busy")  # written before the loop blocks
                    time.sleep(1.0)  # blocks the server's event loop, close frames included
        except websockets.ConnectionClosed:
            pass

    async def serve_until_stopped() -> None:
        async with serve(handler, "127.0.0.1", 0) as server:
            port.append(server.sockets[0].getsockname()[1])
            ready.set()
            while not stop.is_set():
                await asyncio.sleep(0.05)

    thread = threading.Thread(target=asyncio.run, args=(serve_until_stopped(),), daemon=True)
    thread.start()
    assert ready.wait(10)
    url = f"http://127.0.0.1:{port[0]}"

    async def scenario() -> tuple[float, list[float], list[float]]:
        session = ProtocolSession(1, url, 10, Numbering())
        rec = Record()
        session.session = Session(url, 10)
        await session.session.connect()
        await session.session.ws.send("busy")
        await session.session.ws.recv()  # the server's loop is busy from now on
        t0 = time.monotonic()
        session._leave(rec)
        left = time.monotonic() - t0
        await asyncio.sleep(0.2)
        before = list(rec.closes)
        await session.close()
        return left, before, rec.closes

    try:
        left, before, closes = asyncio.run(scenario())
    finally:
        stop.set()
        thread.join(10)
    assert left < 0.1, left
    assert before == [], before  # still closing 0.2 s later: the server's loop is busy
    assert len(closes) == 1 and 0.7 <= closes[0] < 5, closes


def stream(open_s: float | None, close_s: float | None) -> dict:
    """One stream socket as the page records it (`bench.load_browser.WATCH_SOCKETS`)."""
    return {"url": "ws://127.0.0.1:1/_stcore/stream", "openS": open_s, "closeS": close_s}


def test_a_page_came_back_when_its_last_stream_is_open_after_one_closed() -> None:
    from bench.load_browser import came_back

    assert not came_back([])
    assert not came_back([stream(0.1, None)])  # never lost
    assert not came_back([stream(0.1, 91.0)])  # lost, not opened again
    assert not came_back([stream(0.1, 91.0), stream(None, None)])  # trying, not open yet
    assert not came_back([stream(0.1, 91.0), stream(91.5, 95.0)])  # lost again
    assert came_back([stream(0.1, 91.0), stream(91.5, None)])
    assert came_back([stream(0.1, 91.0), stream(None, 106.0), stream(107.0, None)])


class Dropped(LoadSession):
    """A session whose every action finishes on a stream it connected again."""

    idx = 7
    timeout_s = 5.0

    async def home(self, rec: Record) -> None:
        self._notes = ["websocket closed (ws://x/_stcore/stream): closed by the server"]

    async def check(self):
        return None

    async def explain(self, kind: str, message: str):
        return kind, message

    def take_reconnects(self) -> list[str]:
        taken, self._notes = self._notes, []
        return taken


def test_a_reconnection_is_reported_on_its_own_line_not_as_an_error() -> None:
    import asyncio

    from bench.load_report import Results, report, to_json

    res = Results(sessions=3, duration=10, cores=2)
    first = Record()
    assert asyncio.run(Dropped().act("home", first))
    assert first.error_count() == 0 and len(first.times["home"]) == 1
    assert first.reconnects == [
        "session 7, home: websocket closed (ws://x/_stcore/stream): closed by the server"
    ]
    res.alongside.add_from(first, "first visit")
    assert res.error_count() == 0
    assert res.alongside.reconnects == [f"(first visit) {first.reconnects[0]}"]
    text = report(res, parse_args(["--quick"]))
    assert "browsers total 0:" in text
    assert "1 stream(s) dropped by the server that the page connected again after" in text
    assert f"[reconnected] (first visit) {first.reconnects[0]}" in text
    data = to_json(res)
    assert data["errors"] == 0 and data["reconnects"] == 1
    assert data["records"]["browsers"]["reconnects"] == res.alongside.reconnects


def test_cnn_links_and_the_command_line() -> None:
    assert "steps=30&" in cnn_query() and "steps=7&" in cnn_query(7)
    assert cnn_query(7, seed=1) != cnn_query(7, seed=2)  # numbered: every job trains
    with pytest.raises(ValueError, match="at least one step"):
        cnn_query(0)
    quick = parse_args(["--quick"])
    assert (quick.sessions, quick.duration, quick.cnn_steps, quick.browsers) == (3, 10, 10, 0)
    assert quick.client == "protocol"
    full = parse_args(["--sessions", "100", "--browsers", "1", "--client", "browser"])
    assert (full.sessions, full.cnn_steps, full.browsers, full.client) == (100, 30, 1, "browser")
    assert [trains(full, i) for i in range(1, 8)] == [1, 0, 0, 1, 0, 0, 1]
    no_cnn = parse_args(["--cnn-every", "0"])
    assert not any(trains(no_cnn, i) for i in range(1, 8))
    bad_args = (["--sessions", "-1"], ["--cnn-steps", "0"], ["--cnn-every", "-1"], ["--client"])
    for bad in bad_args:
        with pytest.raises(SystemExit):
            parse_args(bad)


def test_plotly_typed_arrays_are_counted_like_lists() -> None:
    # plotly.py 6 writes numpy arrays as base64 with a dtype: 3 float64s, 5 int16s.
    assert trace_length({"dtype": "f8", "bdata": "AAAAAAAA8D8AAAAAAAAAQAAAAAAAAAhA"}) == 3
    assert trace_length({"dtype": "i2", "bdata": "AQACAAMABAAFAA=="}) == 5
    assert trace_length([1, 2, 3, 4]) == 4
    assert trace_length(None) == 0


def test_health_poller_times_a_real_server_and_counts_failures() -> None:
    import http.server

    class Health(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            time.sleep(0.05)
            self.send_response(200 if self.path == "/_stcore/health" else 404)
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Health)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        poller = HealthPoller(f"http://127.0.0.1:{server.server_port}", interval=0.1)
        poller.start()
        time.sleep(0.8)
        summary = poller.stop()
    finally:
        server.shutdown()
        server.server_close()
    assert summary.count >= 4 and not poller.failures
    assert 0.05 <= summary.p50 < 1.0
    # Nobody listening: every check fails fast and is counted.
    dead = HealthPoller(f"http://127.0.0.1:{server.server_port}", interval=0.05, timeout=1)
    dead.start()
    time.sleep(0.3)
    assert dead.stop().count >= 2 and len(dead.failures) == len(dead.times)


# ------------------------------------------------------------------ end to end

SECTIONS = [
    "== Load test: 3 sessions for 10 s",
    "== Actions (seconds to result; N-session phase) ==",
    "== Single-session baseline ==",
    "== Errors ==",
    "== Job queue ==",
    "== Server (RSS MB, threads, CPU % of one core) ==",
    "== Soak: 5 runs from one session",
    "== Targets ==",
]


@pytest.mark.timeout(480)
def test_quick_load_run_reports_every_section_and_no_errors(tmp_path: Path) -> None:
    out_json = tmp_path / "load.json"
    # 3-step CNN jobs: on a busy 2-core machine a 10-step one took 70-95 s.
    quick = ["--quick", "--cnn-steps", "3", "--soak", "5", "--json", str(out_json)]
    out, _ = run_load(quick)
    for section in SECTIONS:
        assert section in out, f"missing {section!r}\n{out}"
    assert "protocol client, 0 Chromium session(s) alongside" in out, out
    assert "CNN jobs of 3 steps" in out, out
    for phase in ("single", "load", "soak"):
        assert re.search(rf"^{phase}\s+total 0:", out, re.M), out
    assert "PASS zero errors" in out, out
    # Every action ran at least once under load and in the single session.
    for action in ACTIONS:
        row = re.search(rf"^{action}\s+(\d+)\s+(\d+)\s+([\d.]+)", out, re.M)
        assert row and int(row[2]) >= 1, f"no {action} times\n{out}"
    for phase in ("cold", "before", "during", "after"):
        assert re.search(rf"^{phase}\s+\d+\s+\d+", out, re.M), out
    probe = re.search(
        r"^server probe: cap (\d+), max concurrent trainings (\d+).* (\d+)$", out, re.M
    )
    assert probe and 1 <= int(probe[2]) <= int(probe[1]), out
    # 2 in the single session (warm-up and 1 round), 1 or more under load.
    assert int(probe[3]) >= 3, out
    # Each round's navigations closed the page left, alongside the next one's load.
    assert re.search(r"^a left page's websocket closing .*: \d+, p50 [\d.]+ s", out, re.M), out
    soak = re.search(
        r"^(PASS|FAIL) soak: RSS growth from run 2 to run 5 within 50 MB: (\d+) -> (\d+) MB "
        r"\(([+-]\d+) MB\); the caches held (\d+), (\d+) MB \(([+-]\d+) MB\), "
        r"the rest grew ([+-]\d+) MB",
        out,
        re.M,
    )
    assert soak, out  # the two compared readings come with what the caches held
    assert "PASS job cap honoured" in out, out
    assert re.search(r"^(PASS|FAIL) p95 within 1.5x of ideal: home [\d.]+", out, re.M), out
    assert re.search(r"^(PASS|FAIL) health check p95 under 1 s: p50 [\d.]+ s", out, re.M), out
    assert re.search(r"^(PASS|FAIL) no threads left behind \(pool workers", out, re.M), out
    assert re.search(r"^(PASS|FAIL) RSS within 50 MB of the start", out, re.M), out
    # The "after" reading follows the collector and malloc_trim, each measured.
    trim = re.search(
        r"^after, before the collector ran: (\d+) MB \(\d+ unreachable objects collected\); "
        r"after it: (\d+) MB, of which malloc_trim handed (-?\d+) MB back",
        out,
        re.M,
    )
    assert trim, out

    # The JSON holds the same run's figures.
    import json

    data = json.loads(out_json.read_text())
    assert (data["client"], data["sessions"], data["duration"]) == ("protocol", 3, 10)
    assert data["errors"] == 0 and data["errors_by_kind"] == dict.fromkeys(ERROR_KINDS, 0)
    for key in ("p95_ratio", "p95_s", "ideal", "single"):
        assert set(data[key]) == set(ACTIONS), key
        assert all(isinstance(v, float) and v > 0 for v in data[key].values()), (key, data[key])
    for action in ACTIONS:
        ratio = data["p95_s"][action] / data["ideal"][action]
        assert ratio == pytest.approx(data["p95_ratio"][action])
        times = data["records"]["load"]["times"][action]
        assert max(times) >= data["p95_s"][action] >= min(times)
    # ideal = single x N / cores, N = 3 sessions, whatever each does (one trains a CNN).
    cores = data["cores"]
    assert data["ideal"]["home"] == pytest.approx(data["single"]["home"] * 3 / cores)
    assert data["ideal"]["cnn_job"] == pytest.approx(data["single"]["cnn_job"] * 3 / cores)
    for phase in ("cold", "before", "during", "after"):
        server = data["server"][phase]
        assert server["rss_mb"] > 50 and server["threads"] >= 1, (phase, server)
        assert server["cpu_pct"] >= 0, (phase, server)
    assert data["server"]["during"]["cpu_pct"] > 0
    assert data["health_checks"] >= 10 and data["health_failures"] == 0
    assert 0 < data["health_p50_s"] <= data["health_p95_s"] <= data["health_max_s"]
    assert len(data["soak_rss_mb"]) == 5 and data["records"]["soak"]["rounds"] == 5
    assert set(data["soak_caches_mb"]) == {"2", "5"}
    assert all(v >= 0 for v in data["soak_caches_mb"].values())
    closes = data["records"]["load"]["closes"]
    assert closes and all(0 <= c < 30 for c in closes), closes
    assert data["targets"][0]["name"] == "zero errors"
    # Both readings come with what the caches held (the probe's, every replica's).
    assert data["caches_mb"]["before"] >= 0 and data["caches_mb"]["after"] > 0
    assert re.search(r"^(PASS|FAIL) RSS within 50 MB of the start, besides the caches", out, re.M)
    after = data["after_rss_mb"]
    assert after["before_collector"] > 0 and after["before_trim"] > 0
    assert round(after["before_trim"] - data["server"]["after"]["rss_mb"]) == int(trim[3])


def test_the_chromium_launcher_runs_the_browser_niced(tmp_path: Path) -> None:
    """The Chromium sessions alongside the protocol client start through a launcher that
    lowers their priority and their session's (every process Chromium starts inherits
    them)."""
    from bench.load_browser import niced

    assert niced("/usr/bin/chromium", 0, tmp_path) == "/usr/bin/chromium"
    launcher = niced(sys.executable, 7, tmp_path)
    code = "import os, sys; print(os.nice(0), sys.argv[1:])"
    done = subprocess.run(
        [launcher, "-c", code, "a b", "--flag"], capture_output=True, text=True, timeout=60
    )
    assert done.stdout.split(" ", 1) == [str(min(19, os.nice(0) + 7)), "['a b', '--flag']\n"]
    group = Path("/proc/self/autogroup")
    if group.exists():
        # Playwright starts the browser in a session of its own: the launcher then
        # lowers that session's autogroup, the share of the cores the kernel gives
        # the session as a whole (Chromium resets its processes' own nice values).
        # A process in the kernel's default group (the first session, as in a container
        # whose runner never started a session of its own) reads an empty line here.
        show = "print(open('/proc/self/autogroup').read().strip())"
        own = subprocess.run(
            [launcher, "-c", show],
            capture_output=True,
            text=True,
            timeout=60,
            start_new_session=True,
        )
        assert own.stdout.strip().endswith(" nice 7"), own
        # Run inside its caller's session, it leaves the caller's autogroup alone.
        before = group.read_text().strip()
        same = subprocess.run(
            [launcher, "-c", show], capture_output=True, text=True, timeout=60, check=True
        )
        assert same.stdout.strip() == before
        assert group.read_text().strip() == before
    assert parse_args([]).browser_nice == 10
    assert parse_args(["--client", "browser"]).browser_nice == 0
    with pytest.raises(SystemExit):
        parse_args(["--browser-nice", "20"])
