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

# One grid cell of that plot: its index, values, page pixel (from plotly.js's axes), and the
# borders plotly.js drew it with (``calcdata``'s brick edges, n + 1 per axis) in page pixels.
CELL = f"""([name, ix, iy]) => {{
  const g = ({PLOT_WITH})(name);
  const bricks = g.calcdata[0][0], cells = g._fullData.find(t => t.name === name);
  const nx = bricks.x.length - 1, ny = bricks.y.length - 1, i = iy * nx + ix;
  const xa = g._fullLayout.xaxis, ya = g._fullLayout.yaxis, box = g.getBoundingClientRect();
  const px = v => box.left + xa._offset + xa.c2p(v), py = v => box.top + ya._offset + ya.c2p(v);
  const xs = Array.from(cells.x).slice(0, nx);
  const ys = Array.from(cells.y).filter((_, k) => k % nx === 0);
  const left = [px(bricks.x[ix]), px(bricks.x[ix + 1])].sort((a, b) => a - b);
  const top = [py(bricks.y[iy]), py(bricks.y[iy + 1])].sort((a, b) => a - b);
  return {{index: cells.customdata[i], x: cells.x[i], y: cells.y[i], nx, ny, xs, ys,
           px: px(cells.x[i]), py: py(cells.y[i]),
           x0: left[0], x1: left[1], y0: top[0], y1: top[1]}};
}}"""

# A single-point trace of the heatmap (the best cell's star, the replayed cell's square).
MARKER = f"""(name) => {{
  const g = ({PLOT_WITH})('cells');
  const t = g && g._fullData.find(t => t.name === name);
  return t ? [t.x[0], t.y[0]] : null;
}}"""

# The replay chart (a contour) and its path: the one trace drawn as a line.
REPLAY_PATH = """() => {
  const g = [...document.querySelectorAll('.js-plotly-plot')]
    .find(g => g._fullData && g._fullData.length && g._fullData[0].type === 'contour');
  const p = g && g._fullData.find(t => (t.mode || '').startsWith('lines'));
  return p ? {name: p.name, x: Array.from(p.x), y: Array.from(p.y)} : null;
}"""

REPLAY_TITLE = """() => {
  const md = [...document.querySelectorAll('[data-testid=stMarkdown]')]
    .find(m => m.innerText.includes('replayed with torch.optim'));
  return md ? md.innerText.trim() : null;
}"""

NUMBER = r"(-?[\d.]+(?:e[-+]?\d+)?)"


@contextmanager
def sweeps_page(browser, url: str, height: int = 1000, width: int = 1400):
    """A fresh tab on the Sweeps page, reached from / (a fresh server's first deep link 404s)."""
    context = browser.new_context(viewport={"width": width, "height": height})
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


# The text of each tick label of a plot's x axis, as drawn.
X_TICKS = f"""(name) => [...({PLOT_WITH})(name).querySelectorAll('.xtick text')]
  .map(t => t.textContent)"""


def click_at(tab, x: int, y: int) -> None:
    """A user's click at page pixel (x, y): the pointer arrives, then presses."""
    tab.mouse.move(x, y)
    tab.wait_for_timeout(200)  # plotly.js picks the hovered point on mouse move
    tab.mouse.click(x, y)


def aim_points(cell: dict, corners: bool) -> list[tuple[int, int]]:
    """Whole pixels 3 px inside each side of a drawn cell (at its middle), or with
    ``corners``, 3 px inside each of its corners."""
    left, right = math.floor(cell["x0"]) + 3, math.ceil(cell["x1"]) - 4
    top, bottom = math.floor(cell["y0"]) + 3, math.ceil(cell["y1"]) - 4
    if corners:
        return [(left, top), (right, top), (left, bottom), (right, bottom)]
    mx, my = round(cell["px"]), round(cell["py"])
    return [(left, my), (right, my), (mx, top), (mx, bottom)]


