"""The browser tests' support, which the load harness (bench/load.py) shares too.

A real server: `launch_app` and `serve_app` start ``streamlit run app.py`` on a
free loopback port (`run_args`, `free_port`, `wait_healthy`), `stop_app` and
`stop` end it. A real browser: `CHROMIUM` and `CHROMIUM_ARGS` for Debian's
headless Chromium (never ``playwright install``). And JavaScript snippets
that read the playground's charts (Plotly keeps each chart's traces on its
DOM node). Every address is 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("OPTLAB_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

#: The names of the path traces on the playground's contour chart (one per optimizer).
PATH_NAMES = """() => {
  const gd = [...document.querySelectorAll('.js-plotly-plot')]
    .find(g => g.data && g.data.length && g.data[0].type === 'contour');
  if (!gd) return null;
  return gd.data
    .filter(t => (t.type === 'scatter' || t.type === 'scattergl') && t.mode.startsWith('lines'))
    .map(t => t.name);
}"""
#: True once the contour chart's paths are exactly ``want`` (a list of names).
PATHS_ARE = f"(want) => JSON.stringify(({PATH_NAMES})()) === JSON.stringify(want)"


def require_chromium() -> None:
    """Skips the calling test when Chromium is missing; fails it under CI=true, where
    every browser test must run."""
    import pytest

    from tests.support.resources import under_ci

    if not (Path(CHROMIUM).exists() or shutil.which(CHROMIUM)):
        message = f"Chromium not found at {CHROMIUM} (make test installs it as root)"
        if under_ci():
            pytest.fail(f"{message}; browser tests must run under CI")
        pytest.skip(message)


def run_args(port: int) -> list[str]:
    """``streamlit``'s arguments to run the app headless on 127.0.0.1:``port``."""
    return [
        "run",
        "app.py",
        "--server.address=127.0.0.1",
        f"--server.port={port}",
        "--server.headless=true",
        "--browser.gatherUsageStats=false",
    ]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def free_ports(count: int, tries: int = 50) -> int:
    """The first of ``count`` consecutive free loopback ports (HAProxy's and its
    replicas')."""
    for _ in range(tries):
        first = free_port()
        if first + count - 1 > 65535:
            continue
        try:
            for port in range(first + 1, first + count):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", port))
        except OSError:
            continue
        return first
    raise RuntimeError(f"no {count} consecutive free ports on 127.0.0.1")


def wait_healthy(url: str, proc: subprocess.Popen, timeout: float = 120.0) -> None:
    """Waits until the server at ``url`` answers its health check.

    Raises:
        RuntimeError: the process exited, or ``timeout`` seconds passed.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"streamlit exited early with status {proc.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise RuntimeError(f"streamlit did not become healthy within {timeout:.0f} s")


def stop(proc: subprocess.Popen, timeout: float = 10.0) -> None:
    """Terminates a server, killing it if it has not stopped within ``timeout`` seconds."""
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def launch_app(
    log: Path,
    env: dict[str, str] | None = None,
    port: int | None = None,
    root: Path = ROOT,
) -> tuple[subprocess.Popen, str]:
    """Starts `streamlit run app.py` on a loopback port (a free one by default) and
    waits until it is healthy; returns the process and its URL.

    ``env`` is merged over this process's environment for the server; unless
    it names one, the server's runs folder is ``runs`` beside ``log``, so no
    test sees another's autosaved runs. ``root`` is the checkout to serve (a
    benchmark may serve an older one beside this one).
    """
    port = port or free_port()
    cmd = [sys.executable, "-m", "streamlit", *run_args(port)]
    server_env = {**os.environ, "OPTLAB_RUNS_DIR": str(log.parent / "runs"), **(env or {})}
    with open(log, "ab") as out:
        proc = subprocess.Popen(cmd, cwd=root, stdout=out, stderr=subprocess.STDOUT, env=server_env)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, proc, timeout=90.0)
    except BaseException:
        stop_app(proc, log)
        raise
    return proc, url


def stop_app(proc: subprocess.Popen, log: Path) -> None:
    """Terminates a server (killing it if it will not stop); prints its log if it failed."""
    stop(proc)
    if proc.returncode not in (0, -15, -9, None):
        print(log.read_text(errors="replace")[-4000:])


@contextlib.contextmanager
def serve_app(log: Path, env: dict[str, str] | None = None) -> Iterator[str]:
    """Runs `streamlit run app.py` on a free loopback port (see `launch_app`); yields its URL."""
    proc, url = launch_app(log, env)
    try:
        yield url
    finally:
        stop_app(proc, log)


def open_inspector(page) -> None:
    """Opens the playground's step inspector (an expander, built only while open),
    waits until its chart is drawn and scrolls its heading to the top (a selectbox at
    the window's bottom edge opens no list that Playwright can click)."""
    heading = page.get_by_role("heading", name="Step inspector")
    heading.wait_for()
    box = page.get_by_test_id("stExpander").filter(has_text="Inspect one step")
    box.locator("summary").click()
    page.wait_for_function(
        "() => [...document.querySelectorAll('.js-plotly-plot')]"
        ".some(g => g._fullData && (g.layout.annotations || []).some(a => a.showarrow))"
    )
    heading.evaluate("h => h.scrollIntoView({block: 'start'})")
