"""The server under load: `streamlit run app.py` on 127.0.0.1, through a probe.

The probe (``python -m bench.load_server FILE streamlit-args...``) runs
Streamlit in this process after wrapping `Job._run` and `Job._work` with
counters (read-only), so the report knows exactly how many trainings ran at
once; on SIGUSR1 it lists the server's Python threads, on SIGUSR2 it runs
Python's cycle collector.
"""

from __future__ import annotations

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
from dataclasses import dataclass
from pathlib import Path

from tests.support.server import free_port, run_args, stop, wait_healthy

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
        cmd = [sys.executable, "-m", "bench.load_server", str(probe_file), *args]
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


if __name__ == "__main__":
    serve_with_probe(sys.argv[1:])
