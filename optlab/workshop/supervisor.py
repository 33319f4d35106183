"""Starts a workshop's replicas and HAProxy, restarts whichever dies, stops them all.

Each child runs in its own process group, so a Ctrl-C in the presenter's
terminal reaches the launcher alone, which then stops HAProxy first (no
browser is sent to a replica on its way down), then the replicas. Each
writes to its own log file in the state folder.

All run in the launcher's session. Linux shares the cores between sessions
first, then between a session's threads by their nice values (autogroup, on
by default), so in one session a training's nice 10 yields to every
replica's pages and engine runs, not only to its own replica's. With a
session each, a replica that only trained took as large a share of the
cores as one serving ten pages (docs/load-test.md).

A child that exits while the workshop runs is
started again at once, or after a growing pause (up to
`MAX_RESTART_DELAY_S`) when it keeps dying right after starting, with one
log line each time.
"""

from __future__ import annotations

import importlib.util
import os
import secrets
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from optlab.workshop.config import (
    ASSET_MAX_BYTES,
    ASSETS_PATH,
    HEALTH_PATH,
    REPLICA_HOST,
    WorkshopConfig,
    haproxy_config,
)

#: The variable torch reads its thread count from at start-up.
TORCH_THREADS_ENV = "OMP_NUM_THREADS"
#: The cap on a training's CPU priority (`optlab.caps`), and the workshop's value.
TRAINING_NICE_ENV, TRAINING_NICE = "OPTLAB_CAP_TRAINING_NICE", 10
#: The cap that computes each replica's 2-D runs and sweeps in an engine process.
ENGINE_PROCESS_ENV = "OPTLAB_CAP_ENGINE_PROCESS"
#: Where Debian's package puts HAProxy.
HAPROXY = "/usr/sbin/haproxy"
#: A child that dies sooner than this after starting is restarted after a pause.
STEADY_S = 10.0
MAX_RESTART_DELAY_S = 30.0
#: Seconds a child is given to stop after SIGTERM before it is killed.
STOP_GRACE_S = 10.0
#: The checkout whose ``app.py`` the replicas serve.
APP_ROOT = Path(__file__).resolve().parents[2]


class WorkshopError(RuntimeError):
    """The workshop cannot start; the message says why in one line (or HAProxy's own)."""


def find_haproxy(path: str = HAPROXY) -> str:
    """The HAProxy executable at ``path`` (a path or a name on $PATH).

    Raises:
        ValueError: it is not there, with the command that installs it.
    """
    found = shutil.which(path)
    if found is None:
        raise ValueError(
            f"haproxy: not found at {path}; install it with `sudo apt-get install haproxy` "
            "(`make workshop` does so when run as root)"
        )
    return found


def check_ports_free(cfg: WorkshopConfig) -> None:
    """Refuses ports another program holds: HAProxy's and every replica's.

    Raises:
        ValueError: naming the first port in use.
    """
    wanted = [(cfg.host, cfg.port)] + [(REPLICA_HOST, p) for p in cfg.replica_ports]
    for host, port in wanted:
        with socket.socket() as probe:
            try:
                probe.bind((host, port))
            except OSError as err:
                raise ValueError(
                    f"port: {host}:{port} is not free ({err.strerror or err}); choose another "
                    f"--port (HAProxy takes PORT, the replicas PORT+1..PORT+{cfg.replicas})"
                ) from None


def validate_config(haproxy: str, path: Path) -> None:
    """Runs ``haproxy -c -f path``.

    Raises:
        WorkshopError: HAProxy refuses it (its own words included).
    """
    done = subprocess.run(
        [haproxy, "-c", "-f", str(path)], capture_output=True, text=True, timeout=30
    )
    if done.returncode != 0:
        lines = (done.stderr + done.stdout).strip().splitlines()
        alerts = [line for line in lines if "[ALERT]" in line] or lines
        raise WorkshopError(f"haproxy refuses {path}:\n" + "\n".join(alerts))


