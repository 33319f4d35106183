"""The load test's results, its targets and its report (text and JSON)."""

from __future__ import annotations

import math
import statistics
from collections import Counter
from dataclasses import dataclass, field

from bench.load_actions import ACTIONS, ERROR_KINDS, Record
from bench.load_stats import Summary, Usage, fmt, percentile, summarize, threads_left

#: Targets.
P95_FACTOR = 1.5
RSS_SLACK_MB = 50.0
SOAK_REFERENCE_RUN = 20
#: A job that waited this long for a trainer must have shown its queue position.
QUEUE_SHOWN_AFTER_S = 2.0
#: The health check's p95 under load (a workshop's reconnecting pages and a load
#: balancer's checks wait on it).
HEALTH_P95_S = 1.0


@dataclass
class Results:
    """Everything one run of the load test measured."""

    sessions: int
    duration: float
    cores: int
    client: str = "protocol"  # what drove the N sessions: "protocol" or "browser"
    browsers: int = 0  # real Chromium sessions alongside the protocol sessions
    replicas: int = 0  # Streamlit replicas behind HAProxy (0: one process, no proxy)
    actions: tuple[str, ...] = ACTIONS  # the actions the sessions ran (no CNN: the first 3)
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
    rss_before_trim: float = math.nan  # after the cycle collector, before malloc_trim
    gc_found: int | None = None
    soak_rss: list[float] = field(default_factory=list)
    #: The caches' MB at the soak's reference run and at its last (run -> MB); those two
    #: runs' RSS readings follow the cycle collector and malloc_trim, as "after"'s do.
    soak_caches: dict[int, float] = field(default_factory=dict)
    after_loads_rss: list[float] = field(default_factory=list)  # after each of --loads
    after_loads_caches: list[float] = field(default_factory=list)  # the caches' MB then
    caches_before_mb: float = math.nan  # what the server's caches held at "before"
    caches_after_mb: float = math.nan  # and at "after" (`bench.load_server.caches_mb`)
    repeats: Record = field(default_factory=Record)  # loads 2 and on: errors and rounds
    soak: Record = field(default_factory=Record)
    soak_wall_s: float = math.nan
    cpu: dict[str, dict[str, float] | None] = field(default_factory=dict)
    py_threads: dict[str, dict | None] = field(default_factory=dict)
    alongside: Record = field(default_factory=Record)  # the Chromium sessions' record
    health: Summary | None = None
    health_failures: list[str] = field(default_factory=list)
    job_timeout_s: float = math.nan  # the N sessions' limit for a CNN job, queue included

    def records(self) -> dict[str, Record]:
        """Every phase's record, by name."""
        return {
            "single": self.single,
            "load": self.load,
            "browsers": self.alongside,
            "soak": self.soak,
            "repeats": self.repeats,
        }

    def error_count(self) -> int:
        """Errors in every phase."""
        return sum(r.error_count() for r in self.records().values())


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
    errors = res.error_count()
    out.append(Target("zero errors", errors == 0, f"{errors} error(s)"))
    if res.sessions > 0:
        worst, parts = 0.0, []
        missing = [a for a in res.actions if not res.load.times.get(a)]
        for action in ACTIONS:
            ratio = p95_ratio(res, action)
            if not math.isnan(ratio):
                worst = max(worst, ratio)
                parts.append(f"{action} {ratio:.2f}")
        ok = not missing and worst <= P95_FACTOR
        detail = ", ".join(parts) + (f"; no times for {', '.join(missing)}" if missing else "")
        out.append(Target(f"p95 within {P95_FACTOR}x of ideal", ok, detail))
    if res.health is not None:
        h = res.health
        out.append(
            Target(
                f"health check p95 under {HEALTH_P95_S:g} s",
                h.count > 0 and h.p95 < HEALTH_P95_S and not res.health_failures,
                f"p50 {fmt(h.p50, 3)} s, p95 {fmt(h.p95, 3)} s, max {fmt(h.max, 3)} s over "
                f"{h.count} checks, {len(res.health_failures)} failed",
            )
        )
    probe = res.probe
    if "cnn_job" not in res.actions:
        out.append(Target("job cap honoured, queue positions shown", None, "no CNN jobs run"))
    elif probe is not None:
        cap, peak = probe.get("cap", 0), probe.get("max_running", 0)
        waited = [w for w in probe.get("waits", []) if w >= QUEUE_SHOWN_AFTER_S]
        shown = res.load.queue_positions | res.soak.queue_positions | res.single.queue_positions
        ok_cap = (
            probe.get("trainings", 0) > 0 and cap > 0 and peak <= cap and not probe.get("over_cap")
        )
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
        out.append(threads_target(res))
        out.append(
            memory_target(
                f"RSS within {RSS_SLACK_MB:g} MB of the start",
                [res.before.rss_mb, res.after.rss_mb],
                [res.caches_before_mb, res.caches_after_mb],
                "before, after",
            )
        )
    if len(res.after_loads_rss) > 1:
        n = len(res.after_loads_rss)
        out.append(
            memory_target(
                f"RSS after load {n} within {RSS_SLACK_MB:g} MB of after load 1",
                res.after_loads_rss,
                res.after_loads_caches,
                "after each load",
            )
        )
    if res.soak_rss:
        n = len(res.soak_rss)
        ref = soak_reference(n)
        rss = [res.soak_rss[ref - 1], res.soak_rss[-1]]
        grow = rss[1] - rss[0]
        # The issue's target counts all of it; the caches' part is said beside it.
        part = caches_part(rss, [res.soak_caches.get(r, math.nan) for r in (ref, n)])
        out.append(
            Target(
                f"soak: RSS growth from run {ref} to run {n} within {RSS_SLACK_MB:g} MB",
                grow <= RSS_SLACK_MB and res.soak.rounds == n,
                f"{rss[0]:.0f} -> {rss[1]:.0f} MB ({grow:+.0f} MB); "
                + (f"{part[1]}; " if part is not None else "")
                + f"{res.soak.rounds} of {n} runs complete",
            )
        )
    return out


