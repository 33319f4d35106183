"""The Studies page in a real browser against a real server: a tiny study opened from a
share link runs on the server's own local Ray and its charts fill in as trials finish.

What is drawn is read from plotly.js's own resolved traces (``gd._fullData``).
"""

from __future__ import annotations

import os
from urllib.parse import urlencode

import pytest

from optlab.links.study import study_to_params
from optlab.study.config import StudyConfig
from optlab.study.space import Dimension
from tests.browser.test_cnn import no_exception, server_env, sidebar
from tests.support.resources import ARTIFACTS
from tests.support.server import serve_app
from tests.support.training import tiny_train_config

pytestmark = pytest.mark.browser

#: Each chart's title and its traces' names and point counts.
CHARTS = """() => [...document.querySelectorAll('.js-plotly-plot')].filter(g => g._fullData)
  .map(g => ({title: (g._fullLayout.title || {}).text || '',
              traces: g._fullData.map(t => ({name: t.name, type: t.type,
                                             n: (t.y || []).length}))}))"""

STUDY = StudyConfig(
    tiny_train_config("sgd:momentum=0.9", "adam", train_limit=64, test_limit=32, batch_size=16),
    (Dimension("lr", 1e-3, 0.3, "log"),),
    trials=3,
    seeds=1,
)


def test_a_study_from_a_share_link_runs_on_ray_and_draws_the_fair_answer(browser, tmp_path):
    env = server_env(tmp_path / "cache", OPTLAB_RUNS_DIR=str(tmp_path / "runs"))
    query = urlencode(study_to_params(STUDY, "synthetic"), doseq=True)
    with serve_app(tmp_path / "server.log", env=env) as url:
        context = browser.new_context(viewport={"width": 1024, "height": 768})
        try:
            tab = context.new_page()
            tab.set_default_timeout(60_000)
            tab.goto(url)  # a fresh server's first deep link would 404
            tab.get_by_role("heading", name="Surface Playground").wait_for()
            tab.goto(f"{url}/studies?{query}&view=presenter")
            tab.get_by_role("heading", name="Tuning studies").wait_for()
            tab.get_by_text("6 trials (2 optimizers x 3 points x 1 seed)").wait_for()
            no_exception(tab)
            # Presenter view starts with the sidebar folded away: open it as a presenter does.
            tab.get_by_test_id("stExpandSidebarButton").click()
            sidebar(tab).get_by_role("button", name="Start").click()
            tab.get_by_test_id("stSidebarCollapseButton").click()
            # Ray starts with the study; the charts fill in as points finish.
            tab.get_by_role("tab", name="Expected best vs trials").wait_for(timeout=120_000)
            tab.get_by_text("All 6 trials done on Ray").wait_for(timeout=180_000)
            expected = f"({CHARTS})().filter(c => c.title.includes('Expected best'))"
            tab.wait_for_function(
                f"() => {{ const c = {expected}; return c.length === 1 && "
                "c[0].traces.every(t => t.n === 3); }"
            )
            (best,) = tab.evaluate(f"() => {expected}")
            assert [(t["name"], t["n"]) for t in best["traces"]] == [("SGD", 3), ("Adam", 3)]
            no_exception(tab)
            tab.get_by_role("tab", name="Tuning curves").click()
            tab.wait_for_function(
                f"() => ({CHARTS})().filter(c => c.title.includes('against lr')).length === 2"
            )
            tuning = [c for c in tab.evaluate(CHARTS) if "against lr" in c["title"]]
            for chart in tuning:
                means = [t for t in chart["traces"] if t["name"] == "point (mean over seeds)"]
                assert means and means[0]["n"] == 3
            ARTIFACTS.mkdir(exist_ok=True)
            tab.screenshot(path=str(ARTIFACTS / "studies-presenter.png"), full_page=True)
            if target := os.environ.get("OPTLAB_STUDIES_SCREENSHOT"):
                tab.screenshot(path=target, full_page=True)
            race = tab.get_by_role("link", name="Race the best configs in the CNN lab")
            assert "/cnn-lab?" in race.get_attribute("href")
        finally:
            context.close()
