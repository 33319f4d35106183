"""End to end in headless Chromium against a real `streamlit run` server.

What only a browser shows: the charts are drawn by plotly.js, a widget change
redraws them, the replay animates, and a copied URL reproduces the state.
The charts are read through plotly.js's own graph objects (``gd.data``).
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest

from tests.support.resources import ARTIFACTS
from tests.support.server import PATH_NAMES, serve_app

pytestmark = pytest.mark.browser


# Points drawn so far by each path trace of the replay chart, and its slider position.
REPLAY_STATE = """() => {
  const gd = [...document.querySelectorAll('.js-plotly-plot')]
    .find(g => g.layout && g.layout.sliders && g.layout.sliders.length);
  if (!gd) return null;
  const paths = gd._fullData.filter(t => t.mode === 'lines');
  return {points: paths.map(t => t.x.length),
          active: gd._fullLayout.sliders[0].active,
          images: (gd.layout.images || []).length};
}"""

DEFAULT_PATHS = ["SGD (momentum=0.9)", "Adam (lr=0.1)", "RMSprop"]


def wait_for_paths(page, expected: list[str]) -> None:
    page.wait_for_function(f"() => JSON.stringify(({PATH_NAMES})()) === '{_js_list(expected)}'")


def _js_list(names: list[str]) -> str:
    return "[" + ",".join(f'"{n}"' for n in names) + "]"


def test_home_draws_one_path_per_optimizer(page, app_url):
    page.goto(app_url)
    wait_for_paths(page, DEFAULT_PATHS)
    assert page.get_by_role("heading", name="Surface Playground").is_visible()
    # The summary table and the curves are there too.
    page.get_by_text("Summary").wait_for()
    charts = page.locator(".js-plotly-plot")
    assert charts.count() >= 4  # contour, replay, 3-D, loss (+ distance)
    ARTIFACTS.mkdir(exist_ok=True)
    page.wait_for_timeout(1500)  # let plotly finish its first paint
    page.screenshot(path=str(ARTIFACTS / "playground.png"))
    if target := os.environ.get("OPTLAB_SCREENSHOT"):
        page.screenshot(path=str(Path(target)))


def test_changing_learning_rate_redraws_and_updates_share_link(page, app_url):
    page.goto(app_url)
    wait_for_paths(page, DEFAULT_PATHS)
    lr_inputs = page.get_by_label("lr", exact=True)
    assert lr_inputs.count() == 3
    adam_lr = lr_inputs.nth(1)
    adam_lr.fill("0.02")
    adam_lr.press("Enter")
    wait_for_paths(page, ["SGD (momentum=0.9)", "Adam (lr=0.02)", "RMSprop"])
    page.wait_for_function("() => location.search.includes('lr%3D0.02')")
    opts = parse_qs(urlparse(page.url).query)["opt"]
    assert opts == ["sgd:momentum=0.9", "adam:lr=0.02", "rmsprop"]


def test_share_url_reproduces_the_comparison(browser, page, app_url):
    page.goto(app_url)
    wait_for_paths(page, DEFAULT_PATHS)
    # Change the surface's start and one optimizer, then open the URL elsewhere.
    start_x = page.get_by_label("start x", exact=True)
    start_x.fill("-1.5")
    start_x.press("Enter")
    page.wait_for_function("() => location.search.includes('start=-1.5')")
    rms_lr = page.get_by_label("lr", exact=True).nth(2)
    rms_lr.fill("0.003")
    rms_lr.press("Enter")
    expected = ["SGD (momentum=0.9)", "Adam (lr=0.1)", "RMSprop (lr=0.003)"]
    wait_for_paths(page, expected)
    page.wait_for_function("() => location.search.includes('lr%3D0.003')")
    shared = page.url

    other = browser.new_context(viewport={"width": 1400, "height": 1000})
    try:
        fresh = other.new_page()
        fresh.set_default_timeout(60_000)
        fresh.goto(shared)
        wait_for_paths(fresh, expected)
        assert fresh.get_by_label("start x", exact=True).input_value() == "-1.5"
        assert fresh.get_by_label("lr", exact=True).nth(2).input_value() == "0.003"
    finally:
        other.close()


def test_hostile_share_link_warns_and_falls_back(page, app_url):
    page.goto(f"{app_url}/?surface=custom&expr=__import__('os')&opt=adam")
    page.get_by_text("This link could not be used").wait_for()
    wait_for_paths(page, DEFAULT_PATHS)


def test_replay_slider_moves_without_rerunning(page, app_url):
    page.goto(app_url)
    wait_for_paths(page, DEFAULT_PATHS)
    page.get_by_role("tab", name="Replay").click()
    before = page.evaluate(REPLAY_STATE)
    assert before is not None and before["images"] == 1
    assert before["active"] == 0
    page.locator(".updatemenu-button", has_text="Play").first.click()
    page.wait_for_function(f"() => ({REPLAY_STATE})().active >= 10")
    after = page.evaluate(REPLAY_STATE)
    assert all(a > b for a, b in zip(after["points"], before["points"], strict=True))
    # The background survives the animation (plotly.js would drop a contour trace).
    assert after["images"] == 1
    # Scrubbing is client-side: the page never showed a running indicator.
    assert page.get_by_text("Running…").count() == 0


def test_deep_link_as_the_first_request_gets_the_app_shell(browser, tmp_path):
    # Streamlit runs a fresh process in legacy pages/-folder mode until some
    # session calls st.navigation; a deep link must still go through app.py.
    with serve_app(tmp_path / "server.log") as url:
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        try:
            tab = context.new_page()
            tab.set_default_timeout(60_000)
            tab.goto(f"{url}/rules")
            tab.get_by_role("heading", name="Update rules", exact=True).wait_for()
            nav = tab.get_by_test_id("stSidebarNav")
            nav.get_by_text("Surface Playground").wait_for()
            assert nav.get_by_text("app", exact=True).count() == 0  # no legacy page list
            assert tab.locator(".katex-error").count() == 0
        finally:
            context.close()
