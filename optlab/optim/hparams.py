"""Hyperparameter specs: one tunable constructor argument of an optimizer.

An `HParam` is the single source of truth for a knob: the UI generates its
widget from it, the CLI and share links parse text into it, and validation
(range, type) happens in one place with torch-style messages such as
``Invalid momentum value: -1 (must be in [0, 1))``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

HValue = float | int | bool | str | None | tuple[float, float]


def _fmt(v: Any) -> str:
    """Formats a value exactly and compactly (``repr`` round-trips floats)."""
    if isinstance(v, bool):
        return str(v).lower()
    if v is None:
        return "none"
    if isinstance(v, float) and v.is_integer() and abs(v) < 1e15:
        return str(int(v))
    return repr(v) if isinstance(v, float) else str(v)


@dataclass(frozen=True)
class HParam:
    """One tunable constructor argument of a `torch.optim` optimizer.

    Attributes:
        name: The keyword name torch.optim uses (``lr``, ``betas``, ...).
        default: torch's default value; its type decides the kind of widget.
        low: Smallest allowed value (each element, for pairs); None for none.
        high: Largest allowed value; None for none.
        log: Whether the value spans decades (log-scaled inputs).
        help: One line saying what the knob does.
        low_open: True when ``low`` itself is not allowed.
        high_open: True when ``high`` itself is not allowed.
        choices: The allowed values of a categorical knob.
        integer: Whether the value is an integer.
    """

    name: str
    default: HValue
    low: float | None = None
    high: float | None = None
    log: bool = False
    help: str = ""
    low_open: bool = False
    high_open: bool = False
    choices: tuple[str | None, ...] = ()
    integer: bool = False

    @property
    def kind(self) -> str:
        """The widget kind: ``bool``, ``choice``, ``pair``, ``int`` or ``float``."""
        if self.choices:
            return "choice"
        if isinstance(self.default, bool):
            return "bool"
        if isinstance(self.default, tuple):
            return "pair"
        if self.integer:
            return "int"
        return "float"

    def range_text(self) -> str:
        """The allowed interval in mathematical notation, e.g. ``[0, 1)``."""
        lo = "-inf" if self.low is None else _fmt(self.low)
        hi = "inf" if self.high is None else _fmt(self.high)
        left = "(" if self.low_open or self.low is None else "["
        right = ")" if self.high_open or self.high is None else "]"
        return f"{left}{lo}, {hi}{right}"

    def _check_number(self, value: Any, shown: Any) -> float | int:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"Invalid {self.name} value: {shown!r} (expected a number)")
        try:
            finite = math.isfinite(value)
        except OverflowError:  # an int too large for a float
            digits = len(str(shown))
            raise ValueError(
                f"Invalid {self.name} value: a {digits}-digit number is far too large"
            ) from None
        if not finite:
            raise ValueError(f"Invalid {self.name} value: {_fmt(shown)} (must be finite)")
        if self.integer:
            if float(value) != int(value):
                raise ValueError(f"Invalid {self.name} value: {_fmt(shown)} (must be an integer)")
            value = int(value)
        else:
            value = float(value)
        too_low = self.low is not None and (
            value < self.low or (self.low_open and value == self.low)
        )
        too_high = self.high is not None and (
            value > self.high or (self.high_open and value == self.high)
        )
        if too_low or too_high:
            raise ValueError(
                f"Invalid {self.name} value: {_fmt(shown)} (must be in {self.range_text()})"
            )
        return value

    def validate(self, value: Any) -> HValue:
        """Checks a value and returns it in canonical form.

        Raises:
            ValueError: naming the parameter and the bad value.
        """
        kind = self.kind
        if kind == "choice":
            if value not in self.choices:
                allowed = ", ".join(_fmt(c) for c in self.choices)
                raise ValueError(f"Invalid {self.name} value: {value!r} (one of: {allowed})")
            return value
        if kind == "bool":
            if not isinstance(value, bool):
                raise ValueError(f"Invalid {self.name} value: {value!r} (expected true or false)")
            return value
        if kind == "pair":
            if not isinstance(value, tuple | list) or len(value) != 2:
                raise ValueError(f"Invalid {self.name} value: {value!r} (expected two numbers a/b)")
            return tuple(self._check_number(v, v) for v in value)  # type: ignore[return-value]
        return self._check_number(value, value)

    def parse(self, text: str) -> HValue:
        """Parses the text form used by the CLI and share links, then validates.

        Booleans are ``true``/``false``, pairs are ``a/b``, a missing choice is
        ``none``.

        Raises:
            ValueError: naming the parameter and the text.
        """
        text = text.strip()
        kind = self.kind
        if kind == "bool":
            low = text.lower()
            if low not in ("true", "false"):
                raise ValueError(f"Invalid {self.name} value: {text!r} (expected true or false)")
            return low == "true"
        if kind == "choice":
            value: Any = None if text.lower() == "none" else text
            return self.validate(value)
        if kind == "pair":
            parts = text.split("/")
            if len(parts) != 2:
                raise ValueError(f"Invalid {self.name} value: {text!r} (expected two numbers a/b)")
            return self.validate(tuple(self._number(p, text) for p in parts))
        return self.validate(self._number(text, text))

    def _number(self, text: str, shown: str) -> float | int:
        try:
            return int(text) if self.integer else float(text)
        except ValueError:
            kind = "an integer" if self.integer else "a number"
            raise ValueError(f"Invalid {self.name} value: {shown!r} (expected {kind})") from None

    def short(self, value: HValue) -> str:
        """A compact display form for legends: numbers to 6 significant digits."""
        if isinstance(value, tuple):
            return "/".join(format(v, ".6g") for v in value)
        if isinstance(value, float):
            return format(value, ".6g")
        return self.format(value)

    def format(self, value: HValue) -> str:
        """The text form of a value, the inverse of `parse`."""
        if isinstance(value, tuple):
            return "/".join(_fmt(v) for v in value)
        if value is None:
            return "none"
        return _fmt(value)


def split_spec(text: str, what: str) -> tuple[str, list[tuple[str, str]]]:
    """Splits the SPEC text form ``key[:name=value[,name=value...]]``.

    Returns:
        The lower-cased key and the ``(name, raw value)`` items in order.

    Raises:
        ValueError: an empty text, an item without ``=``, or a repeated name.
    """
    text = text.strip()
    if not text:
        raise ValueError(f"empty {what} spec (expected key[:name=value,...])")
    key, _, rest = text.partition(":")
    items: list[tuple[str, str]] = []
    seen: set[str] = set()  # a set: a hostile spec of thousands of names stays linear
    for item in filter(None, (p.strip() for p in rest.split(","))):
        name, sep, raw = item.partition("=")
        if not sep:
            raise ValueError(f"bad item {item!r} in {what} spec (expected name=value)")
        name = name.strip()
        if name in seen:
            raise ValueError(f"{name} is given twice in {what} spec {text[:200]!r}")
        seen.add(name)
        items.append((name, raw))
    return key.strip().lower(), items


def find_hparam(hparams: tuple[HParam, ...], name: str, owner: str, noun: str) -> HParam:
    """The knob called ``name`` among ``hparams`` of ``owner`` (an optimizer, a scheduler).

    Raises:
        ValueError: ``<owner> has no <noun> '<name>' (known: ...)``.
    """
    for hp in hparams:
        if hp.name == name:
            return hp
    known = ", ".join(hp.name for hp in hparams) or "none"
    raise ValueError(f"{owner} has no {noun} {name!r} (known: {known})")
