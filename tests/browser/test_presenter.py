"""Presenter view on a 1024x768 projector, page by page, read from the DOM.

Every chart's fonts are at least 18 px and its legend sits beside or under the
plot; the playground's contour is at least 600 px wide; nothing is cut or
scrolls sideways (tables, update rules, the 3-D view); the replay's play and
pause buttons do not overlap its slider. Presenter view lasts through every
rerun of a fresh server's first session, and its toggle turns it off and on.
"""

from __future__ import annotations

import pytest

from tests.support.resources import ARTIFACTS
from tests.support.server import open_inspector, serve_app

PROJECTOR = {"width": 1024, "height": 768}
MIN_FONT = 18

#: Per visible chart: its kind, smallest font, legend placement and plot width.
CHARTS = """() => [...document.querySelectorAll('.js-plotly-plot')]
  .filter(gd => gd._fullLayout && gd.getBoundingClientRect().width > 0)
  .map(gd => {
    const L = gd._fullLayout;
    const axes = Object.keys(L).filter(k => /^[xy]axis\\d*$/.test(k)).map(k => L[k])
      .filter(a => a.visible !== false);
    const scenes = Object.keys(L).filter(k => /^scene\\d*$/.test(k)).map(k => L[k]);
    const sceneAxes = scenes.flatMap(s => [s.xaxis, s.yaxis, s.zaxis]);
    const fonts = [L.font.size, ...axes.map(a => a.tickfont.size),
                   ...sceneAxes.map(a => a.tickfont.size)];
    axes.concat(sceneAxes).forEach(a => { if (a.title?.text) fonts.push(a.title.font.size); });
    if (L.title && L.title.text) fonts.push(L.title.font.size);
    const legend = L.showlegend ? {x: L.legend.x, y: L.legend.y, yanchor: L.legend.yanchor,
      xanchor: L.legend.xanchor, font: L.legend.font.size} : null;
    if (legend) fonts.push(legend.font);
    const box = gd.getBoundingClientRect();
    return {
      kind: gd._fullData.some(t => t.type === 'contour') ? 'contour'
          : gd._fullData.some(t => t.type === 'surface') ? '3d'
          : gd._fullData.some(t => t.type === 'heatmap') ? 'heatmap' : 'curves',
      font: Math.min(...fonts), legend, plotWidth: L._size.w, right: box.right,
      // The left margin the server reserved for the y axis, and the one drawn:
      // equal when the reservation held and plotly.js drew the chart once.
      reservedLeft: (gd.layout.margin || {}).l, drawnLeft: L._size.l,
    };
  })"""

#: Everything that could be cut or scroll sideways: the page, tables, KaTeX.
OVERFLOW = """() => {
  const over = el => el.scrollWidth - el.clientWidth;
  return {
    page: document.documentElement.scrollWidth - window.innerWidth,
    tables: [...document.querySelectorAll('[data-testid=stTable]')].map(over),
    // A rule wider than its column scrolls inside its box, or runs past the box.
    katex: [...document.querySelectorAll('.katex-display')].map(k => Math.max(over(k),
      k.querySelector('.katex').getBoundingClientRect().right
        - k.closest('[data-testid=stElementContainer]').getBoundingClientRect().right)),
    rootFont: parseFloat(getComputedStyle(document.documentElement).fontSize),
    sidebar: document.querySelector('[data-testid=stSidebar]')?.dataset.collapsed,
  };
}"""

#: The replay's play/pause buttons and its slider, as page rectangles.
REPLAY_CONTROLS = """() => {
  const gd = [...document.querySelectorAll('.js-plotly-plot')]
    .find(g => g.layout && (g.layout.sliders || []).length);
  if (!gd) return null;
  const rect = el => { const r = el.getBoundingClientRect();
    return {left: r.left, right: r.right, top: r.top, bottom: r.bottom}; };
  return {buttons: [...gd.querySelectorAll('.updatemenu-button')].map(rect),
          slider: rect(gd.querySelector('.slider-container .slider-rail')
                       || gd.querySelector('.slider-container'))};
}"""


@pytest.fixture
def projector(browser):
    """A tab the size of a 1024x768 projector."""
    context = browser.new_context(viewport=PROJECTOR)
    tab = context.new_page()
    tab.set_default_timeout(90_000)
    yield tab
    context.close()


def wait_for_charts(page, count: int) -> list[dict]:
    page.wait_for_function(f"() => ({CHARTS})().length >= {count}")
    page.wait_for_timeout(500)  # let plotly finish laying out
    return page.evaluate(CHARTS)


def assert_legible(charts: list[dict]) -> None:
    for chart in charts:
        assert chart["font"] >= MIN_FONT, chart
        legend = chart["legend"]
        if legend is not None:  # under or beside the plot, never on it
            under = legend["y"] <= 0 and legend["yanchor"] == "top"
            beside = legend["x"] >= 1 and legend["xanchor"] == "left"
            assert under or beside, chart
        assert chart["right"] <= PROJECTOR["width"], chart
        if chart["kind"] != "3d":
            assert chart["drawnLeft"] == chart["reservedLeft"], chart


def assert_nothing_cut(page) -> dict:
    found = page.evaluate(OVERFLOW)
    assert found["page"] <= 0, found
    assert all(o <= 1 for o in found["tables"]), found
    # KaTeX's display box is 2 px wider than its text: a rule that does not fit is
    # tens of pixels over (NAdam's was 14, L-BFGS's 300, at 1024 px).
    assert all(o <= 3 for o in found["katex"]), found
    assert found["rootFont"] >= 20 and found["sidebar"] == "true", found
    return found


