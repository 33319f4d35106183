"""The server under load: `streamlit run app.py` on 127.0.0.1, through a probe;
or, with ``--replicas K``, the workshop's layout (K replicas behind HAProxy).

The probe (``python -m bench.load_server FILE streamlit-args...``) runs
Streamlit in this process after wrapping `Job._run` and `Job._work` with
counters (read-only), so the report knows exactly how many trainings ran at
once; on SIGUSR1 it lists the server's Python threads and the thread pools
they may belong to, on SIGUSR2 it runs Python's cycle collector.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import gc
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
import weakref
from dataclasses import dataclass, field
from pathlib import Path

from bench.load_stats import descendants, read_processes
from optlab.heap import trim_heap
from optlab.workshop.config import WorkshopConfig
from optlab.workshop.supervisor import HAPROXY, Workshop, find_haproxy
from tests.support.server import free_port, free_ports, run_args, stop, wait_healthy

ROOT = Path(__file__).resolve().parent.parent


def http_get(url: str) -> int:
    """The status of a plain GET (0 when it failed)."""
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            resp.read()
            return resp.status
    except OSError:
        return 0


def _install_probe(path: str) -> None:
    """In the server process: count trainings and jobs, write the counts to ``path``.

    Wraps `Job._run` (a training runs, holding one of the registry's
    slots, while it runs) and `Job._work` (a job is active, queued or
    training, while its worker runs). On SIGUSR1 it also writes the names of the process's Python
    threads to ``path + ".threads"`` (what a thread count is made of), with the
    bounds of the thread pools alive now. Nothing is changed but the counting.
    """
    from optlab.train import jobs

    # Every ThreadPoolExecutor the server starts (asyncio's default one included):
    # its workers are named "<prefix>_<n>", at most max_workers of them, and live as
    # long as the pool, so a worker started under load and idle since is no leak.
    pools: weakref.WeakSet = weakref.WeakSet()
    pool_init = concurrent.futures.ThreadPoolExecutor.__init__

    def track(self, *args, **kwargs) -> None:
        pool_init(self, *args, **kwargs)
        pools.add(self)

    concurrent.futures.ThreadPoolExecutor.__init__ = track

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
        bounds = {p._thread_name_prefix: p._max_workers for p in list(pools)}
        tmp = f"{path}.threads.tmp"
        with open(tmp, "w") as f:
            json.dump({"names": names, "pools": bounds}, f)
        os.replace(tmp, f"{path}.threads")

    jobs.Job._run = train
    jobs.Job._work = work

    def collect(*_) -> None:
        # Python frees objects in reference cycles only when its collector runs; a
        # reading taken before that would count garbage as kept memory. Freed memory
        # then stays with the C allocator (glibc keeps each thread arena's free
        # pages), which malloc_trim hands back: what is left is memory in use.
        found = gc.collect()
        # With what this server started (its engine process, `optlab.worker`).
        rss_mb = read_processes([os.getpid(), *descendants([os.getpid()])]).rss_mb
        trim_heap()
        tmp = f"{path}.gc.tmp"
        with open(tmp, "w") as f:
            json.dump({"found": found, "rss_mb": rss_mb, "caches_mb": caches_mb()}, f)
        os.replace(tmp, f"{path}.gc")

    signal.signal(signal.SIGUSR1, list_threads)
    signal.signal(signal.SIGUSR2, collect)
    with lock:
        dump()


def serve_with_probe(argv: list[str]) -> None:
    """``python -m bench.load_server FILE streamlit-args...``."""
    probe_file, *streamlit_args = argv
    sys.path.insert(0, str(ROOT))
    _install_probe(probe_file)
    from streamlit.web.cli import main

    sys.argv = ["streamlit", *streamlit_args]
    main(prog_name="streamlit")


@dataclass
class Server:
    """The server under load: one Streamlit process, or replicas behind HAProxy.

    Attributes:
        url: Where the sessions connect (HAProxy's front with replicas).
        procs: The Streamlit processes (each replica).
        probe_files: Each process's probe file (empty without the probe).
        log: The server's log (with replicas: the workshop's own lines; each
            replica's log is beside it).
        urls: Each process's own URL (a replica is warmed up through it).
        proxy: HAProxy's process, with replicas.
    """

    url: str
    procs: list[subprocess.Popen]
    probe_files: list[Path]
    log: Path
    urls: list[str] = field(default_factory=list)
    proxy: subprocess.Popen | None = None

    @property
    def pids(self) -> list[int]:
        """What counts as the server in the readings: the Streamlit processes, what
        they started (each one's engine process, `optlab.worker`) and HAProxy."""
        roots = [p.pid for p in self.procs] + ([self.proxy.pid] if self.proxy else [])
        return roots + descendants(roots)

    def describe(self) -> str:
        """One line: the URL and the processes."""
        if self.proxy is None:
            return f"server {self.url}, pid {self.procs[0].pid}"
        replicas = ", ".join(
            f"{u} (pid {p.pid})" for u, p in zip(self.urls, self.procs, strict=True)
        )
        return f"HAProxy {self.url} (pid {self.proxy.pid}) in front of {replicas}"

    def exited(self) -> list[str]:
        """A line for each server process that is no longer running."""
        named = [(f"replica {k}", p) for k, p in enumerate(self.procs, 1)]
        if len(named) == 1:
            named = [("the server", self.procs[0])]
        if self.proxy is not None:
            named.append(("haproxy", self.proxy))
        return [f"{n} exited with status {p.returncode}" for n, p in named if p.poll() is not None]

    def _ask(self, sig: int, suffix: str, timeout: float) -> list | None:
        """Signals every probe and reads their answers from ``<probe file><suffix>``."""
        if not self.probe_files:
            return None
        targets = [Path(f"{f}{suffix}") for f in self.probe_files]
        for target, proc in zip(targets, self.procs, strict=True):
            target.unlink(missing_ok=True)
            proc.send_signal(sig)
        answers: list = []
        deadline = time.monotonic() + timeout
        for target in targets:
            while True:
                with contextlib.suppress(OSError, ValueError):
                    answers.append(json.loads(target.read_text()))
                    break
                if time.monotonic() > deadline:
                    return None
                time.sleep(0.1)
        return answers

    def python_threads(self, timeout: float = 5.0) -> dict | None:
        """The server's Python threads now (through the probe), or None: ``{"names":
        [every process's thread names], "pools": {thread pool prefix: max workers}}``."""
        answers = self._ask(signal.SIGUSR1, ".threads", timeout)
        if answers is None:
            return None
        pools: dict[str, int] = {}
        for answer in answers:
            pools.update(answer["pools"])
        return {"names": sorted(n for a in answers for n in a["names"]), "pools": pools}

    def collect_garbage(self, timeout: float = 30.0) -> tuple[int, float, float] | None:
        """Runs Python's cycle collector in the server, then `trim_heap`: the objects it
        found, the server's RSS in MB between the two, and the MB its caches hold
        (`caches_mb`; each added up over the processes), or None."""
        answers = self._ask(signal.SIGUSR2, ".gc", timeout)
        if answers is None:
            return None
        return (
            sum(a["found"] for a in answers),
            sum(a["rss_mb"] for a in answers),
            sum(sum(a["caches_mb"].values()) for a in answers),
        )

    def probe(self) -> dict | None:
        """The probes' counts: one process's, or the replicas' added up (see `merge_probes`)."""
        if not self.probe_files:
            return None
        try:
            found = [json.loads(f.read_text()) for f in self.probe_files]
        except (OSError, ValueError):
            return None
        return found[0] if len(found) == 1 else merge_probes(found)


def caches_mb() -> dict[str, float]:
    """In the server process: the memory its caches hold now, in MB, by cache (the
    trajectories' estimated from their recorded steps; `st.cache_data`'s as Streamlit
    counts it, the step inspector's records among them)."""
    from streamlit.runtime.caching.cache_data_api import _data_caches

    from optlab.ui.playground.cache import STEP_BYTES, trajectory_cache
    from optlab.ui.sweep.cache import sweep_cache

    data = _data_caches.get_stats()
    return {
        "trajectories": trajectory_cache().weight * STEP_BYTES / 2**20,
        "sweeps": sweep_cache().weight / 2**20,
        "cache_data": sum(s.byte_length for family in data.values() for s in family) / 2**20,
    }


def merge_probes(probes: list[dict]) -> dict:
    """The replicas' probe counts as one server's: caps, trainings and peaks added up
    (the sum of the peaks bounds the peak of the sum), waits and times pooled, and
    ``over_cap`` when any replica ran more trainings at once than its own cap."""
    merged: dict = {"replicas": len(probes)}
    for key in ("running", "max_running", "active", "max_active", "cap", "trainings"):
        merged[key] = sum(p.get(key, 0) for p in probes)
    for key in ("waits", "seconds"):
        merged[key] = [v for p in probes for v in p.get(key, [])]
    merged["over_cap"] = any(p.get("max_running", 0) > p.get("cap", 0) for p in probes)
    return merged


def server_env(workdir: Path, env: dict[str, str]) -> dict[str, str]:
    """The server's environment: no CIFAR-10 (the synthetic set), a cache of its own."""
    cache = workdir / "cache"
    cache.mkdir(exist_ok=True)
    return {
        **os.environ,
        "OPTLAB_CACHE_DIR": str(cache),
        "OPTLAB_DATA_DIR": "",
        "OPTLAB_CIFAR_URL": "",
        **env,
    }


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
        cmd = [sys.executable, "-m", "bench.load_server", str(probe_file), *args]
    else:
        cmd = [sys.executable, "-m", "streamlit", *args]
    log = workdir / "server.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            cmd, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, env=server_env(workdir, env)
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, proc)
        yield Server(url, [proc], [probe_file] if probe_file else [], log, [url])
    finally:
        stop(proc, timeout=15)


@contextlib.contextmanager
def serve_replicas(
    workdir: Path,
    replicas: int,
    port: int,
    probe: bool,
    env: dict[str, str],
    session_ttl: int = 120,
    haproxy: str = HAPROXY,
):
    """Runs the workshop's layout (`optlab.workshop`, as ``make workshop`` does):
    ``replicas`` Streamlit processes (each through the probe unless told not to)
    behind HAProxy on 127.0.0.1:``port``, sharing one runs folder."""
    port = port or free_ports(replicas + 1)
    cfg = WorkshopConfig(replicas, port, (workdir / "runs").resolve())
    probes = {name: workdir / f"probe-{name}.json" for name in cfg.names} if probe else {}

    def launcher(name: str) -> list[str]:
        if probe:
            return [sys.executable, "-m", "bench.load_server", str(probes[name])]
        return [sys.executable, "-m", "streamlit"]

    log = workdir / "server.log"
    with open(log, "w", encoding="utf-8") as out:
        workshop = Workshop(
            cfg,
            workdir / "workshop",
            find_haproxy(haproxy),
            out=out,
            app_root=ROOT,
            env=server_env(workdir, env),
            extra_args=[f"--server.disconnectedSessionTTL={session_ttl}"],
            launcher=launcher,
        )
        try:
            workshop.start()
            yield Server(
                cfg.url,
                [c.proc for c in workshop.replicas],
                list(probes.values()),
                log,
                [workshop.url_of(c) for c in workshop.replicas],
                workshop.proxy.proc,
            )
        finally:
            workshop.stop()


if __name__ == "__main__":
    serve_with_probe(sys.argv[1:])
