"""End to end in headless Chromium against a real `streamlit run` server.

What only a browser shows: the charts are drawn by plotly.js, a widget change
redraws them, the replay animates, and a copied URL reproduces the state.
The charts are read through plotly.js's own graph objects (``gd.data``).
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import parse_qs, quote, urlparse, urlsplit

import pytest

from optlab.ui.view import TAB_ICON
from tests.browser.test_cnn import settle
from tests.support.resources import ARTIFACTS
from tests.support.server import PATH_NAMES, open_inspector, serve_app

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
#: What each Plotly chart on the page is: "contour", "replay", "3d", "inspector"
#: (a contour with the step's arrows) or "curves".
CHART_KINDS = """() => [...document.querySelectorAll('.js-plotly-plot')].map(g => {
  if (!g._fullData) return 'drawing';
  if ((g.layout.sliders || []).length) return 'replay';
  if (g._fullData.some(t => t.type === 'surface')) return '3d';
  if ((g.layout.annotations || []).some(a => a.showarrow)) return 'inspector';
  if (((g._fullLayout.yaxis || {}).title || {}).text === 'λ_max of the Hessian') return 'sharpness';
  if (g._fullData.some(t => t.type === 'contour')) return 'contour';
  return 'curves';
})"""
#: SGD at lr 0.095 on x**2 + 10*y**2: y is multiplied by -0.9 on every step.
ZIGZAG = (
    "/?surface=custom&expr=x**2%2B10*y**2&bounds=-5%2C5%2C-5%2C5&start=1.5%2C1"
    "&steps=1000&opt=sgd%3Alr%3D0.095"
)
#: Sign changes of the y values of the first path trace of a chart of ``kind``
#: (for the replay: of its last frame, and of the figure as shown).
SIGN_CHANGES = """(kind) => {
  // A frame keeps its arrays as plotly.py wrote them: a typed-array spec, base64.
  const numbers = v => { if (!v || !v.bdata) return Array.from(v);
    const bytes = Uint8Array.from(atob(v.bdata), c => c.charCodeAt(0));
    const Kind = {f8: Float64Array, f4: Float32Array, i4: Int32Array, i2: Int16Array,
                  i1: Int8Array, u1: Uint8Array, u2: Uint16Array, u4: Uint32Array}[v.dtype];
    return Array.from(new Kind(bytes.buffer)); };
  const flips = ys => { let n = 0; for (let i = 1; i < ys.length; i++)
    if (Math.sign(ys[i]) !== Math.sign(ys[i - 1])) n++; return n; };
  const gd = [...document.querySelectorAll('.js-plotly-plot')].find(g => g._fullData &&
    (kind === 'replay' ? (g.layout.sliders || []).length
                       : g._fullData.some(t => t.type === 'contour')));
  if (!gd) return null;
  const path = gd._fullData.find(t => t.name && t.name.startsWith('SGD') && t.mode !== 'markers');
  const out = {shown: flips(Array.from(path.y))};
  if (kind === 'replay') {
    const frames = gd._transitionData._frames;
    out.frames = frames.length;
    out.last = flips(numbers(frames[frames.length - 1].data[0].y));
  }
  return out;
}"""


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
    page.wait_for_function(f"() => ({CHART_KINDS})().length === 3")
    # The contour, the loss and distance curves; the replay, the WebGL 3-D view
    # and the step inspector are built only when their tab or expander is opened.
    assert page.evaluate(CHART_KINDS) == ["contour", "curves", "curves"]
    ARTIFACTS.mkdir(exist_ok=True)
    page.wait_for_timeout(1500)  # let plotly finish its first paint
    # The server reserved each chart's left margin for its y axis (plotly.js would
    # otherwise draw, measure and draw again): the margin drawn is the one reserved.
    margins = page.evaluate(
        "() => [...document.querySelectorAll('.js-plotly-plot')]"
        ".map(g => [g.layout.margin.l, g._fullLayout._size.l])"
    )
    assert all(reserved == drawn for reserved, drawn in margins), margins
    page.screenshot(path=str(ARTIFACTS / "playground.png"))
    open_inspector(page)
    # The inspector's step chart and, below it, λ_max along each path.
    page.wait_for_function(f"() => ({CHART_KINDS})().length === 5")
    assert page.evaluate(CHART_KINDS) == ["contour", "curves", "curves", "inspector", "sharpness"]
    if target := os.environ.get("OPTLAB_SCREENSHOT"):
        page.screenshot(path=str(Path(target)))


def test_the_pages_ask_nothing_of_the_internet(page, app_url):
    """A workshop room may have no internet: every request a page makes goes to the
    server, and the tab's icon is drawn from an emoji in the page itself (with a
    material icon, Streamlit fetches it from fonts.gstatic.com)."""
    hosts: set[str | None] = set()
    page.on("request", lambda r: hosts.add(urlsplit(r.url).hostname))
    page.goto(app_url)
    wait_for_paths(page, DEFAULT_PATHS)
    for path in ("/sweeps", "/cnn-lab", "/lessons"):
        page.goto(app_url + path)
        page.get_by_test_id("stMain").get_by_role("heading").first.wait_for()
        settle(page)
    page.wait_for_timeout(1000)
    icon = page.evaluate("() => document.querySelector(\"link[rel='shortcut icon']\").href")
    assert icon.startswith("data:image/svg+xml") and quote(TAB_ICON) in icon, icon
    assert hosts == {urlsplit(app_url).hostname}


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
    page.wait_for_function(f"() => ({REPLAY_STATE})() !== null")
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


def test_a_1000_step_zigzag_keeps_every_flip_in_paths_and_replay(page, app_url):
    """The issue's case: the old charts drew 198 of 1000 flips and a smooth replay."""
    page.goto(app_url + ZIGZAG)
    page.wait_for_function("() => (" + SIGN_CHANGES + ")('paths') !== null")
    assert page.evaluate(SIGN_CHANGES, "paths") == {"shown": 1000}
    page.get_by_role("tab", name="Replay").click()
    page.wait_for_function("() => (" + SIGN_CHANGES + ")('replay') !== null")
    replay = page.evaluate(SIGN_CHANGES, "replay")
    assert replay["last"] == 1000  # the last frame is the whole path
    assert replay["shown"] == 0  # opened at step 0: the start alone
    # The step box shows any step exactly: + moves one step, the path one flip.
    box = page.get_by_role("spinbutton", name="Show step")
    box.fill("37")
    box.press("Enter")
    page.wait_for_function("() => (" + SIGN_CHANGES + ")('replay').shown === 37")


