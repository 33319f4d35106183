"""The Lessons page: pick a lesson, play with its controls, read its chart and its code.

The session's lesson and control values live in widget keys; the address
bar mirrors them (`optlab.lessons.link`), so it is a share link and what a
presenter pushes to a room. Results are cached server-wide by lesson and
values (every attendee opening the same lesson shares one run); the CIFAR-10
images of lesson 1's CNN half are read once per server.
"""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import urlencode

import streamlit as st
from torch import Tensor

from optlab.lessons import LESSONS, Lesson, LessonRun, get_lesson
from optlab.lessons.lesson import Control, OpenLink
from optlab.lessons.link import lesson_from_params, lesson_to_params
from optlab.lessons.parts import CNN_IMAGES, cifar_folder
from optlab.script.lessons import CnnData, first_images
from optlab.ui import view
from optlab.ui.address_bar import link_params, mirror_url
from optlab.ui.reconnect import keep_sent_numbers
from optlab.ui.room.state import with_room

#: Session keys: the link was read (the room's Load drops it), and its warning.
INITIALISED, LINK_WARNING = "lessons_initialised", "lessons_link_warning"
#: The widget key of the lesson chosen.
CHOSEN = "lessons_chosen"


def control_key(lesson: Lesson, control: Control) -> str:
    """The widget key of one control of one lesson."""
    return f"lessons_{lesson.key}_{control.name}"


def initialise() -> None:
    """On a session's first run (and after a room's Load): the lesson from the link."""
    state = st.session_state
    if state.get(INITIALISED):
        return
    state[INITIALISED] = True
    try:
        found = lesson_from_params(link_params())
    except ValueError as err:
        state[LINK_WARNING] = f"This link could not be used ({err}); showing lesson 1."
        found = None
    lesson, values = found or (LESSONS[0], LESSONS[0].defaults)
    state[CHOSEN] = lesson.key
    for control in lesson.controls:
        state[control_key(lesson, control)] = values[control.name]
    keep_sent_numbers(state)


def choose() -> Lesson:
    """The lesson picker; returns the lesson chosen."""
    keys = [lesson.key for lesson in LESSONS]
    titles = {lesson.key: f"{lesson.number}. {lesson.title}" for lesson in LESSONS}
    key = st.selectbox("Lesson", keys, format_func=titles.__getitem__, key=CHOSEN)
    return get_lesson(key)


def controls(lesson: Lesson) -> dict[str, Any]:
    """The lesson's controls, side by side; returns their values."""
    state = st.session_state
    values = {}
    for column, control in zip(st.columns(len(lesson.controls)), lesson.controls, strict=True):
        key = control_key(lesson, control)
        state.setdefault(key, control.default)
        with column:
            if control.options:
                values[control.name] = st.selectbox(
                    control.label, control.options, key=key, help=control.help or None
                )
            elif control.integer:
                values[control.name] = st.slider(
                    control.label,
                    int(control.low),
                    int(control.high),
                    key=key,
                    help=control.help or None,
                )
            else:
                values[control.name] = st.number_input(
                    control.label,
                    min_value=float(control.low),
                    max_value=float(control.high),
                    step=None,
                    format="%g",
                    key=key,
                    help=control.help or None,
                )
    return lesson.values(values)


def publish(lesson: Lesson, values: dict[str, Any]) -> None:
    """Mirrors the lesson in the address bar (a share link; a room's push sends it)."""
    mirror_url(lesson_to_params(lesson, values))


@st.cache_resource(show_spinner=False, max_entries=1)
def _images(folder: str) -> tuple[Tensor, Tensor]:
    return first_images(folder, CNN_IMAGES)