def check_clicks_select_their_cells(tab, cells: list[tuple[int, int]], corners: bool) -> None:
    """Clicks near every side (or corner) of each cell, taking turns between cells (so
    each click moves the selection), and reads which cell the page then replays."""
    for k in range(4):
        for ix, iy in cells:
            settle(tab)
            cell = tab.evaluate(CELL, ["cells", ix, iy])
            assert cell["x1"] - cell["x0"] >= 6 and cell["y1"] - cell["y0"] >= 6, cell
            x, y = aim_points(cell, corners)[k]
            assert cell["x0"] < x < x + 1 < cell["x1"] and cell["y0"] < y < y + 1 < cell["y1"]
            click_at(tab, x, y)
            want = [cell["x"], cell["y"]]
            try:
                tab.wait_for_function(
                    f"(want) => JSON.stringify(({MARKER})('replayed')) === JSON.stringify(want)",
                    arg=want,
                    timeout=20_000,
                )
            except Exception:
                got = tab.evaluate(MARKER, "replayed")
                raise AssertionError(
                    f"a click at ({x}, {y}) in cell {(ix, iy)} {want} replayed {got}"
                ) from None
            settle(tab)  # the title below the heatmap is drawn later in the same run
            values = re.fullmatch(
                rf"Selected cell: lr = {NUMBER}, momentum = {NUMBER}, replayed with torch\.optim",
                tab.evaluate(REPLAY_TITLE),
            )
            assert values and float(values[1]) == pytest.approx(cell["x"], rel=1e-3)


# The cells plotly.js has under the pointer now (what a click there would select).
HOVERED = f"""(name) => {{
  const h = ({PLOT_WITH})(name)._hoverdata;
  return h ? h.filter(p => p.fullData.name === name).map(p => p.customdata) : null;
}}"""


def check_every_pixel_hovers_its_cell(tab, ix: int, iy: int, count: int) -> None:
    """Moves the pointer over every whole pixel inside ``count`` cells from (ix, iy),
    along the row and along the column, and reads the cell plotly.js picks."""
    settle(tab)
    for step in ((1, 0), (0, 1)):
        for n in range(count):
            cell = tab.evaluate(CELL, ["cells", ix + n * step[0], iy + n * step[1]])
            if step == (1, 0):
                y = round(cell["py"])
                points = [(x, y) for x in range(math.ceil(cell["x0"]), math.floor(cell["x1"]))]
            else:
                x = round(cell["px"])
                points = [(x, y) for y in range(math.ceil(cell["y0"]), math.floor(cell["y1"]))]
            assert points, cell
            for x, y in points:
                tab.mouse.move(x, y)
                try:
                    tab.wait_for_function(
                        f"(want) => ({HOVERED})('cells')?.join() === String(want)",
                        arg=cell["index"],
                        timeout=3_000,
                    )
                except Exception:
                    got = tab.evaluate(HOVERED, "cells")
                    raise AssertionError(
                        f"pixel ({x}, {y}) of cell {cell['index']} "
                        f"[{cell['x0']:.2f}, {cell['x1']:.2f}] x [{cell['y0']:.2f}, "
                        f"{cell['y1']:.2f}] picks {got}"
                    ) from None


def set_grid(tab, nx: int, ny: int) -> None:
    """Sets the heatmap's points per axis in the sidebar; waits for the new grid."""
    for k, n in enumerate((nx, ny)):
        settle(tab)
        box = sidebar(tab).get_by_label("points").nth(k)
        box.fill(str(n))
        box.press("Enter")
    tab.wait_for_function(
        f"([nx, ny]) => {{ const b = ({PLOT_WITH})('cells').calcdata[0][0];"
        " return b.x.length === nx + 1 && b.y.length === ny + 1; }",
        arg=[nx, ny],
    )
    settle(tab)