def memory_target(name: str, rss: list[float], caches: list[float], label: str) -> Target:
    """The server's RSS from the first reading of ``rss`` to the last grew by at most
    `RSS_SLACK_MB`, besides what its caches took meanwhile (``caches``: the MB they held
    at each reading, NaN where unknown; each cache is bounded by its stated budget,
    README "Capacity"). A leak grows past that; a cache filling up to its budget does not.
    """
    grow = rss[-1] - rss[0]
    detail = f"{label}: " + ", ".join(f"{mb:.0f}" for mb in rss) + f" MB ({grow:+.0f} MB)"
    if (part := caches_part(rss, caches)) is not None:
        cached, clause = part
        name += ", besides the caches"
        detail += f"; {clause}"
        grow -= cached
    return Target(name, grow <= RSS_SLACK_MB, detail)


def caches_part(rss: list[float], caches: list[float]) -> tuple[float, str] | None:
    """What the caches took from the first reading of ``rss`` to the last (``caches``:
    the MB they held at each), with a clause that says it and the rest of the growth;
    None when a reading of the caches is missing."""
    if len(caches) != len(rss) or not all(math.isfinite(c) for c in caches):
        return None
    cached = caches[-1] - caches[0]
    rest = rss[-1] - rss[0] - cached
    held = ", ".join(f"{mb:.0f}" for mb in caches)
    return cached, f"the caches held {held} MB ({cached:+.0f} MB), the rest grew {rest:+.0f} MB"


def threads_target(res: Results) -> Target:
    """No thread left behind by the sessions: the server's Python threads after the
    load are those of before, plus at most idle workers of its bounded thread pools
    (through the probe; without it, the process's thread count must be back)."""
    counts = f"before {res.before.threads}, after {res.after.threads}"
    when = f"checked {res.settle_s:.0f} s after the last page closed"
    before, after = res.py_threads.get("before"), res.py_threads.get("after")
    if before is None or after is None:
        ok = res.after.threads <= res.before.threads
        return Target("threads back to the starting level", ok, f"{counts} ({when})")
    # The pools alive now: a pool's workers live as long as it does.
    pools = after["pools"]
    left = threads_left(before["names"], after["names"], pools)
    new = Counter(after["names"]) - Counter(before["names"])
    pooled = Counter(n.rpartition("_")[0] for n in new.elements() if n not in left)
    detail = f"{counts} ({when})"
    if pooled:
        detail += "; idle workers of bounded thread pools: " + ", ".join(
            f"{count} more of {p} (at most {pools[p]} per process)"
            for p, count in sorted(pooled.items())
        )
    if left:
        detail += f"; left behind: {', '.join(left)}"
    return Target("no threads left behind (pool workers within their bounds)", not left, detail)


