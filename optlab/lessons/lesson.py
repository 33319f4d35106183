"""What a lesson is: its text, its controls, its programs, its charts and its links.

A `Lesson` is a frozen spec, like an `OptimizerSpec`: the page draws it
without knowing which lesson it is. Its `programs` turn the controls' values
into `LessonProgram`s (the calls of `optlab.script.runtime.lessons` that run
for the chart and are shown as code), `figures` turn their results into
Plotly figures, `findings` into a sentence or two computed from the results,
and `links` into "Open in the playground / CNN lab" links with the settings.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from optlab.script.lessons import LessonProgram

#: The values of a lesson's controls, by name.
Values = Mapping[str, Any]
#: A lesson's programs' results, in order (None: a program that could not run, such as
#: a CNN program on a server without CIFAR-10).
Results = Sequence[dict | None]


@dataclass(frozen=True)
class Control:
    """One control of a lesson: a number in a range, or one of a few options.

    Attributes:
        name: Its key (in the lesson's link too).
        label: What the widget says.
        default: The value a lesson opens with.
        low, high: The range of a number (inclusive).
        options: The choices of an option control (numbers stay empty).
        log: A number that spans decades (the widget steps in decades).
        integer: A whole number.
        help: One line the widget shows on hover.
    """

    name: str
    label: str
    default: Any
    low: float | None = None
    high: float | None = None
    options: tuple[str, ...] = ()
    log: bool = False
    integer: bool = False
    help: str = ""

    def validate(self, value: Any) -> Any:
        """``value`` as this control holds it.

        Raises:
            ValueError: naming the control and the value, when it is out of range,
                not a number, or not one of the options.
        """
        if self.options:
            if value not in self.options:
                choices = ", ".join(self.options)
                raise ValueError(f"{self.name}: must be one of {choices}, got {value!r}")
            return value
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"{self.name}: expected a number, got {value!r}")
        if not math.isfinite(value):
            raise ValueError(f"{self.name}: expected a finite number, got {value!r}")
        if self.integer:
            if value != int(value):
                raise ValueError(f"{self.name}: expected a whole number, got {value!r}")
            value = int(value)
        else:
            value = float(value)
        assert self.low is not None and self.high is not None
        if not self.low <= value <= self.high:
            raise ValueError(
                f"{self.name}: must be between {self.low:g} and {self.high:g}, got {value:g}"
            )
        return value

    def parse(self, text: str) -> Any:
        """A value from a link's text.

        Raises:
            ValueError: naming the control, when the text is not a valid value.
        """
        if self.options:
            return self.validate(text)
        try:
            number = float(text)
        except ValueError:
            raise ValueError(f"{self.name}: expected a number, got {text[:40]!r}") from None
        return self.validate(number)

    def format(self, value: Any) -> str:
        """``value`` as a link writes it."""
        return value if self.options else f"{value:g}"


@dataclass(frozen=True)
class OpenLink:
    """An "Open in ..." link: a page's URL path and its share-link query.

    Attributes:
        label: The button's text.
        page: The page's URL path (``""`` for the playground, ``cnn-lab``).
        params: The page's share-link query, or None when the page cannot open
            these settings (``why`` says why).
        why: Why there is no link.
    """

    label: str
    page: str
    params: Mapping[str, Any] | None = None
    why: str = ""


@dataclass(frozen=True)
class Lesson:
    """A lesson of the Lessons page.

    Attributes:
        key: Its key in links (``training-loop``).
        number: Its number in the issue's list of lessons.
        title: Its title.
        text: A few sentences of Markdown, shown above the chart.
        controls: One or two controls to play with.
        programs: The calls that run for the chart, from the controls' values.
        figures: ``(name, figure)`` pairs from the programs' results (None for
            a program that could not run, such as the CNN without CIFAR-10).
        findings: Sentences computed from the results (Markdown).
        links: "Open in ..." links with the settings.
    """

    key: str
    number: int
    title: str
    text: str
    controls: tuple[Control, ...]
    programs: Callable[[Values], tuple[LessonProgram, ...]] = field(compare=False)
    figures: Callable[[Results, Values], list[tuple[str, Any]]] = field(compare=False)
    findings: Callable[[Results, Values], str] = field(compare=False)
    links: Callable[[Values], tuple[OpenLink, ...]] = field(compare=False)

    @property
    def defaults(self) -> dict[str, Any]:
        """Every control's default value."""
        return {c.name: c.default for c in self.controls}

    def control(self, name: str) -> Control:
        """The control called ``name``.

        Raises:
            ValueError: naming the lesson's controls.
        """
        for control in self.controls:
            if control.name == name:
                return control
        names = ", ".join(c.name for c in self.controls)
        raise ValueError(f"{name}: lesson {self.number} has no such control (it has {names})")

    def values(self, given: Mapping[str, Any]) -> dict[str, Any]:
        """The controls' values: ``given`` validated, defaults for the rest.

        Raises:
            ValueError: an unknown control or a bad value.
        """
        for name in given:
            self.control(name)
        return {c.name: c.validate(given.get(c.name, c.default)) for c in self.controls}
