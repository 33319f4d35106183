"""Presenter view: every page legible to a class watching a 1024x768 projector.

``?view=presenter`` (kept in every share link) or the sidebar's toggle turns it
on for the session: the sidebar starts collapsed, text and every chart's
ticks, legends and titles grow to at least 18 px, and pages stack their
charts at full width instead of side by side. Charts go through `show_chart`,
so each one is drawn for the view the session is in.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable, Sequence
from typing import Any

import streamlit as st
from plotly.basedatatypes import BaseFigure

from optlab.charts import (
    Spec,
    chart_config,
    figure_spec,
    presenter_style,
    reserve_margins,
    spec_bytes,
)
from optlab.ui.cache import BoundedCache

#: The query key and value of presenter view.
VIEW_KEY, PRESENTER = "view", "presenter"
#: The session key of the view: plain session state, owned by this module.
PRESENTER_ON = "presenter_view"
#: The widget key of the sidebar's toggle, which follows `PRESENTER_ON`.
TOGGLE_KEY = "presenter_toggle"
#: The browser tab's icon: a loss curve going down.
TAB_ICON = "\N{CHART WITH DOWNWARDS TREND}"
#: Root font size in presenter view (Streamlit's text is sized in rem: 16 px).
PRESENTER_ROOT_PX = 20
#: Presenter view's height of the square contour: its plot area fills at least
#: 600 px of a 1024 px projector's width.
PRESENTER_SQUARE_PX = 820


def presenter() -> bool:
    """Whether this session shows presenter view."""
    return bool(st.session_state.get(PRESENTER_ON, False))


def start_view() -> None:
    """On every run, before the page: takes ``view=presenter`` from the link the
    session opened (once), sets the page up for the view, and draws the toggle.

    Call it from the entry point, before `st.navigation`: page config must
    come first, and the toggle sits on every page.
    """
    state = st.session_state
    if PRESENTER_ON not in state:
        state[PRESENTER_ON] = st.query_params.get(VIEW_KEY) == PRESENTER
    st.set_page_config(
        page_title="OptLab",
        # An emoji, drawn in the page (a data: URL): a material icon would make every
        # browser fetch the tab's icon from fonts.gstatic.com, which a workshop room
        # without internet cannot reach.
        page_icon=TAB_ICON,
        layout="wide",
        initial_sidebar_state="collapsed" if presenter() else "expanded",
    )
    # The view is never held by the toggle alone: a widget's id includes the
    # script hash active when it is drawn, and a server process's first run
    # (Streamlit's pages/-folder mode, before st.navigation takes over) draws the
    # toggle under another hash than every later run. The widget of that first
    # run is then dropped with its value, and the next rerun (an expander
    # opening, any click) would draw the toggle off. So the toggle is set from
    # the session's view on every run and writes back only when clicked.
    state[TOGGLE_KEY] = presenter()
    st.sidebar.toggle(
        "Presenter view",
        key=TOGGLE_KEY,
        on_change=_follow_toggle,
        help="Large text and charts for a projector: the link keeps it (view=presenter).",
    )
    if presenter():
        # Streamlit sizes its text in rem; charts get their sizes from show_chart.
        st.html(f"<style>html {{ font-size: {PRESENTER_ROOT_PX}px; }}</style>")


def _follow_toggle() -> None:
    """The toggle's callback: a click turns the session's view on or off."""
    state = st.session_state
    state[PRESENTER_ON] = bool(state[TOGGLE_KEY])


def keep_view_in_link() -> None:
    """After the page ran: the address bar keeps ``view=presenter`` (page links
    and page switches drop it), and loses it when the toggle is off."""
    if presenter():
        if st.query_params.get(VIEW_KEY) != PRESENTER:
            st.query_params[VIEW_KEY] = PRESENTER
    elif VIEW_KEY in st.query_params:
        del st.query_params[VIEW_KEY]


def with_view(params: dict[str, Any]) -> dict[str, Any]:
    """A page's link parameters, with the view the session is in."""
    return {**params, VIEW_KEY: PRESENTER} if presenter() else params


def show_chart(
    fig: Any,
    name: str,
    *,
    key: str | None = None,
    presenter_height: int | None = None,
    **kwargs: Any,
) -> Any:
    """``st.plotly_chart`` for the session's view: the modebar saves the chart as
    ``optlab-<name>.png``; in presenter view fonts are projector-sized and the
    chart is ``presenter_height`` pixels tall when given (a square plot, such as a
    contour, needs the height to fill the projector's width)."""
    fig = _styled(fig, presenter_height)
    return st.plotly_chart(fig, config=chart_config(name), key=key, **kwargs)


