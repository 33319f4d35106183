"""Shared fixtures: a real `streamlit run` server and Debian's Chromium.

Browser tests talk only to 127.0.0.1. When Chromium is missing they are
skipped locally but fail under CI=true, where they must run.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.app_driver import CHROMIUM, CHROMIUM_ARGS, free_port, run_args, stop, wait_healthy

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "artifacts"
#: The real-format CIFAR-10 subset beside the checkout (never copied into it).
CIFAR_SUBSET = ROOT.parent / "shared" / "data" / "cifar10-subset" / "cifar-10-batches-py"


def under_ci() -> bool:
    """Whether this run is CI's, where nothing may be skipped for lack of a resource."""
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require_cifar_subset() -> Path:
    """The shared subset's folder: a skip locally when it is missing, a failure under CI."""
    if not (CIFAR_SUBSET / "test_batch").is_file():
        message = f"CIFAR-10 subset not found at {CIFAR_SUBSET}"
        if under_ci():
            pytest.fail(f"{message}; it is required under CI")
        pytest.skip(message)
    return CIFAR_SUBSET


def launch_app(
    log: Path, env: dict[str, str] | None = None, port: int | None = None
) -> tuple[subprocess.Popen, str]:
    """Starts `streamlit run app.py` on a loopback port (a free one by default) and
    waits until it is healthy; returns the process and its URL.

    ``env`` is merged over this process's environment for the server; unless
    it names one, the server's runs folder is ``runs`` beside ``log``, so no
    test sees another's autosaved runs.
    """
    port = port or free_port()
    cmd = [sys.executable, "-m", "streamlit", *run_args(port)]
    server_env = {**os.environ, "OPTLAB_RUNS_DIR": str(log.parent / "runs"), **(env or {})}
    with open(log, "ab") as out:
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, env=server_env)
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


@pytest.fixture(scope="session")
def app_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real OptLab server, shared by the browser tests."""
    with serve_app(tmp_path_factory.mktemp("streamlit") / "server.log") as url:
        yield url


@pytest.fixture(scope="session")
def browser():
    """Headless Debian Chromium driven by Playwright (never `playwright install`)."""
    if not (Path(CHROMIUM).exists() or shutil.which(CHROMIUM)):
        message = f"Chromium not found at {CHROMIUM} (make test installs it as root)"
        if under_ci():
            pytest.fail(f"{message}; browser tests must run under CI")
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser, app_url):
    """A fresh browser tab (own context: no shared session state)."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    tab = context.new_page()
    tab.set_default_timeout(60_000)
    yield tab
    context.close()
