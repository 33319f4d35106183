"""The Sweeps page end to end in headless Chromium against its own `streamlit run` server.

What only a browser shows: a click on a heatmap cell (an invisible plotly
marker carrying the cell's index) reaches the page as a selection, and the
page replays that cell. The charts are read through plotly.js's own graph
objects (``gd._fullData``, ``gd._fullLayout``), and clicks land at the pixel
plotly.js computes for a cell's centre. The default grid (50 x 50 cells of
300 steps, 60 x 60 starts for basins) sweeps in well under a second.
"""

from __future__ import annotations

import math
import re
from contextlib import contextmanager

import pytest
from playwright.sync_api import expect

from tests.support.resources import ARTIFACTS
from tests.support.server import serve_app

pytestmark = pytest.mark.browser

# The first plot with a trace named ``name`` (the heatmap: "cells"; the basin map: "starts").
PLOT_WITH = """(name) => [...document.querySelectorAll('.js-plotly-plot')]
  .find(g => g._fullData && g._fullLayout && g._fullData.some(t => t.name === name))"""

# One grid cell of that plot: its index, values, and page pixel (from plotly.js's axes).
CELL = f"""([name, ix, iy]) => {{
  const g = ({PLOT_WITH})(name);
  const grid = g._fullData[0], cells = g._fullData.find(t => t.name === name);
  const nx = grid.x.length, ny = grid.y.length, i = iy * nx + ix;
  const xa = g._fullLayout.xaxis, ya = g._fullLayout.yaxis, box = g.getBoundingClientRect();
  return {{index: cells.customdata[i], x: cells.x[i], y: cells.y[i], nx, ny,
           xs: Array.from(grid.x), ys: Array.from(grid.y),
           px: box.left + xa._offset + xa.c2p(cells.x[i]),
           py: box.top + ya._offset + ya.c2p(cells.y[i])}};
}}"""

# A single-point trace of the heatmap (the best cell's star, the replayed cell's square).
MARKER = f"""(name) => {{
  const g = ({PLOT_WITH})('cells');
  const t = g && g._fullData.find(t => t.name === name);
  return t ? [t.x[0], t.y[0]] : null;
}}"""

# The replay chart (a contour) and its path: the one lines+markers trace.
REPLAY_PATH = """() => {
  const g = [...document.querySelectorAll('.js-plotly-plot')]
    .find(g => g._fullData && g._fullData.length && g._fullData[0].type === 'contour');
  const p = g && g._fullData.find(t => t.mode === 'lines+markers');
  return p ? {name: p.name, x: Array.from(p.x), y: Array.from(p.y)} : null;
}"""

REPLAY_TITLE = """() => {
  const md = [...document.querySelectorAll('[data-testid=stMarkdown]')]
    .find(m => m.innerText.includes('replayed with torch.optim'));
  return md ? md.innerText.trim() : null;
}"""

NUMBER = r"(-?[\d.]+(?:e[-+]?\d+)?)"


@contextmanager
def sweeps_page(browser, url: str, height: int = 1000):
    """A fresh tab on the Sweeps page, reached from / (a fresh server's first deep link 404s)."""
    context = browser.new_context(viewport={"width": 1400, "height": height})
    try:
        tab = context.new_page()
        tab.set_default_timeout(60_000)
        tab.goto(url)
        tab.get_by_role("heading", name="Surface Playground").wait_for()
        tab.get_by_test_id("stSidebarNav").get_by_text("Sweeps").click()
        tab.get_by_role("heading", name="Sweep", exact=True).wait_for()
        assert tab.url.split("?")[0].endswith("/sweeps")
        yield tab
    finally:
        context.close()


def sidebar(tab):
    return tab.get_by_test_id("stSidebar")


def no_exception(tab) -> None:
    assert tab.locator("[data-testid=stException]").count() == 0, tab.locator(
        "[data-testid=stException]"
    ).first.inner_text()


def settle(tab) -> None:
    """Waits until no script run is in progress (the status widget is gone)."""
    tab.wait_for_timeout(300)
    tab.wait_for_function(
        "() => !document.querySelector('[data-testid=stStatusWidget]')", timeout=30_000
    )


def click_cell(tab, name: str, ix: int, iy: int) -> dict:
    """Clicks cell (ix, iy) of the plot holding trace ``name`` as a user would."""
    settle(tab)  # nothing above the plot moves any more
    cell = tab.evaluate(CELL, [name, ix, iy])
    assert cell["index"] == iy * cell["nx"] + ix
    tab.mouse.move(cell["px"], cell["py"])
    tab.wait_for_timeout(200)  # plotly.js picks the hovered point on mouse move
    tab.mouse.click(cell["px"], cell["py"])
    return cell


def half_step(values: list[float], i: int, log: bool) -> float:
    """Half the grid spacing next to ``values[i]`` (in log10 units on a log axis)."""
    f = math.log10 if log else float
    j = i + 1 if i + 1 < len(values) else i - 1
    return abs(f(values[j]) - f(values[i])) / 2


