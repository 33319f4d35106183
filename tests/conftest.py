"""Shared fixtures: a real `streamlit run` server and Debian's Chromium.

Browser tests talk only to 127.0.0.1. When Chromium is missing they are
skipped locally but fail under CI=true, where they must run.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import torch

if TYPE_CHECKING:
    from optlab.worker.client import EngineProcess

from optlab import charts
from tests.support.server import CHROMIUM, CHROMIUM_ARGS, require_chromium, serve_app

# Every chart a test builds through `optlab.charts.figure` is built validated too,
# and must send the same JSON: the pages build them unvalidated.
charts.CHECK_FIGURES = True

#: Folders whose every test needs the machine to itself (`quiet`): real browsers and
#: servers under timeouts, benchmarks that time things, the workshop's processes.
QUIET_FOLDERS = ("browser", "bench", "workshop")
#: Fixtures that make a test `quiet` wherever it is.
QUIET_FIXTURES = {"browser", "page", "app_url"}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Marks `quiet` every test that needs the machine to itself, so that `make test`
    runs the others on both cores first (``-n 2 -m "not quiet"``) and these after
    them, alone (``-m quiet``). A test elsewhere that times itself against the machine
    is marked by hand (``@pytest.mark.quiet``)."""
    tests = Path(__file__).parent
    for item in items:
        folder = item.path.relative_to(tests).parts[0] if item.path.is_relative_to(tests) else ""
        if folder in QUIET_FOLDERS or QUIET_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.quiet)


@pytest.fixture(scope="session")
def app_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real OptLab server, shared by the browser tests."""
    with serve_app(tmp_path_factory.mktemp("streamlit") / "server.log") as url:
        yield url


@pytest.fixture(scope="session")
def browser():
    """Headless Debian Chromium driven by Playwright (never `playwright install`)."""
    require_chromium()
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


@pytest.fixture(scope="module")
def one_thread() -> Iterator[None]:
    """One intra-op thread for a module of tiny CPU models (``pytestmark =
    pytest.mark.usefixtures("one_thread")``): they gain nothing from more, and on a
    busy machine OpenMP's spinning threads can make them many times slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def in_page_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pages compute in their own threads, in turns of the engine's slots, as with
    ``OPTLAB_CAP_ENGINE_PROCESS=0`` (the default): for the tests of those turns,
    whatever the environment sets."""
    from optlab.ui import engine
    from optlab.ui.playground import cache as runs
    from optlab.ui.sweep import cache as sweeps

    for module in (engine, runs, sweeps):
        monkeypatch.setattr(module, "engine_process", lambda: None)


@pytest.fixture(scope="module")
def engine_process_for_module() -> Iterator[EngineProcess]:
    """A real engine process (``python -m optlab.worker``), one per test module."""
    from optlab.worker.client import EngineProcess

    process = EngineProcess()
    yield process
    process.stop()


@pytest.fixture
def on_engine_process(monkeypatch: pytest.MonkeyPatch, engine_process_for_module):
    """Pages compute on an engine process, as with ``OPTLAB_CAP_ENGINE_PROCESS=1``."""
    from optlab.ui import engine
    from optlab.ui.playground import cache as runs
    from optlab.ui.sweep import cache as sweeps

    for module in (engine, runs, sweeps):
        monkeypatch.setattr(module, "engine_process", lambda: engine_process_for_module)
    return engine_process_for_module