def shoot(page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"presenter-{name}.png"), full_page=True)


def overlap(a: dict, b: dict) -> bool:
    return (
        a["left"] < b["right"]
        and b["left"] < a["right"]
        and (a["top"] < b["bottom"] and b["top"] < a["bottom"])
    )


def test_playground_on_a_projector(projector, app_url):
    page = projector
    page.goto(app_url + "/?view=presenter")
    wait_for_charts(page, 3)  # the contour and two curves
    open_inspector(page)
    charts = wait_for_charts(page, 4)  # and the inspector's
    assert_legible(charts)
    contour = next(c for c in charts if c["kind"] == "contour")
    assert contour["plotWidth"] >= 600, contour
    page.get_by_text("Summary").wait_for()
    page.wait_for_function("() => document.querySelectorAll('.katex-display').length >= 3")
    page.wait_for_timeout(500)
    found = assert_nothing_cut(page)
    assert found["tables"] and found["katex"]  # the summary and the inspector's rule
    assert "view=presenter" in page.evaluate("location.search")
    shoot(page, "playground")

    page.get_by_role("tab", name="Replay").click()
    page.wait_for_function(f"() => ({REPLAY_CONTROLS})() !== null")
    page.wait_for_timeout(500)
    controls = page.evaluate(REPLAY_CONTROLS)
    assert controls["buttons"], controls
    assert not any(overlap(b, controls["slider"]) for b in controls["buttons"]), controls
    assert_legible(page.evaluate(CHARTS))
    shoot(page, "replay")

    page.get_by_role("tab", name="3-D").click()
    page.wait_for_function(f"() => ({CHARTS})().some(c => c.kind === '3d')")
    page.wait_for_timeout(500)
    assert_legible(page.evaluate(CHARTS))
    assert_nothing_cut(page)
    shoot(page, "3d")


def test_sweeps_on_a_projector(projector, app_url):
    page = projector
    page.goto(app_url + "/sweeps?view=presenter")
    charts = wait_for_charts(page, 4)  # the heatmap, two slices, the replayed cell
    assert {c["kind"] for c in charts} >= {"heatmap", "contour"}
    assert_legible(charts)
    assert_nothing_cut(page)
    shoot(page, "sweeps")


def test_update_rules_on_a_projector(projector, app_url):
    page = projector
    page.goto(app_url + "/rules?view=presenter")
    page.get_by_role("heading", name="Adafactor").wait_for()
    page.wait_for_function(
        "() => document.querySelectorAll('[data-testid=stTable]').length >= 13"
        " && document.querySelectorAll('.katex-display').length >= 13"
    )
    page.wait_for_timeout(1000)  # KaTeX typesets after the markdown lands
    found = assert_nothing_cut(page)
    assert len(found["katex"]) >= 13 and len(found["tables"]) >= 13  # a rule and table each
    shoot(page, "rules")


def test_cnn_lab_on_a_projector(projector, app_url):
    page = projector
    page.goto(app_url + "/cnn-lab?view=presenter")
    page.get_by_role("heading", name="CNN lab").wait_for()
    page.locator("[data-testid=stSidebar]").wait_for(state="attached")
    page.wait_for_timeout(1000)
    assert_nothing_cut(page)
    assert_legible(page.evaluate(CHARTS))
    shoot(page, "cnn")


#: The root font size, and whether the sidebar's presenter toggle is on.
VIEW_SHOWN = """() => ({
  rootFont: parseFloat(getComputedStyle(document.documentElement).fontSize),
  toggle: document.querySelector('.st-key-presenter_toggle input')?.checked ?? null,
})"""


def wait_for_view(page, on: bool) -> None:
    """Waits until the page shows presenter view ``on`` (20 px root font) or off (16 px)."""
    font = 20 if on else 16
    page.wait_for_function(f"() => ({VIEW_SHOWN})().rootFont === {font}")


def test_presenter_view_survives_a_rerun_and_follows_its_toggle(projector, tmp_path):
    # A server of its own: only a process's first run is Streamlit's pages/-folder
    # mode, which drew the toggle under another widget id than every later run, so
    # the view held by the toggle was lost on the session's first rerun.
    with serve_app(tmp_path / "server.log") as url:
        page = projector
        page.goto(url + "/rules?view=presenter")
        page.get_by_role("heading", name="Adafactor").wait_for()
        wait_for_view(page, on=True)
        # Streamlit's rerun shortcut: the same full rerun as an expander opening.
        # A fresh process's first run at a page's path also says "Page not found"
        # (the pages/-folder mode knows no /rules) while st.navigation draws the page.
        dialog = page.get_by_role("dialog")
        if dialog.count():
            page.keyboard.press("Escape")
            dialog.wait_for(state="detached")
        page.get_by_role("heading", name="Adafactor").click()
        page.keyboard.press("r")
        page.wait_for_timeout(2000)  # the rerun's delta arrives well within this
        assert page.evaluate(VIEW_SHOWN)["rootFont"] == 20
        assert "view=presenter" in page.evaluate("location.search")

        page.get_by_test_id("stExpandSidebarButton").click()
        toggle = page.locator(".st-key-presenter_toggle label")
        toggle.wait_for()
        assert page.evaluate(VIEW_SHOWN)["toggle"] is True
        toggle.click()
        wait_for_view(page, on=False)
        page.wait_for_function("() => !location.search.includes('view=presenter')")
        toggle.click()
        wait_for_view(page, on=True)
        page.wait_for_function("() => location.search.includes('view=presenter')")
        assert page.evaluate(VIEW_SHOWN)["toggle"] is True