def test_a_click_anywhere_in_a_cell_selects_that_cell_at_1024_px(browser, tmp_path):
    with (
        serve_app(tmp_path / "server.log") as url,
        sweeps_page(browser, url, height=768, width=1024) as tab,
    ):
        tab.wait_for_function(f"() => !!({PLOT_WITH})('cells') && !!({REPLAY_PATH})()")
        # The log axis is labelled 1e−5 ... 0.01, never Plotly's SI "10µ".
        assert tab.evaluate(X_TICKS, "cells") == ["1e−5", "1e−4", "1e−3", "0.01"]
        tab.locator(".js-plotly-plot").first.scroll_into_view_if_needed()
        # The default 50 x 50 grid (cells about 7 px): every pixel, then real clicks.
        grid = tab.evaluate(CELL, ["cells", 0, 0])
        assert (grid["nx"], grid["ny"]) == (50, 50)
        check_every_pixel_hovers_its_cell(tab, 20, 20, 3)
        check_clicks_select_their_cells(tab, [(2, 3), (24, 31), (47, 46)], corners=False)
        # 80 x 80: cells under 6 px, where plotly.js's 3 px marker radius tied with the
        # neighbour's and picked it.
        set_grid(tab, 80, 80)
        check_every_pixel_hovers_its_cell(tab, 40, 40, 4)
        # 8 x 6: cells of about 50 px, whose corners lie beyond plotly's 20 px hover reach,
        # and whose log-axis borders plotly would put off-centre.
        set_grid(tab, 8, 6)
        check_clicks_select_their_cells(tab, [(0, 0), (7, 5), (3, 2)], corners=True)
        no_exception(tab)


# The race table's cells: text, whether the text overflows its cell, and how many
# lines it takes; and whether the table is wider than the page gives it.
RACE_TABLE = """() => {
  const box = document.querySelector('[data-testid=stTable]');
  const table = box && box.querySelector('table');
  if (!table) return null;
  const lines = el => { const r = document.createRange();
    r.selectNodeContents(el.querySelector('p') || el);  // the text's own line boxes
    return new Set([...r.getClientRects()].map(q => Math.round(q.bottom))).size; };
  return {
    overflow: table.getBoundingClientRect().right - box.getBoundingClientRect().right,
    boxScroll: box.scrollWidth - box.clientWidth,
    header: [...table.querySelectorAll('thead th')].map(th => th.innerText.trim()),
    rows: [...table.querySelectorAll('tbody tr')].map(tr => [...tr.querySelectorAll('td')]
      .map(td => ({text: td.innerText.trim(), cut: td.scrollWidth - td.clientWidth,
                   lines: lines(td)}))),
  };
}"""


def test_the_race_table_shows_every_cell_in_full_at_1024_px(browser, tmp_path):
    with (
        serve_app(tmp_path / "server.log") as url,
        sweeps_page(browser, url, height=768, width=1024) as tab,
    ):
        sidebar(tab).get_by_text("Fair comparison", exact=True).click()
        tab.get_by_role("heading", name="Fair comparison").wait_for()
        tab.wait_for_function(f"() => !!({RACE_TABLE})()", timeout=90_000)
        settle(tab)
        table = tab.evaluate(RACE_TABLE)
        assert table["header"] == [
            "optimizer",
            "tuned lr",
            "final loss",
            "best loss",
            "steps to f* + 0.001",
            "ends at (x, y)",
            "status",
        ]
        assert len(table["rows"]) == 3  # SGD + momentum, Adam, RMSprop by default
        assert table["overflow"] <= 0 and table["boxScroll"] <= 0, table
        for row in table["rows"]:
            for cell, name in zip(row, table["header"], strict=True):
                assert cell["cut"] <= 0, (name, cell)
                assert cell["text"] not in ("", "None", "nan"), (name, cell)
                assert not re.search(r"\d{10}", cell["text"]), (name, cell)
                if name in ("tuned lr", "final loss", "best loss"):
                    assert cell["lines"] == 1, (name, cell)  # never split at e-05's minus
                    float(cell["text"])  # a number as typed, e.g. 1.591e-05
        # The tuning curves' lr axis reads 1e−5 ... 1, never 10µ.
        ticks = tab.evaluate(
            """() => [...[...document.querySelectorAll('.js-plotly-plot')]
              .find(g => g._fullLayout && /Tuning/.test(g._fullLayout.title.text))
              .querySelectorAll('.xtick text')].map(t => t.textContent)"""
        )
        assert ticks == ["1e−5", "1e−4", "1e−3", "0.01", "0.1", "1"]
        no_exception(tab)