def test_clicking_a_heatmap_cell_replays_that_cell(browser, tmp_path):
    # Tall enough for the screenshot to show the heatmap and the replay below it.
    with serve_app(tmp_path / "server.log") as url, sweeps_page(browser, url, 1500) as tab:
        tab.wait_for_function(f"() => !!({PLOT_WITH})('cells') && !!({REPLAY_PATH})()")
        assert tab.evaluate(REPLAY_TITLE).startswith("Best (lowest final loss) cell: ")
        before = tab.evaluate(REPLAY_PATH)
        best = tab.evaluate(MARKER, "best final loss")
        grid = tab.evaluate(CELL, ["cells", 0, 0])
        assert (grid["nx"], grid["ny"]) == (50, 50)
        bx = min(range(grid["nx"]), key=lambda i: abs(grid["xs"][i] - best[0]))
        by = min(range(grid["ny"]), key=lambda i: abs(grid["ys"][i] - best[1]))
        # A converging cell near the small-lr, small-momentum corner: far from the best one.
        ix, iy = grid["nx"] // 6, grid["ny"] // 5
        assert abs(ix - bx) + abs(iy - by) > grid["nx"] // 2, (bx, by)

        cell = click_cell(tab, "cells", ix, iy)
        tab.wait_for_function(
            f"() => (({REPLAY_TITLE})() || '').startsWith('Selected cell')", timeout=20_000
        )
        title = tab.evaluate(REPLAY_TITLE)
        found = re.fullmatch(
            rf"Selected cell: lr = {NUMBER}, momentum = {NUMBER}, replayed with torch\.optim",
            title,
        )
        assert found, title
        lr, momentum = float(found[1]), float(found[2])
        assert abs(math.log10(lr) - math.log10(cell["x"])) <= half_step(grid["xs"], ix, True)
        assert abs(momentum - cell["y"]) <= half_step(grid["ys"], iy, False)
        # The heatmap is redrawn with the clicked cell marked, and the replay follows it.
        tab.wait_for_function(f"() => !!({MARKER})('replayed')", timeout=20_000)
        assert tab.evaluate(MARKER, "replayed") == [cell["x"], cell["y"]]
        tab.wait_for_function(
            f"(old) => {{ const p = ({REPLAY_PATH})(); return p && p.name !== old; }}",
            arg=before["name"],
        )
        after = tab.evaluate(REPLAY_PATH)
        assert after["name"].startswith("SGD (lr=")
        assert (after["x"], after["y"]) != (before["x"], before["y"])
        assert after["x"][0] == before["x"][0] and after["y"][0] == before["y"][0]  # same start
        no_exception(tab)
        ARTIFACTS.mkdir(exist_ok=True)
        tab.wait_for_timeout(1000)  # let plotly finish its last paint
        tab.screenshot(path=str(ARTIFACTS / "sweep_page.png"))


def test_clicking_a_start_on_the_basin_map_replays_from_there(browser, tmp_path):
    with serve_app(tmp_path / "server.log") as url, sweeps_page(browser, url) as tab:
        tab.wait_for_function(f"() => !!({PLOT_WITH})('cells')")
        sidebar(tab).get_by_text("Basins map", exact=True).click()
        tab.get_by_role("heading", name="Basins map").wait_for()
        tab.wait_for_function(f"() => !!({PLOT_WITH})('starts')")
        # Rosenbrock has one minimum; the page moved to Himmelblau and its four.
        expect(sidebar(tab).get_by_label("Surface", exact=True)).to_have_value("Himmelblau")
        legend = tab.evaluate(
            f"() => ({PLOT_WITH})('starts')._fullData.map(t => t.name)"
            ".filter(n => n && n.startsWith('minimum '))"
        )
        assert len(legend) >= 3, legend
        assert tab.evaluate(REPLAY_TITLE) is None  # nothing replayed before a click

        grid = tab.evaluate(CELL, ["starts", 0, 0])
        ix, iy = grid["nx"] // 4, grid["ny"] // 3
        cell = click_cell(tab, "starts", ix, iy)
        tab.wait_for_function(
            f"() => (({REPLAY_TITLE})() || '').startsWith('Start (')", timeout=20_000
        )
        title = tab.evaluate(REPLAY_TITLE)
        found = re.fullmatch(rf"Start \({NUMBER}, {NUMBER}\), replayed with torch\.optim", title)
        assert found, title
        assert abs(float(found[1]) - cell["x"]) <= half_step(grid["xs"], ix, False)
        assert abs(float(found[2]) - cell["y"]) <= half_step(grid["ys"], iy, False)
        tab.wait_for_function(f"() => !!({REPLAY_PATH})()")
        path = tab.evaluate(REPLAY_PATH)
        # The replay starts at the clicked start (the title rounds it to 3 digits).
        assert math.isclose(path["x"][0], cell["x"], abs_tol=1e-9)
        assert math.isclose(path["y"][0], cell["y"], abs_tol=1e-9)
        no_exception(tab)
