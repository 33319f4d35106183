"""The Lessons page's share link: ``lesson=KEY`` and each control's value.

``/lessons?lesson=change-lr&optimizer=Adam&at=60&factor=0.5`` opens lesson 3
with those values. Reading is strict, as for every page: a value over
`MAX_VALUE_LENGTH` characters, a key given twice, an unknown lesson or a bad
value is refused with a `ValueError` naming the key; other keys (the room,
the view, tracking parameters) are ignored.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from optlab.lessons import LESSONS, Lesson, get_lesson
from optlab.links.table import MAX_VALUE_LENGTH

#: The query key of the lesson shown.
LESSON_KEY = "lesson"


def _one(params: Mapping[str, Sequence[str] | str], key: str) -> str | None:
    values = params.get(key)
    if values is None:
        return None
    if isinstance(values, str):
        values = [values]
    if len(values) != 1:
        raise ValueError(f"{key}: given {len(values)} times, once at most")
    value = values[0]
    if len(value) > MAX_VALUE_LENGTH:
        raise ValueError(f"{key}: longer than {MAX_VALUE_LENGTH} characters")
    return value


def lesson_from_params(
    params: Mapping[str, Sequence[str] | str],
) -> tuple[Lesson, dict[str, Any]] | None:
    """The lesson and control values a link names; None when it names no lesson.

    Raises:
        ValueError: naming the bad key.
    """
    key = _one(params, LESSON_KEY)
    if key is None:
        return None
    lesson = get_lesson(key)
    given = {}
    for control in lesson.controls:
        text = _one(params, control.name)
        if text is not None:
            given[control.name] = control.parse(text)
    return lesson, lesson.values(given)


def lesson_to_params(lesson: Lesson, values: Mapping[str, Any]) -> dict[str, str]:
    """The link of ``lesson`` with these values (every control, defaults included)."""
    params = {LESSON_KEY: lesson.key}
    for control in lesson.controls:
        params[control.name] = control.format(values[control.name])
    return params


__all__ = ["LESSONS", "LESSON_KEY", "lesson_from_params", "lesson_to_params"]
