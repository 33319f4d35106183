"""Load test: N concurrent sessions against one real `streamlit run` server, or
against the workshop's layout (``--replicas K``: K replicas behind HAProxy).

It starts the app on 127.0.0.1 and drives it with N sessions at once. With
``--replicas K`` it starts what ``make workshop REPLICAS=K`` starts
(`optlab.workshop`, each replica through the probe below) and the sessions
connect through HAProxy's front, which spreads them over the replicas; every
replica first gets a warm-up round of its own (through its own port), and the
server's readings add up the replicas and HAProxy. By
default (``--client protocol``) each session is a simulated browser tab that
speaks Streamlit's websocket protocol (`bench.st_protocol`): one process
drives them all, so the machine's cores go to the server, as in a workshop
where every attendee brings a laptop. ``--browsers K`` adds K real Chromium
sessions alongside (Debian's, never ``playwright install``) to confirm the
pages render under that load (2 by default when Chromium is installed, 0
with ``--quick``). ``--client browser`` drives all N sessions from one
headless Chromium instead, as this test first did; its figures then include
the browser's share of the same cores (the report splits the machine's CPU
use into server, browser, this harness and other processes).

Each session starts rounds until ``--duration`` seconds have passed (a round
begun is finished, so every action is measured as often as the others); a
round is:

- ``home``: loads ``/`` and waits until the default comparison is drawn;
- ``lr_change``: types a new learning rate for Adam and waits for the redraw;
- ``sweep``: opens the Sweeps page with a small grid (20 x 20 cells, 100 steps)
  and waits for the heatmap and the best cell's replay;
- one session in three (``--cnn-every 3``) also runs ``cnn_page`` (opens the CNN lab on a tiny
  synthetic run) and ``cnn_job`` (presses Start, waits for "Finished"; the
  time includes any wait in the job queue).

A page load is a new websocket session, as a browser navigation is. Every
learning rate and every sweep grid is new (numbered), so the server computes
each of them instead of answering from its caches; the default comparison on
``/`` is the same for all, as in a workshop.

A time to result is counted only for an action that succeeded. Errors are
counted by kind: ``exception`` (an exception element on the page),
``websocket`` (a websocket the page did not close itself), ``timeout``,
``job`` (a CNN job that ended other than "Finished") and ``other`` (with the
protocol client: anything it did not expect from the server).

Before the N sessions, one session runs the same actions (one warm-up round,
then ``--baseline-runs`` measured rounds): its median per action is the
single-session time, and ``ideal = single x N / cores`` (N the sessions: with
all of them busy, perfect sharing gives each ``cores / N`` of the machine,
whatever action each is doing).
While the N sessions run, a background thread times ``GET /_stcore/health``
every 0.5 s (the server answers it on the event loop that carries every
websocket). The server's RSS, CPU and thread count are read from /proc by a
background thread: cold (just started), before (after the single session
closed: every lazy start-up cost paid), during, after (all sessions closed,
and kept no longer than Streamlit's ``--session-ttl``). The job queue is
watched from the pages (the queue positions they show) and, exactly, inside
the server by a counting wrapper around `Job._run` and `Job._work`
(read-only; ``--no-probe`` runs plain ``streamlit run`` instead).

``--soak K`` adds K sequential runs from one session and compares the
server's RSS after run 20 with the RSS after the last one (those two readings
follow the cycle collector and malloc_trim, and come with what the caches
hold then). A soak run is a
new comparison on the playground (``lr_change``); every fifth is a new sweep
instead and every tenth a CNN training (``cnn_page`` and ``cnn_job``), each
followed by ``home`` to come back (with ``--cnn-every 0``, a sweep instead of
the training).

``--loads K`` runs the N sessions' phase K times on the same server, each
followed by an "after" reading, and compares the last with the first: a
leak grows with every load, a first load's high-water mark does not.

Usage::

    python -m bench.load [--client protocol|browser] [--sessions 30] [--duration 300]
                         [--browsers K] [--soak 0|200] [--replicas K] [--loads 1|3]
                         [--json out.json] [--quick]

Targets (PASS/FAIL each; exit status 1 when one fails, 2 when the harness
itself broke): zero errors; every action's N-session p95 within 1.5x its
ideal; the health check's p95 under 1 s; never more concurrent trainings
than the server's cap, and queue positions shown whenever a job had to wait;
after every session closed, no thread left behind (idle workers of the
server's bounded thread pools aside) and RSS within 50 MB of its starting
level besides what the caches took (with ``--loads K``, also from the first
load's reading to the last); the soak's RSS growth from run 20 to the last
run within 50 MB.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import sys
import tempfile
import time
import traceback
from collections.abc import AsyncIterator, Iterable
from pathlib import Path

from bench.load_actions import ACTIONS, CNN_STEPS, LoadSession, Numbering, Record
from bench.load_protocol import ProtocolSession
from bench.load_report import Results, job_timeout, report, soak_reference, targets, to_json
from bench.load_server import Server, http_get, serve, serve_replicas
from bench.load_stats import HealthPoller, Sampler, read_processes, usage
from optlab.workshop.supervisor import HAPROXY
from tests.support.server import CHROMIUM

#: Real Chromium sessions alongside the protocol sessions, when Chromium is installed.
DEFAULT_BROWSERS = 2
#: Their nice value: they check that the pages render, the server is what is measured.
#: Not 19: a session's autogroup at nice 19 weighs 15 against the server's 1024, and
#: with the cores busy such a tab took minutes over its first page and left the
#: connections it opened unused past HAProxy's request timeout (docs/load-test.md).
ALONGSIDE_NICE = 10


def log(message: str) -> None:
    print(f"[load {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


class Opener:
    """Opens sessions of the chosen kind; owns Playwright and Chromium when they run."""

    def __init__(self, args: argparse.Namespace, url: str, counter: Numbering) -> None:
        self.args = args
        self.url = url
        self.counter = counter
        self.browser = None
        self._playwright = None
        self._folder: tempfile.TemporaryDirectory | None = None

    async def start(self, need_browser: bool) -> None:
        if not need_browser:
            return
        from playwright.async_api import async_playwright

        from bench.load_browser import launch_chromium

        self._playwright = await async_playwright().start()
        self._folder = tempfile.TemporaryDirectory(prefix="optlab-load-chromium-")
        self.browser = await launch_chromium(
            self._playwright, self.args.webgl, self.args.browser_nice, Path(self._folder.name)
        )

    async def stop(self) -> None:
        if self.browser is not None:
            with contextlib.suppress(Exception):
                await self.browser.close()
        if self._playwright is not None:
            with contextlib.suppress(Exception):
                await self._playwright.stop()
        if self._folder is not None:
            self._folder.cleanup()

    async def open(
        self, idx: int, browser: bool | None = None, url: str | None = None
    ) -> LoadSession:
        """A new session: a browser tab with ``browser``, else the chosen client's; to
        ``url`` (one replica's own) instead of the server's."""
        use_browser = self.args.client == "browser" if browser is None else browser
        timeout = self.args.action_timeout
        session: LoadSession
        if use_browser:
            from bench.load_browser import BrowserSession

            session = await BrowserSession.open(
                self.browser, idx, url or self.url, timeout, self.counter
            )
        else:
            session = ProtocolSession(idx, url or self.url, timeout, self.counter)
        session.cnn_steps = self.args.cnn_steps
        return session


@contextlib.asynccontextmanager
async def opener(args: argparse.Namespace, url: str) -> AsyncIterator[Opener]:
    o = Opener(args, url, Numbering())
    await o.start(args.client == "browser" or args.browsers > 0)
    try:
        yield o
    finally:
        await o.stop()


async def drive(args: argparse.Namespace, server: Server, sampler: Sampler, res: Results) -> None:
    """Runs the single session, the N sessions and the soak; fills ``res``."""
    hz = os.sysconf("SC_CLK_TCK")
    # Two readings at least (the sampler reads every 0.5 s), or "cold" has no CPU figure.
    waited = time.monotonic()
    while len(sampler.between(0, time.monotonic())) < 2 and time.monotonic() - waited < 5:
        await asyncio.sleep(0.25)
    res.cold = usage(sampler.between(0, time.monotonic()), hz)
    async with opener(args, server.url) as o:
        try:
            # The single session: a warm-up round (its errors count), then measured
            # rounds. With replicas, every replica gets its warm-up round (through
            # its own URL): each process pays its own first-use costs.
            warm = Record()
            for url in server.urls if len(server.urls) > 1 else []:
                warmer = await o.open(0, url=url)
                await warmer.round(warm, cnn=args.cnn_every > 0)
                await warmer.close()
            one = await o.open(0)
            await one.round(warm, cnn=args.cnn_every > 0)
            res.single.add_from(warm, "warm-up")
            t0 = time.monotonic()
            for _ in range(args.baseline_runs):
                await one.round(res.single, cnn=args.cnn_every > 0)
            res.cpu["single"] = sampler.machine_use(t0, time.monotonic(), hz)
            await one.close()
            # A plain GET / on every process, as a browser's first visit sends: the
            # protocol sessions never fetch a file, so without it AnyIO's pool of
            # file-serving threads would start only during the load, and its one
            # resting worker would count as a thread the sessions left behind.
            await asyncio.to_thread(get_every_process, server)
            # The same collection and trim as before the "after" reading (`settle`).
            collected = await asyncio.to_thread(server.collect_garbage)
            if collected is not None:
                res.caches_before_mb = collected[2]
            await asyncio.sleep(args.settle_pause)
            t_before = time.monotonic()
            await asyncio.sleep(3.0)
            res.before = usage(sampler.between(t_before, time.monotonic()), hz)
            res.py_threads["before"] = await asyncio.to_thread(server.python_threads)
            log(f"single session done; before: {res.before}")

            if args.sessions > 0:
                for k in range(1, args.loads + 1):
                    await one_load(args, server, sampler, res, o, hz, k)

            if args.soak > 0:
                soaker = await o.open(0)
                t0 = time.monotonic()
                compared = {soak_reference(args.soak), args.soak}
                for i in range(args.soak):
                    if not await soaker.soak_run(res.soak, i, cnn=args.cnn_every > 0):
                        await soaker.act("home", res.soak)  # back to a known page
                    if i + 1 in compared:  # the two readings compared: memory in use
                        collected = await asyncio.to_thread(server.collect_garbage)
                        if collected is not None:
                            res.soak_caches[i + 1] = collected[2]
                    res.soak_rss.append(read_processes(server.pids).rss_mb)
                    if (i + 1) % 20 == 0:
                        log(f"soak run {i + 1}: RSS {res.soak_rss[-1]:.0f} MB")
                res.soak_wall_s = time.monotonic() - t0
                res.cpu["soak"] = sampler.machine_use(t0, time.monotonic(), hz)
                await soaker.close()
        finally:
            res.probe = server.probe()


def trains(args: argparse.Namespace, idx: int) -> bool:
    """Whether session ``idx`` (from 1) also trains a CNN in its rounds."""
    return args.cnn_every > 0 and (idx - 1) % args.cnn_every == 0


async def load_phase(
    args: argparse.Namespace, server: Server, sampler: Sampler, res: Results, o: Opener, hz: int
) -> None:
    """The N sessions (and the Chromium sessions alongside) for ``--duration`` seconds."""
    sessions = [await o.open(i + 1) for i in range(args.sessions)]
    res.job_timeout_s = job_timeout(res, args.action_timeout)
    for s in sessions:
        s.job_timeout_s = res.job_timeout_s
    alongside = [
        await o.open(args.sessions + 1 + i, browser=True)
        for i in range(res.browsers if args.client == "protocol" else 0)
    ]
    await first_visits(alongside, res)
    health = HealthPoller(server.url)
    start = time.monotonic()
    until = start + args.duration
    health.start()

    async def loop(s: LoadSession, rec: Record, cnn: bool) -> None:
        while time.monotonic() < until:  # a round begun is finished
            await s.round(rec, cnn)

    try:
        await asyncio.gather(
            # With --cnn-every 3, sessions 1, 4, 7, ...: a third also train a CNN.
            *(loop(s, res.load, trains(args, s.idx)) for s in sessions),
            *(loop(b, res.alongside, False) for b in alongside),
        )
    finally:
        res.health = health.stop()
        res.health_failures = list(health.failures)
    end = time.monotonic()
    res.load_wall_s = end - start
    res.during = usage(sampler.between(start, end), hz, peak=True)
    res.cpu["load"] = sampler.machine_use(start, end, hz)
    log(f"{args.sessions} sessions done after {end - start:.0f} s; health {res.health}")
    for s in [*sessions, *alongside]:
        await s.close()


async def first_visits(tabs: list[LoadSession], res: Results) -> None:
    """Each Chromium tab's first visit, before the load: it fetches Streamlit's 10 MB of
    scripts and compiles them, which an attendee's laptop does on its own cores. Under
    the load, at a nice that leaves the server its cores, a tab took 90-150 s over it
    (docs/load-test.md); its later pages come from its browser's cache. Errors count
    with the tabs'."""
    first = Record()
    for tab in tabs:
        await tab.act("home", first)
    res.alongside.add_from(first, "first visit")
    if first.times["home"]:
        shown = ", ".join(f"{t:.1f}" for t in first.times["home"])
        log(f"Chromium tabs' first visits, before the load: {shown} s")


async def one_load(
    args: argparse.Namespace,
    server: Server,
    sampler: Sampler,
    res: Results,
    o: Opener,
    hz: int,
    k: int,
) -> None:
    """Load number ``k`` (from 1) of ``--loads`` on the same server, then its "after"
    reading. The first fills ``res``; a later one adds only its errors and its "after"
    readings (the report's times are the first load's). Memory a load leaks grows with
    every load; memory the first load's peak left with the allocator does not."""
    into = res
    if k > 1:
        log(f"load {k} of {args.loads}")
        into = Results(res.sessions, res.duration, res.cores, actions=res.actions)
        into.single, into.before, into.browsers = res.single, res.before, res.browsers
    await load_phase(args, server, sampler, into, o, hz)
    await settle(args, server, sampler, into, o, hz)
    if k > 1:
        for rec in (into.load, into.alongside):
            res.repeats.add_from(rec, f"load {k}")
            res.repeats.rounds += rec.rounds
    res.after_loads_rss.append(into.after.rss_mb)
    res.after_loads_caches.append(into.caches_after_mb)


def get_every_process(server: Server) -> None:
    """A plain GET / on each server process (each replica through its own URL)."""
    for url in server.urls or [server.url]:
        http_get(f"{url}/")


async def settle(
    args: argparse.Namespace, server: Server, sampler: Sampler, res: Results, o: Opener, hz: int
) -> None:
    """Waits until the closed sessions are gone, then takes the "after" reading."""
    # Streamlit keeps a closed page's session for server.disconnectedSessionTTL
    # seconds (a flaky connection comes back to it), and drops expired ones
    # when it next stores a session: past the TTL, one visit does that.
    closed = time.monotonic()
    await asyncio.sleep(max(0.0, closed + args.session_ttl + 2 - time.monotonic()))
    visitor = await o.open(0)
    await visitor.act("home", Record())
    await visitor.close()
    # Then wait until the thread count is back (or the wait runs out), with a
    # plain GET / every 5 s as a monitoring check would send: AnyIO (Starlette's
    # file serving) retires idle worker threads only when it is next used.
    waited = last_get = time.monotonic()
    while time.monotonic() - waited < args.settle_timeout:
        last = sampler.between(time.monotonic() - 1.5, time.monotonic())
        if last and res.before is not None and last[-1].threads <= res.before.threads:
            break
        if time.monotonic() - last_get >= 5:
            await asyncio.to_thread(get_every_process, server)
            last_get = time.monotonic()
        await asyncio.sleep(1.0)
    res.rss_before_gc = read_processes(server.pids).rss_mb
    collected = await asyncio.to_thread(server.collect_garbage)
    if collected is not None:
        res.gc_found, res.rss_before_trim, res.caches_after_mb = collected
    res.settle_s = time.monotonic() - closed
    await asyncio.sleep(args.settle_pause)
    t_after = time.monotonic()
    await asyncio.sleep(3.0)
    res.after = usage(sampler.between(t_after, time.monotonic()), hz)
    res.py_threads["after"] = await asyncio.to_thread(server.python_threads)
    log(f"after: {res.after}")


def parse_args(argv: Iterable[str] | None = None) -> argparse.Namespace:
    """The command line; ``--quick`` sets a smoke run's sizes."""
    parser = argparse.ArgumentParser(
        prog="python -m bench.load", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--client",
        choices=("protocol", "browser"),
        default="protocol",
        help="what drives the N sessions: the websocket protocol client (default) "
        "or one headless Chromium",
    )
    parser.add_argument("--sessions", type=int, default=30, help="concurrent sessions (30)")
    parser.add_argument("--duration", type=float, default=300, help="seconds of load (300)")
    parser.add_argument(
        "--browsers",
        type=int,
        default=None,
        help="real Chromium sessions alongside the protocol sessions (default "
        f"{DEFAULT_BROWSERS} when Chromium is installed, 0 with --quick)",
    )
    parser.add_argument("--soak", type=int, default=0, help="sequential soak runs (0: none)")
    parser.add_argument(
        "--loads",
        type=int,
        default=1,
        help="load phases on the same server, each followed by an 'after' reading (1); "
        "from 2, the RSS after the last is compared with the RSS after the first",
    )
    parser.add_argument("--port", type=int, default=0, help="server port (0: a free one)")
    parser.add_argument(
        "--replicas",
        type=int,
        default=0,
        help="serve the workshop's layout instead of one process: K replicas behind "
        "HAProxy (`make workshop REPLICAS=K`; 0: one `streamlit run`)",
    )
    parser.add_argument(
        "--haproxy", default=HAPROXY, help=f"HAProxy's executable, with --replicas ({HAPROXY})"
    )
    parser.add_argument(
        "--baseline-runs",
        type=int,
        default=5,
        help="measured single rounds (5: the ideal's median; two rounds' medians of one action "
        "differed by 15%% between runs, and the p95 ratios with them)",
    )
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
    parser.add_argument(
        "--cnn-steps", type=int, default=None, help=f"steps of each CNN job ({CNN_STEPS}; 10 quick)"
    )
    parser.add_argument(
        "--cnn-every",
        type=int,
        default=3,
        help="one session in K also trains a CNN (3; 0: no CNN actions at all, the "
        "single session's included)",
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
    parser.add_argument(
        "--browser-nice",
        type=int,
        default=None,
        help="Chromium's nice value (10 with the protocol client: the sessions alongside "
        "only check that the pages render, and yield the cores to the server; 0 with "
        "--client browser, where Chromium is the client)",
    )
    parser.add_argument("--json", type=Path, help="also write the results here as JSON")
    parser.add_argument("--show-errors", type=int, default=5, help="messages shown per kind")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a smoke run: 3 sessions for 10 s, one measured single round, 10-step CNN jobs",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.sessions, args.duration, args.baseline_runs = 3, 10, 1
        args.settle_timeout, args.session_ttl, args.settle_pause = 45, 5, 1
    if args.cnn_steps is None:
        args.cnn_steps = 10 if args.quick else CNN_STEPS
    if args.browser_nice is None:
        args.browser_nice = ALONGSIDE_NICE if args.client == "protocol" else 0
    if not 0 <= args.browser_nice <= 19:
        parser.error("--browser-nice must be between 0 and 19")
    if args.browsers is None:
        have = Path(CHROMIUM).exists()
        args.browsers = DEFAULT_BROWSERS if have and not args.quick else 0
    if args.loads < 1:
        parser.error("--loads must be at least 1")
    if min(args.sessions, args.duration, args.soak, args.browsers, args.replicas) < 0:
        parser.error(
            "--sessions, --duration, --soak, --browsers and --replicas must not be negative"
        )
    if args.cnn_every < 0:
        parser.error("--cnn-every must not be negative")
    if args.cnn_steps < 1:
        parser.error("--cnn-steps must be at least 1")
    return args


def _stop_on_sigterm(signum, frame) -> None:
    # A SIGTERM (a timeout, a CI runner) unwinds like Ctrl-C, so the servers are
    # stopped on the way out: the replicas run in sessions of their own and
    # would outlive this process otherwise.
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    needs_chromium = args.client == "browser" or args.browsers > 0
    if needs_chromium and not Path(CHROMIUM).exists():
        print(f"Chromium not found at {CHROMIUM} (set OPTLAB_CHROMIUM)", file=sys.stderr)
        return 2
    res = Results(args.sessions, args.duration, os.cpu_count() or 1, args.client)
    res.replicas = args.replicas
    res.actions = ACTIONS if args.cnn_every else ACTIONS[:3]
    res.browsers = args.browsers if args.client == "protocol" and args.sessions else 0
    env = {"OPTLAB_MAX_JOBS": str(args.max_jobs)} if args.max_jobs else {}
    for item in args.server_env:
        key, sep, value = item.partition("=")
        if not sep or not key:
            print(f"--server-env wants KEY=VALUE, not {item!r}", file=sys.stderr)
            return 2
        env[key] = value
    with tempfile.TemporaryDirectory(prefix="optlab-load-") as tmp:
        try:
            if args.replicas:
                server_cm = serve_replicas(
                    Path(tmp),
                    args.replicas,
                    args.port,
                    not args.no_probe,
                    env,
                    args.session_ttl,
                    args.haproxy,
                )
            else:
                server_cm = serve(Path(tmp), args.port, not args.no_probe, env, args.session_ttl)
            with server_cm as server:
                log(f"{server.describe()}; client {args.client}")
                sampler = Sampler(lambda: server.pids)
                sampler.start()
                try:
                    asyncio.run(drive(args, server, sampler, res))
                finally:
                    sampler.stop()
                res.load.errors["other"].extend(server.exited())
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