def healthy(url: str) -> bool:
    """Whether the server at ``url`` answers Streamlit's health check now."""
    try:
        with urllib.request.urlopen(url + HEALTH_PATH, timeout=2) as resp:
            return resp.status == 200
    except OSError:
        return False


def streamlit_assets() -> Path:
    """The folder Streamlit serves at `ASSETS_PATH` (its package's ``static/static``),
    found without importing Streamlit into the launcher."""
    spec = importlib.util.find_spec("streamlit")
    if spec is None or not spec.submodule_search_locations:
        raise WorkshopError("streamlit: not installed in this Python")
    return Path(next(iter(spec.submodule_search_locations))) / "static" / "static"


def warm_assets(url: str, folder: Path, workers: int = 4) -> tuple[int, int, list[str]]:
    """Fetches every file of ``folder`` (up to `ASSET_MAX_BYTES`) through the HAProxy at
    ``url``, which keeps each in its asset cache: the first attendees' pages then load
    from HAProxy's memory rather than from replicas busy with everyone's first scripts.

    Returns the files and bytes fetched, and a line for each file that failed (the
    cache then fills with it on its first real request)."""
    files = sorted(
        p for p in folder.rglob("*") if p.is_file() and p.stat().st_size <= ASSET_MAX_BYTES
    )

    def fetch(path: Path) -> tuple[int, str | None]:
        name = path.relative_to(folder).as_posix()
        try:
            with urllib.request.urlopen(f"{url}{ASSETS_PATH}{name}", timeout=30) as resp:
                return len(resp.read()), None
        except OSError as exc:
            return 0, f"{name}: {exc}"

    with ThreadPoolExecutor(workers) as pool:
        results = list(pool.map(fetch, files))
    failed = [why for _, why in results if why]
    return len(files) - len(failed), sum(n for n, _ in results), failed


