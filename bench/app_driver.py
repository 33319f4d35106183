"""What the load harness and the browser tests share: a real server, and reading its pages.

`run_args`, `free_port`, `wait_healthy` and `stop` helpers for a `streamlit run` of the
app on 127.0.0.1; `CHROMIUM` and `CHROMIUM_ARGS` for Debian's headless
Chromium (never `playwright install`); and JavaScript snippets that read the
playground's charts (Plotly keeps each chart's traces on its DOM node).
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
import urllib.request

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
  return gd.data.filter(t => t.type === 'scatter' && t.mode === 'lines+markers').map(t => t.name);
}"""
#: True once the contour chart's paths are exactly ``want`` (a list of names).
PATHS_ARE = f"(want) => JSON.stringify(({PATH_NAMES})()) === JSON.stringify(want)"


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
