"""The Lessons page in Chromium against a real server, read from the DOM.

Every lesson opens from its link, draws each of its charts (the traces read
from plotly's ``gd._fullData`` carry the lesson's runs) and shows the script
that computed them; the time each took on a warm server is written to
``artifacts/lessons-timings.json``. Lesson 3 is then checked on a 1024x768
projector in presenter view. Screenshots go to ``artifacts/``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from optlab.lessons import LESSONS, run_lesson
from optlab.lessons.parts import CNN_IMAGES
from optlab.script.lessons import first_images
from tests.browser.test_presenter import PROJECTOR, assert_legible, wait_for_charts
from tests.lessons.test_lessons import cifar_folder
from tests.support.resources import ARTIFACTS
from tests.support.server import serve_app

#: Per visible chart: its trace names and how many points each has.
TRACES = """() => [...document.querySelectorAll('.js-plotly-plot')]
  .filter(gd => gd._fullData && gd.getBoundingClientRect().width > 0)
  .map(gd => gd._fullData.map(t => ({name: t.name, type: t.type,
                                     points: (t.x || t.z || []).length})))"""
#: The text of every code block on the page.
CODES = """() => [...document.querySelectorAll('[data-testid=stCode] code')]
  .map(c => c.innerText)"""


@pytest.fixture(scope="module")
def lessons_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A server of its own, with the CIFAR-10 subset for lesson 1's CNN half."""
    folder = cifar_folder()
    log = tmp_path_factory.mktemp("lessons") / "server.log"
    with serve_app(log, env={"OPTLAB_DATA_DIR": str(folder)}) as url:
        yield url


def open_lesson(page, url: str, query: str, charts: int) -> float:
    """Opens a lesson's link; returns the seconds until its charts and code are drawn."""
    started = time.perf_counter()
    page.goto(f"{url}/lessons?{query}")
    page.wait_for_function(
        f"() => ({TRACES})().length >= {charts} && ({CODES})().length >= 1", timeout=120_000
    )
    return time.perf_counter() - started


def test_every_lesson_draws_its_charts_and_shows_its_code(browser, lessons_url) -> None:
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    page = context.new_page()
    page.set_default_timeout(120_000)
    images = first_images(cifar_folder(), CNN_IMAGES)
    try:
        # Warm the server: its first CNN step pays for torch's one-time set-up.
        open_lesson(page, lessons_url, "lesson=training-loop&lr=0.02&cnn_lr=0.02", 3)
        timings = {}
        for lesson in LESSONS:
            run = run_lesson(lesson, images=images)
            figures = run.figures()
            wall = open_lesson(page, lessons_url, f"lesson={lesson.key}", len(figures))
            page.get_by_text("Computed in").wait_for()
            caption = page.get_by_text("Computed in").inner_text()
            timings[lesson.key] = {
                "page_seconds": round(wall, 2),
                "server_seconds": float(caption.split("Computed in ")[1].split(" s")[0]),
            }
            drawn = page.evaluate(TRACES)
            assert len(drawn) == len(figures), lesson.key
            for traces, (name, fig) in zip(drawn, figures, strict=True):
                expected = [(t.name, t.type) for t in fig.data]
                assert [(t["name"], t["type"]) for t in traces] == expected, name
                assert all(t["points"] > 0 for t in traces), (name, traces)
            codes = page.evaluate(CODES)
            assert [c.strip() for c in codes] == [s.strip() for s in run.scripts()], lesson.key
            if lesson.key == "change-lr":
                page.screenshot(path=str(ARTIFACTS / "lessons-1440.png"), full_page=False)
        ARTIFACTS.mkdir(exist_ok=True)
        (ARTIFACTS / "lessons-timings.json").write_text(json.dumps(timings, indent=2))
    finally:
        context.close()


@contextmanager
def presenter_view(browser, url: str, query: str, charts: int) -> Iterator[tuple[Any, list]]:
    """A lesson's link on a 1024x768 projector in presenter view: yields the page and its
    charts once they are drawn and checked legible; on leaving, nothing may overflow
    the window sideways."""
    context = browser.new_context(viewport=PROJECTOR)
    page = context.new_page()
    page.set_default_timeout(120_000)
    try:
        page.goto(f"{url}/lessons?{query}&view=presenter")
        drawn = wait_for_charts(page, charts)
        # A fresh process's first deep link also says "Page not found" (Streamlit's
        # pages/-folder mode) while st.navigation draws the page: close it.
        dialog = page.get_by_role("dialog")
        if dialog.count():
            page.keyboard.press("Escape")
            dialog.wait_for(state="detached")
        assert_legible(drawn)
        yield page, drawn
        overflow = page.evaluate("() => document.documentElement.scrollWidth - innerWidth")
        assert overflow <= 0
    finally:
        context.close()


def test_a_lesson_on_a_projector_in_presenter_view(browser, lessons_url) -> None:
    with presenter_view(browser, lessons_url, "lesson=change-lr", 2) as (page, charts):
        contour = next(c for c in charts if c["kind"] == "contour")
        assert contour["plotWidth"] >= 600, contour
        page.wait_for_function(f"() => ({CODES})().length >= 2")
        root = page.evaluate(
            "() => parseFloat(getComputedStyle(document.documentElement).fontSize)"
        )
        assert root >= 20
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "lessons-presenter-1024.png"), full_page=False)
        page.screenshot(path=str(ARTIFACTS / "lessons-presenter-1024-full.png"), full_page=True)


def test_lesson_four_on_a_projector_in_presenter_view(browser, lessons_url) -> None:
    with presenter_view(browser, lessons_url, "lesson=per-layer-lr&at=4", 3) as (page, charts):
        # Stacked at full width: the features' runs, the classifier's, the param groups.
        assert [c["kind"] for c in charts] == ["curves"] * 3
        assert all(c["plotWidth"] >= 600 for c in charts), charts
        page.get_by_text("Open both runs in the CNN lab").wait_for()
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "lesson4-presenter-1024.png"), full_page=True)
