"""The playground's step inspector in headless Chromium, against its own server.

What only a browser shows: plotly.js draws the inspected step's arrows from
θ_{t-1}, and moving the "Step t" slider with the keyboard or picking another
optimizer redraws them at that step's point; KaTeX renders every symbol (an
unknown macro such as ``\\lamda`` would show as red raw text, not fail). The
arrows are read from plotly.js's own graph object (``gd.layout.annotations``)
and checked against `optlab.surface.inspector.record_steps` run on the same
config; the formulas are read from KaTeX's rendered HTML in the DOM.
"""

from __future__ import annotations

import numpy as np
import pytest

from optlab.links import config_from_params
from optlab.optim.config import OptimizerConfig
from optlab.surface.hessian import hessian_eigs
from optlab.surface.inspector import directions, record_steps
from optlab.surface.trajectory import collect
from tests.support.resources import ARTIFACTS
from tests.support.server import open_inspector, serve_app

pytestmark = pytest.mark.browser

QUERY = "opt=sgd_momentum:lr=0.001&opt=adam:lr=0.1&steps=200"
# The inspector chart: the plot whose title (Streamlit wraps it in <b>) starts with
# "arrows drawn"; its step arrows are the annotations with a start point (ax, ay),
# less the Hessian's two axes (named "λ₁ = … axis", drawn through the point).
INSPECTOR_GD = """[...document.querySelectorAll('.js-plotly-plot')].find(g => g.layout &&
    g.layout.title && String(g.layout.title.text || '').replace(/<[^>]*>/g, '')
      .startsWith('arrows drawn'))"""
ARROWS = f"""() => {{
  const gd = {INSPECTOR_GD};
  if (!gd) return null;
  return (gd.layout.annotations || [])
    .filter(a => a.ax !== undefined && a.ay !== undefined && !String(a.name).endsWith(' axis'))
    .map(a => ({{ax: a.ax, ay: a.ay, x: a.x, y: a.y}}));
}}"""
# The Hessian's axes on the inspector's contour, and the labels with their values.
EIGEN = f"""() => {{
  const gd = {INSPECTOR_GD};
  if (!gd) return null;
  const notes = gd.layout.annotations || [];
  return {{
    axes: notes.filter(a => String(a.name).endsWith(' axis'))
      .map(a => ({{name: a.name, ax: a.ax, ay: a.ay, x: a.x, y: a.y}})),
    labels: notes.filter(a => String(a.name).endsWith(' label')).map(a => a.text),
  }};
}}"""
# The λ_max chart's traces as plotly.js holds them (the plot with a "…: λ_max" trace).
SHARPNESS = """() => {
  const gd = [...document.querySelectorAll('.js-plotly-plot')].find(g => g._fullData &&
    g._fullData.some(t => String(t.name || '').endsWith(': λ_max')));
  if (!gd) return null;
  return gd._fullData.map(t => ({name: t.name, x: Array.from(t.x || []),
                                 y: Array.from(t.y || [])}));
}"""
# True once the λ_max chart marks the inspected step's start at the given step.
MARKED = f"""(step) => {{
  const traces = ({SHARPNESS})();
  return !!traces && traces.some(t => t.name.startsWith('θ') && t.x.length === 1 &&
    t.x[0] === step);
}}"""
# True once every arrow starts at the given point.
ARROWS_FROM = f"""([x, y]) => {{
  const arrows = ({ARROWS})();
  return !!arrows && arrows.length > 0 &&
    arrows.every(a => Math.abs(a.ax - x) < 1e-9 && Math.abs(a.ay - y) < 1e-9);
}}"""


def arrows_at(tab, point: tuple[float, float]) -> list[dict]:
    """Waits until every arrow starts at ``point``; returns the arrows."""
    tab.wait_for_function(ARROWS_FROM, arg=list(point), timeout=30_000)
    return tab.evaluate(ARROWS)