def soak_reference(runs: int) -> int:
    """The run whose RSS the soak compares with (1-based): run 20, or half-way in a short soak."""
    return max(1, min(SOAK_REFERENCE_RUN, runs // 2))


def actors(res: Results, action: str) -> int:
    return len(res.load.actors.get(action, ())) or res.sessions


def ideal(res: Results, action: str) -> float:
    """Single-session time x N / cores, N the sessions of the load phase.

    Every session competes for the same cores whatever it is doing: with all N
    busy, perfect sharing gives each ``cores / N`` of the machine, so an action
    that takes ``t`` alone takes ``t * N / cores``. (Counting only the sessions
    doing that action, as this report once did, would assume the CNN jobs of a
    third of the sessions shared the cores with nothing else.)
    """
    return single_time(res, action) * res.sessions / res.cores


def job_timeout(res: Results, action_timeout: float) -> float:
    """How long a CNN job of the N sessions may take, its wait in the queue included.

    ``action_timeout``, or the job's target (`P95_FACTOR` x its ideal) when that
    is longer: with N sessions a third of which train, the queue alone can
    outlast a fixed timeout while every job is still within its target (at
    N = 100 on two cores the ideal is about 420 s), and a job counted as an
    error then would be the harness's limit, not the server's.
    """
    target = P95_FACTOR * ideal(res, "cnn_job")
    return max(action_timeout, target) if math.isfinite(target) else action_timeout


def p95_ratio(res: Results, action: str) -> float:
    s = summarize(res.load.times.get(action, []))
    base = ideal(res, action)
    return s.p95 / base if base and not math.isnan(base) else math.nan


def report(res: Results, args) -> str:
    lines: list[str] = []
    add = lines.append
    driver = (
        "one headless Chromium"
        if res.client == "browser"
        else f"protocol client, {res.browsers} Chromium session(s) alongside"
    )
    served = (
        f"{res.replicas} replica(s) behind HAProxy (server = replicas + HAProxy)"
        if res.replicas
        else "one Streamlit process"
    )
    add(
        f"== Load test: {res.sessions} sessions for {res.duration:.0f} s "
        f"(ran {fmt(res.load_wall_s, 0)} s), {res.cores} cores, {served}, {driver} =="
    )
    add(
        f"client {res.client}; CNN jobs of {args.cnn_steps} steps; "
        f"Chromium WebGL {'on' if args.webgl else 'off'}, nice {args.browser_nice}; action timeout "
        f"{args.action_timeout:g} s"
        + (
            f" (a CNN job under load: {res.job_timeout_s:.0f} s, {P95_FACTOR} x its ideal)"
            if res.job_timeout_s > args.action_timeout
            else ""
        )
        + f"; server env: {' '.join(args.server_env) or 'as inherited'}"
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
            f"{action:<10} {actors(res, action):>8} {s.count:>6} {fmt(s.p50):>7} "
            f"{fmt(s.p95):>7} {fmt(s.max):>7} {fmt(single_time(res, action)):>7} "
            f"{fmt(ideal(res, action)):>7} {fmt(p95_ratio(res, action)):>9}"
        )
    add(f"rounds completed: {res.load.rounds}")
    if res.load.closes:
        c = summarize(res.load.closes)
        add(
            f"a left page's websocket closing (alongside the next page's load, as a "
            f"browser's; in no action's time): {c.count}, p50 {fmt(c.p50)} s, "
            f"p95 {fmt(c.p95)} s, max {fmt(c.max)} s"
        )
    if res.browsers:
        add(f"Chromium sessions alongside ({res.browsers}), seconds to result:")
        for action in ACTIONS[:3]:
            b = summarize(res.alongside.times.get(action, []))
            add(f"  {action:<10} {b.count:>6} p50 {fmt(b.p50)} p95 {fmt(b.p95)} max {fmt(b.max)}")
    if res.health is not None:
        h = res.health
        add(
            f"health check (GET /_stcore/health every 0.5 s): {h.count} checks, "
            f"p50 {fmt(h.p50, 3)} s, p95 {fmt(h.p95, 3)} s, max {fmt(h.max, 3)} s, "
            f"{len(res.health_failures)} failed"
        )
    add("")
    add("== Single-session baseline ==")
    add(f"{'action':<10} {'count':>6} {'p50':>7} {'max':>7}")
    for action in ACTIONS:
        s = summarize(res.single.times.get(action, []))
        add(f"{action:<10} {s.count:>6} {fmt(s.p50):>7} {fmt(s.max):>7}")
    add(
        f"ideal = single-session median x {res.sessions} sessions / {res.cores} cores "
        "(perfect sharing: every session competes for the cores)"
    )
    add("")
    add("== Errors ==")
    for label, rec in res.records().items():
        counts = ", ".join(f"{k} {len(rec.errors.get(k, []))}" for k in ERROR_KINDS)
        add(f"{label:<7} total {rec.error_count()}: {counts}")
        for kind in ERROR_KINDS:
            for message in rec.errors.get(kind, [])[: args.show_errors]:
                add(f"        [{kind}] {message}")
            more = len(rec.errors.get(kind, [])) - args.show_errors
            if more > 0:
                add(f"        [{kind}] ... and {more} more")
        if rec.reconnects:
            add(
                f"        and {len(rec.reconnects)} stream(s) dropped by the server that the "
                "page connected again after, finishing its action (not errors):"
            )
            for message in rec.reconnects[: args.show_errors]:
                add(f"        [reconnected] {message}")
    add("")
    add("== Job queue ==")
    probe = res.probe
    if probe is not None:
        waits = probe.get("waits", [])
        add(
            f"server probe: cap {probe.get('cap')}, max concurrent trainings "
            f"{probe.get('max_running')}, max jobs active (queued + training) "
            f"{probe.get('max_active')}, trainings {probe.get('trainings')}"
            + (
                f" (added up over {probe['replicas']} replicas, each within its own cap: "
                f"{'no' if probe.get('over_cap') else 'yes'})"
                if probe.get("replicas")
                else ""
            )
        )
        for label, values in (
            ("queue wait per job", waits),
            ("training time per job", probe.get("seconds", [])),
        ):
            if values:
                add(
                    f"{label} (s): p50 {fmt(percentile(values, 50))}, "
                    f"p95 {fmt(percentile(values, 95))}, max {fmt(max(values))}"
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
            f"{label:<8} {fmt(u.rss_mb, 0):>8} {u.threads:>8} {fmt(u.cpu_pct, 0):>9} "
            f"{fmt(u.cpu_peak_pct, 0):>9}"
        )
    add(
        "cold: just started; before: after the single session closed; "
        "during: peaks of the N-session phase; after: all sessions closed, past the "
        "session TTL, and Python's cycle collector run"
    )
    if res.gc_found is not None and res.after is not None:
        add(
            f"after, before the collector ran: {fmt(res.rss_before_gc, 0)} MB "
            f"({res.gc_found} unreachable objects collected); after it: "
            f"{fmt(res.rss_before_trim, 0)} MB, of which malloc_trim handed "
            f"{fmt(res.rss_before_trim - res.after.rss_mb, 0)} MB back to the system "
            "(both readings, before and after, follow a collection and a trim)"
        )
    before, after = res.py_threads.get("before"), res.py_threads.get("after")
    if before is not None and after is not None:
        gone = Counter(before["names"]) - Counter(after["names"])
        new = Counter(after["names"]) - Counter(before["names"])
        add(
            f"Python threads: before {len(before['names'])}, after {len(after['names'])}"
            + (f"; new after: {', '.join(sorted(new.elements()))}" if new else "")
            + (f"; gone after: {', '.join(sorted(gone.elements()))}" if gone else "")
        )
    add(
        "machine CPU (mean % of one core): total = server + browser (Chromium) + "
        "harness (this process: the protocol sessions) + other"
    )
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
        add(f"== Soak: {n} runs from one session in {fmt(res.soak_wall_s, 0)} s ==")
        marks = sorted({1, soak_reference(n), n // 4, n // 2, 3 * n // 4, n} - {0})
        add("RSS after run: " + ", ".join(f"{m}: {res.soak_rss[m - 1]:.0f} MB" for m in marks))
        for action in ACTIONS:
            s = summarize(res.soak.times.get(action, []))
            if s.count:
                add(f"{action:<10} {s.count:>6} p50 {fmt(s.p50)} p95 {fmt(s.p95)}")
    add("")
    add("== Targets ==")
    for t in targets(res):
        verdict = "n/a " if t.ok is None else ("PASS" if t.ok else "FAIL")
        add(f"{verdict} {t.name}: {t.detail}")
    return "\n".join(lines)


def to_json(res: Results) -> dict:
    """The results as plain JSON: the headline figures first, then every time measured."""

    def rec(r: Record) -> dict:
        return {
            "times": dict(r.times),
            "errors": dict(r.errors),
            "queue_positions": sorted(r.queue_positions),
            "rounds": r.rounds,
            "reconnects": list(r.reconnects),
            "closes": list(r.closes),
        }

    def nan_none(x: float) -> float | None:
        return None if x is None or math.isnan(x) else x

    by_kind = Counter()
    for r in res.records().values():
        for kind, messages in r.errors.items():
            by_kind[kind] += len(messages)
    phases = ("cold", "before", "during", "after")
    usages = dict(zip(phases, (res.cold, res.before, res.during, res.after), strict=True))
    health = res.health
    return {
        "client": res.client,
        "sessions": res.sessions,
        "duration": res.duration,
        "cores": res.cores,
        "replicas": res.replicas,
        "browsers": res.browsers,
        "errors": res.error_count(),
        "errors_by_kind": {k: by_kind.get(k, 0) for k in ERROR_KINDS},
        "reconnects": sum(len(r.reconnects) for r in res.records().values()),
        "p95_ratio": {a: nan_none(p95_ratio(res, a)) for a in ACTIONS},
        "p95_s": {a: nan_none(summarize(res.load.times.get(a, [])).p95) for a in ACTIONS},
        "ideal": {a: nan_none(ideal(res, a)) for a in ACTIONS},
        "job_timeout_s": nan_none(res.job_timeout_s),
        "single": {a: nan_none(single_time(res, a)) for a in ACTIONS},
        "server": {
            phase: (
                {
                    "rss_mb": nan_none(u.rss_mb),
                    "threads": u.threads,
                    "cpu_pct": nan_none(u.cpu_pct),
                    "cpu_peak_pct": nan_none(u.cpu_peak_pct),
                }
                if u
                else None
            )
            for phase, u in usages.items()
        },
        "health_p50_s": nan_none(health.p50) if health else None,
        "health_p95_s": nan_none(health.p95) if health else None,
        "health_max_s": nan_none(health.max) if health else None,
        "health_checks": health.count if health else 0,
        "health_failures": len(res.health_failures),
        "records": {name: rec(r) for name, r in res.records().items()},
        "soak_rss_mb": res.soak_rss,
        "soak_caches_mb": {str(k): v for k, v in res.soak_caches.items()},
        "after_loads_rss_mb": res.after_loads_rss,
        "caches_mb": {
            "before": nan_none(res.caches_before_mb),
            "after": nan_none(res.caches_after_mb),
            "after_loads": [nan_none(c) for c in res.after_loads_caches],
        },
        # The "after" reading's way there: all sessions closed, then the cycle
        # collector, then malloc_trim (server.after.rss_mb).
        "after_rss_mb": {
            "before_collector": nan_none(res.rss_before_gc),
            "before_trim": nan_none(res.rss_before_trim),
        },
        "probe": res.probe,
        "cpu": res.cpu,
        "python_threads": res.py_threads,
        "targets": [vars(t) for t in targets(res)],
    }
