"""The Lessons page's engine: the torch.optim tutorials as short, live lessons.

Each lesson (`optlab.lessons.lesson.Lesson`) runs one or more calls of the
lesson loops in `optlab.script.runtime.lessons` and shows their exported
script (`optlab.script.lessons.lesson_script`), so the code on screen is the
code that drew the chart. `LESSONS` lists them in the order of the page;
`run_lesson` runs one.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from torch import Tensor

from optlab.lessons.basics import CHANGE_LR, CLOSURE, SCHEDULERS, STATE_DICT, TRAINING_LOOP
from optlab.lessons.finetune import PER_LAYER_LR
from optlab.lessons.lesson import Control, Lesson, OpenLink, Values
from optlab.lessons.rules import ADAM_BIAS, MOMENTUM, WRITE_YOUR_OWN
from optlab.lookup import lookup
from optlab.script.lessons import CnnData, LessonProgram, lesson_script

#: The lessons in the page's order, numbered as in the list they come from.
LESSONS: tuple[Lesson, ...] = (
    TRAINING_LOOP,
    CLOSURE,
    CHANGE_LR,
    PER_LAYER_LR,
    SCHEDULERS,
    STATE_DICT,
    MOMENTUM,
    ADAM_BIAS,
    WRITE_YOUR_OWN,
)
_BY_KEY = {lesson.key: lesson for lesson in LESSONS}


def get_lesson(key: str) -> Lesson:
    """The lesson called ``key``.

    Raises:
        ValueError: naming the known lessons.
    """
    return lookup(_BY_KEY, key, "lesson")


@dataclass(frozen=True)
class LessonRun:
    """A lesson's programs, their results, and how long they took.

    Attributes:
        lesson: The lesson.
        values: The controls' values it ran with.
        programs: Its programs.
        results: Each program's result; None for a CNN program without images.
        seconds: The wall time of all the programs.
    """

    lesson: Lesson
    values: Mapping[str, Any]
    programs: tuple[LessonProgram, ...]
    results: tuple[dict | None, ...]
    seconds: float

    def figures(self) -> list[tuple[str, Any]]:
        """The lesson's charts, as ``(name, figure)``."""
        return self.lesson.figures(self.results, self.values)

    def findings(self) -> str:
        """What the run shows, computed from its results (Markdown)."""
        return self.lesson.findings(self.results, self.values)

    def scripts(self) -> list[str]:
        """The source of each program's standalone script."""
        return [lesson_script(program) for program in self.programs]

    def links(self) -> tuple[OpenLink, ...]:
        """Its "Open in ..." links with these settings."""
        return self.lesson.links(self.values)


def run_lesson(
    lesson: Lesson,
    given: Mapping[str, Any] | None = None,
    images: tuple[Tensor, Tensor] | None = None,
) -> LessonRun:
    """Runs a lesson's programs with the controls' values (defaults for the missing).

    Args:
        lesson: The lesson.
        given: Some controls' values.
        images: The first CIFAR-10 images and labels of ``data_batch_1``, for a
            lesson with a CNN program (without them that program's result is None).

    Raises:
        ValueError: an unknown control or a bad value.
    """
    values = lesson.values(given or {})
    programs = lesson.programs(values)
    started = time.perf_counter()
    results = tuple(
        None
        if isinstance(p.loss, CnnData) and images is None
        else p.run(*(images if isinstance(p.loss, CnnData) and images is not None else ()))
        for p in programs
    )
    return LessonRun(lesson, values, programs, results, time.perf_counter() - started)


__all__ = [
    "LESSONS",
    "Control",
    "Lesson",
    "LessonRun",
    "OpenLink",
    "Values",
    "get_lesson",
    "run_lesson",
]