@st.cache_data(show_spinner=False, max_entries=256)
def _result(key: str, index: int, values: tuple[tuple[str, Any], ...]) -> dict | None:
    """One program's result, shared by every session of this server."""
    lesson = get_lesson(key)
    program = lesson.programs(lesson.values(dict(values)))[index]
    if isinstance(program.loss, CnnData):
        folder, _ = cifar_folder()
        if folder is None:
            return None
        return program.run(*_images(str(folder)))
    return program.run()


def _page_url(link: OpenLink) -> str:
    assert link.params is not None
    query = urlencode(view.with_view(with_room(dict(link.params))), doseq=True)
    return f"./{link.page}?{query}"


def show(lesson: Lesson, values: dict[str, Any]) -> None:
    """The lesson's text, charts (the CNN's after the rest), findings, links and code."""
    st.markdown(lesson.text)
    programs = lesson.programs(values)
    items = tuple(sorted(values.items()))
    body = st.empty()
    started = time.perf_counter()
    results: list[dict | None] = [None] * len(programs)
    later = [i for i, p in enumerate(programs) if isinstance(p.loss, CnnData)]
    try:
        for i in range(len(programs)):
            if i not in later:
                results[i] = _result(lesson.key, i, items)
    except Exception as err:  # a plugin that raises, say: never a crashed page
        st.error(f"This lesson failed to run: {type(err).__name__}: {str(err)[:300]}")
        return
    if later:
        # First paint fast: the surface half is drawn while the CNN trains.
        with body.container():
            _draw(LessonRun(lesson, values, programs, tuple(results), 0.0), pending=True)
        with st.spinner("Training the CNN on a few batches…"):
            try:
                for i in later:
                    results[i] = _result(lesson.key, i, items)
            except Exception as err:  # shown, and the surface half stays on screen
                st.error(f"The CNN half failed: {type(err).__name__}: {str(err)[:300]}")
                return
    run = LessonRun(lesson, values, programs, tuple(results), time.perf_counter() - started)
    with body.container():
        _draw(run, pending=False)


def _draw(run: LessonRun, *, pending: bool) -> None:
    lesson = run.lesson
    figures = run.figures()
    width = 2 if len(figures) > 1 else 1
    for first in range(0, len(figures), width):
        row = figures[first : first + width]
        for column, (name, fig) in zip(view.columns([1] * len(row)), row, strict=True):
            with column:
                # A contour is square: in presenter view it needs the height to fill
                # the projector's width.
                square = any(trace.type == "contour" for trace in fig.data)
                view.show_chart(
                    fig,
                    name,
                    key=f"{name}-{'pending' if pending else 'done'}",
                    presenter_height=view.PRESENTER_SQUARE_PX if square else None,
                )
    cnn_missing = [
        i
        for i, p in enumerate(run.programs)
        if isinstance(p.loss, CnnData) and run.results[i] is None
    ]
    if pending:
        return
    if cnn_missing:
        st.info(f"The CNN half needs CIFAR-10 on this server: {cifar_folder()[1]}.")
    st.markdown(run.findings())
    st.caption(f"Computed in {run.seconds:.2f} s (this server, cached for everyone).")
    links = run.links()
    cols = st.columns(len(links))
    for column, link in zip(cols, links, strict=True):
        with column:
            if link.params is not None:
                st.link_button(link.label, _page_url(link), icon=":material/open_in_new:")
            else:
                st.caption(f"{link.label}: not on this server ({link.why}).")
    st.subheader("The code that drew this")
    st.caption(
        "Exported from the same settings (OptLab's export as script): run it with "
        "`python lesson.py`; its last line prints the numbers the chart shows."
    )
    for program, source in zip(run.programs, run.scripts(), strict=True):
        name = f"lesson{lesson.number}_{program.function}.py"
        st.markdown(f"**{program.title}** · `{name}`")
        st.code(source, language="python", height=520)
        st.download_button(
            f"Download {name}",
            source,
            file_name=name,
            mime="text/x-python",
            key=f"download-{lesson.key}-{program.function}-{run.programs.index(program)}",
            icon=":material/download:",
        )
