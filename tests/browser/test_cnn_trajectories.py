"""The CNN lab's Trajectories view in a real browser: while a job trains, each
optimizer's path through the weights is drawn on a plane of the loss landscape.

One server with an empty cache (the synthetic shapes); what is drawn is read from
plotly.js's own resolved traces (``gd._fullData``), not from pixels.
"""

from __future__ import annotations

import re

import pytest

from tests.browser.test_cnn import cnn_lab, no_exception, server_env, sidebar, tiny_run
from tests.support.resources import ARTIFACTS
from tests.support.server import serve_app

pytestmark = pytest.mark.browser

#: The landscape chart: its contour's size and each path's snapshot count and ends.
LANDSCAPE = """() => {
  const gd = [...document.querySelectorAll('.js-plotly-plot')].find(g =>
    g._fullData && g._fullData.some(t => t.name === 'θ₀ (shared start)'));
  if (!gd) return null;
  const contour = gd._fullData.find(t => t.type === 'contour');
  const paths = gd._fullData.filter(t => t.mode === 'lines+markers');
  return {
    grid: contour ? [contour.z.length, contour.z[0].length] : null,
    a: contour ? [contour.x[0], contour.x[contour.x.length - 1]] : null,
    b: contour ? [contour.y[0], contour.y[contour.y.length - 1]] : null,
    paths: paths.map(t => ({name: t.name, n: t.x.length, x: Array.from(t.x),
                            y: Array.from(t.y), steps: t.customdata.map(c => c[0])})),
  };
}"""


def test_paths_are_drawn_on_a_landscape_while_the_job_trains(browser, tmp_path):
    with (
        serve_app(tmp_path / "server.log", env=server_env(tmp_path / "cache")) as url,
        cnn_lab(browser, url) as tab,
    ):
        tiny_run(tab, steps=3000)
        sidebar(tab).get_by_role("button", name="Start").click()
        tab.get_by_role("tab", name="Trajectories").click()
        # The paths appear from the second snapshot on, before any landscape.
        tab.wait_for_function(
            f"() => {{ const s = ({LANDSCAPE})(); return s && s.paths.length === 2; }}",
            timeout=60_000,
        )
        grid = tab.get_by_label("Grid points per axis", exact=True)
        grid.fill("9")
        grid.press("Enter")
        tab.get_by_role("button", name="Compute the landscape").click()
        tab.get_by_text(re.compile(r"Computing the landscape at step [\d,]+")).wait_for()
        tab.wait_for_function(
            f"() => {{ const s = ({LANDSCAPE})(); return s && s.grid && s.grid[0] === 9; }}",
            timeout=120_000,
        )
        drawn = tab.evaluate(LANDSCAPE)
        assert drawn["grid"] == [9, 9]
        assert [p["name"] for p in drawn["paths"]] == ["SGD (lr=0.01, momentum=0.9)", "Adam"]
        for path in drawn["paths"]:
            assert path["steps"][0] == 0 and path["n"] >= 2
            assert path["steps"] == sorted(path["steps"])
            # θ₀ is the plane's origin and every path starts there.
            assert abs(path["x"][0]) < 1e-6 and abs(path["y"][0]) < 1e-6
            # The grid spans every projected point of the landscape's step.
        # The paths keep growing with each poll on the landscape's plane.
        before = max(p["steps"][-1] for p in drawn["paths"])
        tab.wait_for_function(
            f"(before) => ({LANDSCAPE})().paths.every(p => p.steps[p.steps.length - 1] > before)",
            arg=before,
            timeout=60_000,
        )
        no_exception(tab)
        ARTIFACTS.mkdir(exist_ok=True)
        tab.wait_for_timeout(1000)  # let plotly finish its last paint
        tab.screenshot(path=str(ARTIFACTS / "cnn_trajectories.png"), full_page=True)
        sidebar(tab).get_by_role("button", name="Stop").click()
        tab.get_by_text(re.compile(r"Stopped at step [\d,]+")).wait_for()
