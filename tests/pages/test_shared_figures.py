"""Shared charts: a figure many sessions draw from the same data is built once per
version (or once per ``max_age_s`` while the data grows), and never an older one."""

from __future__ import annotations

import time
from collections import Counter

import numpy as np
from streamlit.testing.v1 import AppTest

from optlab.charts import spec_bytes
from optlab.surface import curves, plots
from optlab.ui import view
from optlab.ui.view import StyledFigure, _SharedFigures
from tests.support.resources import APP


def test_a_version_is_built_once_and_an_older_figure_is_never_reused():
    shared = _SharedFigures(budget=2, weigh=lambda fig: 1)
    assert shared.get("run", 5, max_age_s=0.5) is None
    shared.put("run", 5, "fig5")
    assert shared.get("run", 5, max_age_s=0.0) == "fig5"
    # Newer data: reused while young when allowed, else rebuilt.
    assert shared.get("run", 7, max_age_s=0.5) == "fig5"
    assert shared.get("run", 7, max_age_s=0.0) is None
    # A figure newer than what this session asks for is not shown to it.
    shared.put("run", 9, "fig9")
    assert shared.get("run", 8, max_age_s=10.0) is None
    time.sleep(0.06)
    assert shared.get("run", 10, max_age_s=0.05) is None  # too old to stand for 10
    # Bounded: the least recently built chart goes first.
    shared.put("other", 1, "a")
    shared.put("third", 1, "b")
    assert shared.get("run", 9, max_age_s=0.0) is None
    assert shared.get("third", 1, max_age_s=0.0) == "b"


def _page() -> None:
    import plotly.graph_objects as go
    import streamlit as st

    from optlab.ui.view import show_shared_chart

    def build():
        st.session_state["built"] = st.session_state.get("built", 0) + 1
        return go.Figure(go.Scatter(x=[1, 2, 3], y=[3, 1, 2], name="loss"))

    version = st.session_state.get("version", 1)
    show_shared_chart(build, ("test-shared", 123), version, "test", max_age_s=60.0)


def test_sessions_watching_one_run_share_its_figure():
    first = AppTest.from_function(_page).run()
    second = AppTest.from_function(_page).run()
    assert first.session_state["built"] == 1
    assert "built" not in second.session_state  # drawn from the first one's figure
    spec = [e.proto.spec for e in first.get("plotly_chart")]
    assert spec == [e.proto.spec for e in second.get("plotly_chart")] and '"loss"' in spec[0]
    # Newer data within max_age_s: still the shared figure.
    second.session_state["version"] = 2
    second.run()
    assert "built" not in second.session_state


def test_the_shared_figures_are_bounded_by_their_bytes():
    """The budget is in bytes of the styled specs, not a count of charts: one large
    chart (a contour's grid) weighs as much as many small ones."""
    z = np.zeros((50, 50))
    big = {"data": [{"type": "contour", "z": {"dtype": "f8", "bdata": "A" * 26_668}}]}
    assert spec_bytes(big) > 26_668 and spec_bytes({"z": z}) >= z.nbytes
    small = {"data": [{"type": "scatter", "x": [1, 2], "y": [3, 4]}], "layout": {}}
    shared = _SharedFigures(budget=30_000)
    for i in range(20):
        shared.put(("small", i), 0, StyledFigure(small))
    assert all(shared.get(("small", i), 0, 0.0) is not None for i in range(20))
    shared.put("contour", 0, StyledFigure(big))
    assert shared.get("contour", 0, 0.0) is not None
    assert 26_668 < shared.weight <= 30_000
    # The contour pushed out the least recently drawn small charts, not all of them.
    kept = [i for i in range(20) if shared.get(("small", i), 0, 0.0) is not None]
    assert kept and kept == list(range(20 - len(kept), 20))


def _unshared_page() -> None:
    import plotly.graph_objects as go
    import streamlit as st

    from optlab.ui.view import show_shared_chart

    def build():
        st.session_state["built"] = st.session_state.get("built", 0) + 1
        return go.Figure(go.Scatter(x=[1, 2, 3], y=[3, 1, 2], name="own"))

    show_shared_chart(build, None, 0, "test")


def test_a_chart_not_shared_is_built_on_every_run():
    at = AppTest.from_function(_unshared_page).run()
    at.run()
    assert at.session_state["built"] == 2
    assert '"own"' in at.get("plotly_chart")[0].proto.spec


def test_a_finished_comparison_is_charted_once_for_every_session_and_rerun(monkeypatch):
    """The playground's contour and curves of a finished comparison are built once:
    a rerun, and a second attendee opening the same setup, draw the same figures;
    another view or another comparison builds its own."""
    monkeypatch.setattr(view, "_shared", _SharedFigures())
    built: Counter[str] = Counter()

    def counted(name, build, when=lambda **kw: True):
        def wrapper(*args, **kwargs):
            if when(**kwargs):
                built[name] += 1
            return build(*args, **kwargs)

        return wrapper

    # The clickable contour is the finished one (a run's live chart is not clickable).
    clickable = counted("paths", plots.contour_figure, lambda **kw: kw["clickable"])
    monkeypatch.setattr(plots, "contour_figure", clickable)
    monkeypatch.setattr(curves, "loss_figure", counted("loss", curves.loss_figure))
    monkeypatch.setattr(curves, "distance_figure", counted("distance", curves.distance_figure))

    def page(query=None) -> AppTest:
        at = AppTest.from_file(APP, default_timeout=120)
        at.query_params.update(query or {})
        at.run()
        assert not at.exception, at.exception
        return at

    def specs(at: AppTest) -> list[str]:
        return [e.proto.spec for e in at.get("plotly_chart")]

    first = page()
    once = {"paths": 1, "loss": 1, "distance": 1}
    assert built == once
    first.run()
    second = page()
    assert built == once  # neither the rerun nor the second attendee built a chart
    assert len(specs(second)) == 3 and specs(second) == specs(first)
    page({"view": "presenter"})
    assert built == {"paths": 2, "loss": 2, "distance": 2}
    first.number_input(key="slot1_lr").set_value(0.02).run()  # Adam at lr 0.02
    assert built == {"paths": 3, "loss": 3, "distance": 3}
