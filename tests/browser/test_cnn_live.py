"""What only a browser shows of a live lr change: the chart's legend, redrawn by the polling
fragment while the job trains, names the new lr.

One server with an empty cache (the synthetic shapes); the legend is read from
plotly.js's own resolved traces (``gd._fullData``), not from pixels.
"""

from __future__ import annotations

import re

import pytest

from tests.browser.test_cnn import cnn_lab, no_exception, server_env, sidebar, tiny_run
from tests.support.resources import ARTIFACTS
from tests.support.server import serve_app

pytestmark = pytest.mark.browser

#: The names in the live chart's legend, as plotly drew it.
LEGEND = """() => {
  const gd = [...document.querySelectorAll('.js-plotly-plot')].find(g =>
    g.layout && (g.layout.annotations || []).some(a => a.text === 'Training loss (smoothed)'));
  if (!gd || !gd._fullData) return null;
  return gd._fullData.filter(t => t.showlegend).map(t => t.name);
}"""


def test_the_legend_names_the_lr_a_live_change_set(browser, tmp_path):
    with (
        serve_app(tmp_path / "server.log", env=server_env(tmp_path / "cache")) as url,
        cnn_lab(browser, url) as tab,
    ):
        tiny_run(tab, steps=2000)
        sidebar(tab).get_by_role("button", name="Start").click()
        tab.wait_for_function(f"() => ({LEGEND})() !== null && ({LEGEND})().length === 2")
        assert tab.evaluate(LEGEND) == ["SGD (lr=0.01, momentum=0.9)", "Adam"]

        tab.get_by_text("Change a running optimizer").click()
        value = tab.get_by_label("Value", exact=True)
        value.fill("0.05")
        value.press("Enter")
        tab.get_by_role("button", name="Apply at the next step").click()
        applied = tab.get_by_text(re.compile(r"Applied before step [\d,]+: SGD"))
        applied.wait_for()
        step = int(re.search(r"step ([\d,]+)", applied.inner_text())[1].replace(",", ""))
        want = f"SGD (lr=0.05 from step {step}, momentum=0.9)"
        # The fragment redraws the chart on its next poll, with no click from us.
        tab.wait_for_function(
            f"(want) => JSON.stringify(({LEGEND})()) === JSON.stringify(want)",
            arg=[want, "Adam"],
            timeout=20_000,
        )
        no_exception(tab)
        ARTIFACTS.mkdir(exist_ok=True)
        tab.wait_for_timeout(1000)  # let plotly finish its last paint
        tab.screenshot(path=str(ARTIFACTS / "cnn_lab_live_change.png"), full_page=True)
        sidebar(tab).get_by_role("button", name="Stop").click()
        tab.get_by_text(re.compile(r"Stopped at step [\d,]+")).wait_for()
