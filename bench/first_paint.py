"""First paint: how long after opening the home page its first chart is drawn.

A real ``streamlit run`` server on 127.0.0.1 and Debian's headless Chromium.
Each server is warmed with one full load first (the engine's first backward,
the default comparison computed and cached): the figure is about a warm
server, which is what a class meets after the presenter's own first visit.
Then every load opens a fresh browser context (no cache, no session) and
times, from the navigation's start:

- first chart: the first Plotly chart has drawn its plot (``gd._fullData`` set
  and its SVG on the page);
- settled: every chart of the page is drawn and the script has finished.

``--against DIR`` serves a second checkout (an older commit, say) beside this
one and alternates the loads between the two, so a noisy machine slows both
alike; the report gives each one's median and their ratio. ``--floor`` serves,
beside them, a bare Streamlit page of one title and one three-point chart:
Streamlit's own first paint on this machine, which no page of the app can beat.
``--cached`` keeps one browser context per server, so every load after the
first finds Streamlit's scripts and fonts in the browser's cache (a returning
visitor; a class that opened the app once before).

    python -m bench.first_paint [--loads 7] [--against ../before] [--floor] [--cached]
                                [--viewport 1024x768]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

from playwright.sync_api import Browser, BrowserContext, sync_playwright

from tests.support.server import CHROMIUM, CHROMIUM_ARGS, ROOT, launch_app, stop_app

#: True once the first Plotly chart of the page has drawn (Plotly sets _fullData
#: when it has laid out the traces, and the SVG holds the drawing).
FIRST_CHART = """() => {
  const gd = document.querySelector('.js-plotly-plot');
  return !!(gd && gd._fullData && gd.querySelector('.main-svg'));
}"""
#: True once the script has finished and every chart on the page has drawn.
SETTLED = """() => {
  const running = document.querySelector('[data-testid=stStatusWidget]');
  const charts = [...document.querySelectorAll('.js-plotly-plot')];
  return !running && charts.length > 0 && charts.every(g => g._fullData);
}"""
#: Milliseconds since the navigation started.
SINCE_START = "() => performance.now()"


#: The bare page of ``--floor``: Streamlit's least, with one chart to time.
FLOOR_APP = """import plotly.graph_objects as go
import streamlit as st

st.title("Floor")
st.plotly_chart(go.Figure(go.Scatter(x=[1, 2, 3], y=[1, 3, 2])))
"""


def one_load(
    browser: Browser, url: str, viewport: tuple[int, int], context: BrowserContext | None = None
) -> tuple[float, float, int]:
    """Seconds to the first chart and to a settled page, and the charts drawn; in a
    fresh browser context, or in ``context`` (whose cache earlier loads filled)."""
    width, height = viewport
    own = context is None
    if own:
        context = browser.new_context(viewport={"width": width, "height": height})
    page = context.new_page()
    try:
        page.goto(url, wait_until="commit")
        page.wait_for_function(FIRST_CHART, timeout=120_000, polling=50)
        first = page.evaluate(SINCE_START) / 1000
        page.wait_for_function(SETTLED, timeout=120_000, polling=100)
        settled = page.evaluate(SINCE_START) / 1000
        charts = page.evaluate("() => document.querySelectorAll('.js-plotly-plot').length")
        return first, settled, charts
    finally:
        page.close()
        if own:
            context.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--loads", type=int, default=7, help="timed loads per server (7)")
    parser.add_argument("--against", type=Path, help="a second checkout to serve beside this one")
    parser.add_argument("--floor", action="store_true", help="also time a bare Streamlit page")
    parser.add_argument("--cached", action="store_true", help="keep the browser's cache")
    parser.add_argument("--viewport", default="1440x900", help="browser size (1440x900)")
    args = parser.parse_args(argv)
    viewport = tuple(int(v) for v in args.viewport.split("x"))
    logs = Path(tempfile.mkdtemp(prefix="optlab-first-paint-"))
    roots = {"this tree": ROOT}
    if args.against is not None:
        roots = {f"{args.against}": args.against.resolve(), **roots}
    if args.floor:
        floor = logs / "floor"
        floor.mkdir()
        (floor / "app.py").write_text(FLOOR_APP)
        roots = {"bare Streamlit page (floor)": floor, **roots}
    servers = {}
    try:
        for name, root in roots.items():
            servers[name] = launch_app(logs / f"{len(servers)}.log", root=root)
        times: dict[str, list[tuple[float, float, int]]] = {name: [] for name in roots}
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            width, height = viewport
            contexts = {
                name: browser.new_context(viewport={"width": width, "height": height})
                if args.cached
                else None
                for name in servers
            }
            for name, (_, url) in servers.items():
                one_load(browser, url, viewport, contexts[name])  # warm: engine, cache, first run
            for _ in range(args.loads):
                for name, (_, url) in servers.items():
                    times[name].append(one_load(browser, url, viewport, contexts[name]))
            browser.close()
    finally:
        for i, (proc, _) in enumerate(servers.values()):
            stop_app(proc, logs / f"{i}.log")
    loads = "loads, browser cache kept" if args.cached else "fresh loads"
    print(f"home page at {args.viewport}, warm server, median of {args.loads} {loads}:")
    medians = {}
    for name, rows in times.items():
        first = statistics.median(r[0] for r in rows)
        settled = statistics.median(r[1] for r in rows)
        medians[name] = first
        spread = f"{min(r[0] for r in rows):.2f}-{max(r[0] for r in rows):.2f}"
        print(
            f"  {name:<28} first chart {first:5.2f} s (range {spread})   "
            f"settled {settled:5.2f} s   charts {rows[-1][2]}"
        )
    for name, median in medians.items():
        if name != "this tree":
            print(f"  first chart, this tree / {name}: {medians['this tree'] / median:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
