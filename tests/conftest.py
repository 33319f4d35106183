"""Shared fixtures: a real `streamlit run` server and Debian's Chromium.

Browser tests talk only to 127.0.0.1. When Chromium is missing they are
skipped locally but fail under CI=true, where they must run.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch

from tests.support.server import CHROMIUM, CHROMIUM_ARGS, require_chromium, serve_app


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