def test_the_step_slider_and_the_optimizer_choice_move_the_arrows(browser, tmp_path):
    cfg = config_from_params({"opt": ["sgd_momentum:lr=0.001", "adam:lr=0.1"], "steps": ["200"]})
    sgd, adam = record_steps(cfg, 0), record_steps(cfg, 1)
    assert len(sgd) == len(adam) == 200  # neither diverges: the slider runs 0..199

    with serve_app(tmp_path / "server.log") as url:
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        try:
            tab = context.new_page()
            tab.set_default_timeout(60_000)
            tab.goto(url)  # a fresh server's first request must be / (see conftest)
            tab.get_by_role("heading", name="Surface Playground").wait_for()
            tab.goto(f"{url}/?{QUERY}")
            open_inspector(tab)
            heading = tab.get_by_role("heading", name="Step inspector")
            heading.scroll_into_view_if_needed()

            # Step 1 of SGD + momentum: every arrow starts at the start point.
            first = arrows_at(tab, sgd[0].point)
            assert len(first) == len(directions(sgd[0])) == 3
            assert (first[0]["ax"], first[0]["ay"]) == pytest.approx(cfg.problem.start, abs=1e-12)

            slider = tab.get_by_test_id("stSlider").filter(has_text="Step t")
            thumb = slider.get_by_role("slider")
            thumb.focus()
            thumb.press("ArrowRight")
            moved = arrows_at(tab, sgd[1].point)
            check_curvature(tab, cfg, sgd[1].point, step=1)
            assert (moved[0]["ax"], moved[0]["ay"]) != (first[0]["ax"], first[0]["ay"])
            for arrow in moved:
                assert (arrow["ax"], arrow["ay"]) == pytest.approx(sgd[1].point, abs=1e-9)
            # The "actual update" arrow points along x_2 - x_1.
            (dx, dy), end = sgd[1].update, moved[-1]
            ux, uy = end["x"] - end["ax"], end["y"] - end["ay"]
            assert ux * dy == pytest.approx(uy * dx, abs=1e-9) and ux * dx > 0

            thumb.press("End")
            last = arrows_at(tab, sgd[199].point)
            assert (last[0]["ax"], last[0]["ay"]) == pytest.approx(sgd[199].point, abs=1e-9)
            assert slider.get_by_test_id("stSliderThumbValue").inner_text() == "200"

            # Adam at the same step: other arrows from Adam's own x_199.
            tab.get_by_test_id("stMain").get_by_test_id("stSelectbox").click()
            tab.get_by_role("option", name="Adam (lr=0.1)").click()
            switched = arrows_at(tab, adam[199].point)
            assert len(switched) == len(directions(adam[199])) == 3
            assert (switched[0]["ax"], switched[0]["ay"]) != (last[0]["ax"], last[0]["ay"])
            assert switched != last

            tab.wait_for_timeout(500)  # let plotly finish painting before the screenshot
            assert tab.locator("[data-testid=stException]").count() == 0
            ARTIFACTS.mkdir(exist_ok=True)
            heading.evaluate("h => h.scrollIntoView({block: 'start'})")
            tab.wait_for_timeout(300)
            tab.screenshot(path=str(ARTIFACTS / "inspector.png"))
        finally:
            context.close()