class StyledFigure(BaseFigure):
    """A styled `Spec` as the figure ``st.plotly_chart`` takes: its dict is the spec.

    ``st.plotly_chart`` asks a Plotly figure for its ``to_dict()`` and encodes that
    (Streamlit 1.67's ``plotly_chart``, through ``plotly.tools.
    return_figure_from_figure_or_data``; a plain dict it would validate). A
    ``go.Figure`` of the styled spec, even unvalidated, copies every array twice
    more, once built and once in ``to_dict``: a third of what a chart costs the
    page's Python per rerun (``python -m bench.figures``). This one hands the spec
    over as it is, and is never changed once built: a shared chart's is encoded by
    many sessions at once. tests/test_charts.py checks that ``st.plotly_chart``
    sends the same JSON for it as for the ``go.Figure`` of the same spec.
    """

    def __init__(self, spec: Spec) -> None:
        # Not BaseFigure.__init__: nothing of a go.Figure is built.
        self._spec = spec

    @property
    def spec(self) -> Spec:
        """The styled spec itself."""
        return self._spec

    def to_dict(self) -> Spec:
        return self._spec

    def to_plotly_json(self) -> Spec:
        return self._spec


def _styled(fig: Any, presenter_height: int | None) -> StyledFigure:
    """``fig``, a ``go.Figure``, styled for the session's view, margins reserved, as
    the figure ``st.plotly_chart`` draws; ``fig`` is left as it was (its dict is
    styled)."""
    spec = figure_spec(fig)
    if presenter():
        presenter_style(spec)
        if presenter_height is not None:
            spec["layout"]["height"] = presenter_height
    return StyledFigure(reserve_margins(spec))


#: Bytes of styled figures the shared charts keep for every session (`show_shared_chart`),
#: counted as `charts.spec_bytes` counts them; the least recently drawn go first.
SHARED_CHARTS_BYTES = 32 * 2**20


class _SharedFigures:
    """The latest styled figure of each shared chart, for every session alike,
    within ``budget`` bytes (``weigh``: a figure's bytes)."""

    def __init__(
        self,
        budget: float = SHARED_CHARTS_BYTES,
        weigh: Callable[[Any], float] = lambda fig: spec_bytes(fig.spec),
    ) -> None:
        self._figures: BoundedCache[Hashable, tuple[int, float, Any, float]] = BoundedCache(
            budget, weight=lambda entry: entry[3]
        )
        self._weigh = weigh

    def get(self, key: Hashable, version: int, max_age_s: float) -> Any | None:
        found = self._figures.get(key)
        if found is None:
            return None
        built, at, fig, _ = found
        fresh = version == built or (max_age_s > 0 and time.monotonic() - at < max_age_s)
        return fig if fresh and built <= version else None

    def put(self, key: Hashable, version: int, fig: Any) -> None:
        self._figures.put(key, (version, time.monotonic(), fig, self._weigh(fig)))

    @property
    def weight(self) -> float:
        """The bytes held."""
        return self._figures.weight


_shared = _SharedFigures()


def show_shared_chart(
    build: Callable[[], Any],
    share: Hashable | None,
    version: int,
    name: str,
    *,
    max_age_s: float = 0.0,
    key: str | None = None,
    presenter_height: int | None = None,
    **kwargs: Any,
) -> Any:
    """`show_chart` for a chart many sessions, or many reruns, draw from the same
    data: a shared CNN run's live curves, polled by every watcher every few seconds;
    a finished comparison's charts, drawn again on every rerun of its page and by
    every attendee who opens the same setup.

    The styled figure is built once per ``share`` (and view) and ``version`` of
    the data, and reused by every session asking for that version; one built
    less than ``max_age_s`` seconds ago from an older version is reused too, so
    a chart of data growing step by step is built at most about once per
    ``max_age_s`` however many watch it. Pass ``max_age_s=0`` once the data
    stops growing: every step is then drawn. ``share`` must name everything the
    chart is built from; None draws a chart of this session's own (a run cut
    short) with `show_chart`. The figure is never changed after it is built
    (sessions serialise it concurrently).
    """
    if share is None:
        return show_chart(build(), name, key=key, presenter_height=presenter_height, **kwargs)
    cache_key = (share, presenter(), presenter_height)
    fig = _shared.get(cache_key, version, max_age_s)
    if fig is None:
        fig = _styled(build(), presenter_height)
        _shared.put(cache_key, version, fig)
    return st.plotly_chart(fig, config=chart_config(name), key=key, **kwargs)


def columns(spec: Sequence[float], **kwargs: Any) -> list[Any]:
    """``st.columns(spec)`` normally; in presenter view one full-width container per
    column, stacked, so every chart gets the projector's whole width."""
    if presenter():
        return [st.container() for _ in spec]
    return list(st.columns(spec, **kwargs))
