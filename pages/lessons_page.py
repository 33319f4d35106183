"""Lessons: the torch.optim tutorials as short lessons, each with a live chart and its code."""

import streamlit as st

from optlab.ui.lessons import page as lessons

lessons.initialise()
st.title("Lessons")
if warning := st.session_state.pop(lessons.LINK_WARNING, None):
    st.warning(warning)
st.caption(
    "The torch.optim tutorials, one lesson at a time: a few sentences, a chart computed "
    "live, the exact code that computed it, and a control or two to play with."
)
lesson = lessons.choose()
try:
    values = lessons.controls(lesson)
except ValueError as err:
    st.error(f"Cannot run this lesson: {err}", icon=":material/error:")
    st.stop()
lessons.publish(lesson, values)
st.header(f"{lesson.number}. {lesson.title}", anchor=lesson.key)
lessons.show(lesson, values)
