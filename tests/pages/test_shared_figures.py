"""Shared charts: a figure many sessions draw from the same data is built once per
version (or once per ``max_age_s`` while the data grows), and never an older one."""

from __future__ import annotations

import time

from streamlit.testing.v1 import AppTest

from optlab.ui.view import _SharedFigures


def test_a_version_is_built_once_and_an_older_figure_is_never_reused():
    shared = _SharedFigures(entries=2)
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