@dataclass
class Child:
    """One supervised process: its command, log file and current process."""

    name: str
    cmd: list[str]
    log: Path
    env: dict[str, str] | None = None
    cwd: Path | None = None
    proc: subprocess.Popen | None = None
    #: When it last started (monotonic seconds).
    started: float = 0.0
    #: Deaths in a row, each sooner than `STEADY_S` after starting.
    fast_deaths: int = 0
    #: When a pending restart is due (0: none pending).
    next_start: float = 0.0

    def start(self) -> None:
        """Starts the process in a process group of its own in the launcher's
        session (the module's docstring says why), appending to its log."""
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                self.cmd,
                cwd=self.cwd,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                process_group=0,
            )
        self.started = time.monotonic()

    def terminate(self) -> None:
        """Asks it to stop (SIGTERM), if it runs."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()

    def wait_stopped(self, grace_s: float = STOP_GRACE_S) -> None:
        """Waits ``grace_s`` seconds for it to stop, then kills it."""
        if self.proc is None:
            return
        try:
            self.proc.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def tail(self, chars: int = 1500) -> str:
        """The end of its log (why it died, usually)."""
        try:
            text = self.log.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return text[-chars:].strip()


class Workshop:
    """N replicas and HAProxy, supervised.

    Args:
        cfg: What to serve.
        state_dir: Where ``haproxy.cfg`` and the logs are written (made if missing).
        haproxy: HAProxy's executable.
        out: Where the log lines go (the presenter's terminal).
        python: The interpreter the replicas run (this one by default).
        app_root: The checkout whose ``app.py`` they serve.
        env: Variables every replica gets besides the launcher's and the config's.
        extra_args: More ``streamlit run`` options for every replica.
        launcher: A replica's name -> the command that runs ``streamlit`` for it
            (``[python, "-m", "streamlit"]`` by default; the load test wraps it
            in its counting probe).
    """

    def __init__(
        self,
        cfg: WorkshopConfig,
        state_dir: Path,
        haproxy: str = HAPROXY,
        out: TextIO = sys.stdout,
        python: str = sys.executable,
        app_root: Path = APP_ROOT,
        env: Mapping[str, str] | None = None,
        extra_args: Sequence[str] = (),
        launcher: Callable[[str], list[str]] | None = None,
    ) -> None:
        if not (app_root / "app.py").is_file():
            raise ValueError(f"app.py: not found in {app_root}")
        self.cfg = cfg
        self.state_dir = Path(state_dir)
        self.haproxy = haproxy
        self.out = out
        self.config_path = self.state_dir / "haproxy.cfg"
        env = {**os.environ, **cfg.replica_env(), **(env or {})}
        # Unless the presenter chose otherwise: the cores shared out between the
        # replicas, trainings a step behind the pages for the cores (a class's
        # clicks first), and each replica's runs computed in an engine process
        # of its own (docs/load-test.md measures all three).
        env.setdefault(TORCH_THREADS_ENV, str(cfg.torch_threads))
        env.setdefault(TRAINING_NICE_ENV, str(TRAINING_NICE))
        env.setdefault(ENGINE_PROCESS_ENV, "1")
        # One cookie secret for every replica: a browser moved to another replica
        # keeps a valid XSRF token (file uploads) there.
        env.setdefault("STREAMLIT_SERVER_COOKIE_SECRET", secrets.token_hex(32))
        streamlit = launcher or (lambda _name: [python, "-m", "streamlit"])
        self.replicas = [
            Child(
                name,
                [
                    *streamlit(name),
                    "run",
                    "app.py",
                    f"--server.address={REPLICA_HOST}",
                    f"--server.port={port}",
                    "--server.headless=true",
                    "--server.fileWatcherType=none",
                    "--browser.gatherUsageStats=false",
                    *extra_args,
                ],
                self.state_dir / f"{name}.log",
                env,
                app_root,
            )
            for name, port in zip(cfg.names, cfg.replica_ports, strict=True)
        ]
        self.proxy = Child(
            "haproxy", [haproxy, "-db", "-f", str(self.config_path)], self.state_dir / "haproxy.log"
        )
        self.stopping = threading.Event()

    def say(self, line: str) -> None:
        """One log line for the presenter."""
        print(f"workshop: {line}", file=self.out, flush=True)

    def url_of(self, child: Child) -> str:
        """A replica's own loopback URL."""
        port = self.cfg.replica_ports[self.replicas.index(child)]
        return f"http://{REPLICA_HOST}:{port}"

    def start(self, timeout: float = 180.0) -> None:
        """Writes and checks ``haproxy.cfg``, starts every child, waits until the
        replicas are healthy.

        Raises:
            WorkshopError: HAProxy refuses its configuration, a child exits at
                once, or a replica is not healthy within ``timeout`` seconds.
        """
        self.state_dir.mkdir(parents=True, exist_ok=True)
        Path(self.cfg.runs_dir).mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(haproxy_config(self.cfg), encoding="utf-8")
        validate_config(self.haproxy, self.config_path)
        self.say(f"HAProxy configuration {self.config_path} (checked with haproxy -c)")
        self.say(f"runs folder {self.cfg.runs_dir}, rooms database {self.cfg.rooms_db}")
        env = self.replicas[0].env
        self.say(
            f"each replica's torch computes on {env[TORCH_THREADS_ENV]} thread(s) "
            f"({TORCH_THREADS_ENV}); trainings run at nice {env[TRAINING_NICE_ENV]} "
            f"({TRAINING_NICE_ENV}); runs and sweeps compute in an engine process: "
            f"{'yes' if env[ENGINE_PROCESS_ENV].strip() == '1' else 'no'} ({ENGINE_PROCESS_ENV})"
        )
        for child in self.replicas:
            child.start()
            self.say(f"{child.name}: {self.url_of(child)} (pid {child.proc.pid}), log {child.log}")
        deadline = time.monotonic() + timeout
        waiting = list(self.replicas)
        while waiting:
            if self.stopping.is_set():
                return  # a signal came while the replicas were starting
            for child in list(waiting):
                if child.proc.poll() is not None:
                    raise WorkshopError(
                        f"{child.name} exited with status {child.proc.returncode}:\n{child.tail()}"
                    )
                if healthy(self.url_of(child)):
                    waiting.remove(child)
            if waiting and time.monotonic() > deadline:
                names = ", ".join(c.name for c in waiting)
                raise WorkshopError(f"{names}: not healthy within {timeout:.0f} s")
            if waiting:
                time.sleep(0.3)
        self.proxy.start()
        # Ready means a browser gets through: HAProxy listens and sees a replica up.
        while not healthy(self.cfg.url):
            if self.proxy.proc.poll() is not None:
                raise WorkshopError(f"haproxy exited at once:\n{self.proxy.tail()}")
            if time.monotonic() > deadline:
                raise WorkshopError(f"haproxy: no replica reachable within {timeout:.0f} s")
            if self.stopping.is_set():
                return
            time.sleep(0.2)
        self.say(f"haproxy: {self.cfg.host}:{self.cfg.port} (pid {self.proxy.proc.pid})")
        self.fill_asset_cache()
        self.say(f"{self.cfg.replicas} replica(s) ready: open {self.cfg.url}")

    def fill_asset_cache(self, wait_s: float = 0.0) -> None:
        """Fills HAProxy's asset cache (`warm_assets`), once HAProxy answers (within
        ``wait_s`` seconds), with one log line."""
        deadline = time.monotonic() + wait_s
        while not healthy(self.cfg.url):
            if time.monotonic() > deadline or self.stopping.is_set():
                self.say("asset cache: HAProxy did not answer; it fills on first use")
                return
            time.sleep(0.2)
        began = time.monotonic()
        files, size, failed = warm_assets(self.cfg.url, streamlit_assets())
        self.say(
            f"asset cache: {files} file(s), {size / 2**20:.1f} MB, fetched through HAProxy "
            f"in {time.monotonic() - began:.1f} s"
        )
        for why in failed[:3]:
            self.say(f"asset cache: not filled with {why} (it will be on first use)")

    def check(self) -> None:
        """Restarts every child that has exited (one log line each)."""
        now = time.monotonic()
        for child in [*self.replicas, self.proxy]:
            if child.proc is None or child.proc.poll() is None or self.stopping.is_set():
                continue
            if child.next_start == 0.0:
                lived = now - child.started
                child.fast_deaths = child.fast_deaths + 1 if lived < STEADY_S else 0
                delay = min(MAX_RESTART_DELAY_S, 2.0 ** (child.fast_deaths - 1))
                delay = delay if child.fast_deaths else 0.0
                child.next_start = now + delay
                self.say(
                    f"{child.name} (pid {child.proc.pid}) exited with status "
                    f"{child.proc.returncode}; restarting it"
                    + (f" in {delay:.0f} s" if delay else "")
                )
            if now >= child.next_start:
                child.next_start = 0.0
                child.start()
                self.say(f"{child.name}: restarted (pid {child.proc.pid})")
                if child is self.proxy:  # a new HAProxy's cache is empty
                    threading.Thread(
                        target=self.fill_asset_cache, args=(30.0,), daemon=True
                    ).start()

    def supervise(self, poll_s: float = 0.5) -> None:
        """Checks the children every ``poll_s`` seconds until `stopping` is set."""
        while not self.stopping.wait(poll_s):
            self.check()

    def stop(self) -> None:
        """Stops HAProxy, then the replicas (each with SIGTERM, SIGKILL if it hangs)."""
        self.stopping.set()
        self.proxy.terminate()
        self.proxy.wait_stopped()
        for child in self.replicas:
            child.terminate()
        for child in self.replicas:
            child.wait_stopped()
        self.say("stopped")