def shows_every_flip(page) -> None:
    """Waits until the paths chart draws all 1000 sign flips of the zig-zag. After an
    error the page runs the last comparison that ran again (live, step by step, when
    an interrupted run left it uncached), so the full path arrives at the end; a page
    that kept a partial or blank chart fails here."""
    page.wait_for_function(
        "() => { const s = (" + SIGN_CHANGES + ")('paths'); return s && s.shown === 1000; }"
    )


def test_a_typo_or_a_bad_lr_keeps_the_last_chart_with_the_error(page, app_url):
    page.goto(app_url + ZIGZAG)
    page.wait_for_function("() => (" + SIGN_CHANGES + ")('paths') !== null")
    formula = page.get_by_role("textbox", name="f(x, y) =")
    formula.fill("x**2 +* y")
    formula.press("Enter")
    page.get_by_text("Cannot run this comparison").wait_for()
    page.get_by_text("last comparison that ran").wait_for()
    shows_every_flip(page)
    assert page.evaluate(CHART_KINDS)[0] == "contour"

    # The other case: an lr of -1, which torch refuses.
    formula.fill("x**2+10*y**2")
    formula.press("Enter")
    page.wait_for_function("() => !document.body.innerText.includes('Cannot run this')")
    lr = page.get_by_label("lr", exact=True).first
    lr.fill("-1")
    lr.press("Enter")
    page.get_by_text("Invalid lr value: -1").wait_for()
    page.get_by_text("last comparison that ran").wait_for()
    shows_every_flip(page)


def test_a_click_on_the_contour_moves_the_start(page, app_url):
    page.goto(app_url)
    wait_for_paths(page, DEFAULT_PATHS)
    plot = page.locator(".js-plotly-plot").first.locator(".nsewdrag").first
    box = plot.bounding_box()
    # Rosenbrock's bounds are x in [-2, 2], y in [-1, 3]: aim at about (1, 0).
    page.mouse.click(box["x"] + box["width"] * 0.75, box["y"] + box["height"] * 0.75)
    page.wait_for_function("() => !location.search.includes('start=-1.2')")
    page.wait_for_function(
        "() => document.querySelector('input[aria-label=\"start x\"]').value !== '-1.2'"
    )
    x = float(page.get_by_label("start x", exact=True).input_value())
    y = float(page.get_by_label("start y", exact=True).input_value())
    assert abs(x - 1.0) < 0.1 and abs(y - 0.0) < 0.1
    # Every contour on the page (while the new run draws, a live one sits above the
    # old) starts Adam's path at the clicked point.
    starts = (
        "() => [...document.querySelectorAll('.js-plotly-plot')]"
        ".filter(gd => (gd._fullData || []).some(t => t.type === 'contour'))"
        ".map(gd => { const p = gd._fullData.find(t => t.name === 'Adam (lr=0.1)'"
        " && t.mode !== 'markers'); return p ? [p.x[0], p.y[0]] : null; })"
        ".filter(p => p)"
    )
    page.wait_for_function(
        f"() => {{ const s = ({starts})(); return s.length === 1 && s[0][0] === {x}; }}"
    )
    assert page.evaluate(starts) == [[x, y]]