def check_curvature(tab, cfg, point: tuple[float, float], step: int) -> None:
    """The Hessian's axes go through ``point`` with `hessian_eigs`'s values, and the
    λ_max chart holds every path's λ_max, SGD + momentum's (2 + 2μ)/η line and a mark
    at ``step``, all as plotly.js drew them."""
    tab.wait_for_function(MARKED, arg=step, timeout=30_000)
    eigvals, eigvecs = hessian_eigs(cfg.resolved_surface, np.array([point]))
    eigen = tab.evaluate(EIGEN)
    assert eigen["labels"] == [f"<b>λ{'₁₂'[k]} = {eigvals[0, k]:.4g}</b>" for k in range(2)]
    for k, axis in enumerate(eigen["axes"]):
        centre = ((axis["x"] + axis["ax"]) / 2, (axis["y"] + axis["ay"]) / 2)
        assert centre == pytest.approx(point, abs=1e-9)
        dx, dy = axis["x"] - axis["ax"], axis["y"] - axis["ay"]
        ux, uy = eigvecs[0, :, k]
        assert dx * uy == pytest.approx(dy * ux, abs=1e-9) and dx * ux + dy * uy > 0

    traces = {t["name"]: t for t in tab.evaluate(SHARPNESS)}
    for tr in collect(cfg):
        curve = traces[f"{tr.optimizer.label}: λ_max"]
        lam, _ = hessian_eigs(cfg.resolved_surface, np.column_stack([tr.x, tr.y]))
        assert curve["x"] == list(tr.step)
        assert curve["y"] == pytest.approx(lam[:, 1].tolist(), rel=1e-12)
    # SGD + momentum at lr 0.001, μ 0.9: (2 + 2μ)/η = 3800 at every point; Adam: none.
    line = traces["SGD (momentum=0.9): (2+2μ)/η = 3800"]
    assert line["y"] == pytest.approx([3.8 / 0.001] * len(line["x"]))
    assert not [n for n in traces if n.startswith("Adam") and not n.endswith("λ_max")]
    (mark,) = [t for n, t in traces.items() if n.startswith("θ")]
    assert mark["x"] == [step]


# Every rendered formula: KaTeX's visible HTML only (its MathML part repeats the
# TeX source, backslashes included). KaTeX draws a macro it does not know as its
# raw name in its error colour (#cc0000), not as an exception.
KATEX = """() => [...document.querySelectorAll('.katex')].map(k => {
  const html = k.querySelector('.katex-html');
  const red = [...k.querySelectorAll('.katex-html *')].filter(e =>
    getComputedStyle(e).color === 'rgb(204, 0, 0)').map(e => e.textContent);
  return {text: html ? html.textContent : '', red,
          error: !!k.closest('.katex-error') || !!k.querySelector('.katex-error')};
})"""
#: True once the inspector's numbers name the optimizer's own symbol (rendered text).
SHOWS = """(want) => [...document.querySelectorAll('.katex-html')]
  .some(e => e.textContent.includes(want))"""
#: Per optimizer, in the picker's order: its spec, and a symbol its numbers must show
#: as KaTeX renders it (λ_d renders as "λd", ψ as "ψ"...).
SYMBOL_CASES = [
    ("asgd:lr=0.001", "λd"),
    ("nadam", "ψ"),
    ("adafactor", "ϵ2"),
    ("lbfgs:line_search_fn=strong_wolfe", "max_iter"),
    ("rprop", "η−"),
    ("sgd:lr=0.001,momentum=1.2,weight_decay=0.1", "λ"),
]
SYMBOL_QUERY = "&".join(f"opt={text}" for text, _ in SYMBOL_CASES) + "&steps=30"


def test_every_rendered_symbol_is_katex_not_raw_macro_text(browser, tmp_path):
    with serve_app(tmp_path / "server.log") as url:
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        try:
            tab = context.new_page()
            tab.set_default_timeout(60_000)
            tab.goto(url)
            tab.get_by_role("heading", name="Surface Playground").wait_for()
            tab.goto(f"{url}/?{SYMBOL_QUERY}")
            open_inspector(tab)
            heading = tab.get_by_role("heading", name="Step inspector")
            heading.scroll_into_view_if_needed()
            picker = tab.get_by_test_id("stMain").get_by_test_id("stSelectbox")
            for index, (text, symbol) in enumerate(SYMBOL_CASES):
                label = OptimizerConfig.from_text(text).label  # the picker's own label
                if index:
                    picker.click()
                    tab.get_by_role("option", name=label, exact=True).click()
                tab.wait_for_function(SHOWS, arg=symbol, timeout=60_000)
                tab.wait_for_timeout(300)  # the rest of the rerun's formulas
                formulas = tab.evaluate(KATEX)
                assert len(formulas) >= 3, formulas  # f, the rule, this step's numbers
                for formula in formulas:
                    assert not formula["error"], (label, formula)
                    assert not formula["red"], (label, formula)  # an unknown macro, drawn red
                    assert "\\" not in formula["text"], (label, formula["text"][:300])
            assert tab.locator("[data-testid=stException]").count() == 0
        finally:
            context.close()
