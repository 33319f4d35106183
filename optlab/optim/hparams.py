"""Hyperparameter specs: one tunable constructor argument of an optimizer.

An `HParam` is the single source of truth for a knob: the UI generates its
widget from it, the CLI and share links parse text into it, and validation
(range, type) happens in one place. Three kinds of bound meet here, and each
says whose it is:

- ``low``/``high``: the range the knob accepts. For a built-in optimizer it
  is exactly torch's own constructor check (a test probes torch at and just
  beyond every bound), and ``origin`` says so in the message:
  ``Invalid momentum value: -1 (must be in [0, inf); torch's own check)``.
- ``limit``: OptLab's narrower range, only where it must have one (a
  server's resource cap, or a value torch's constructor takes but its
  ``step()`` then fails on); its message names it as OptLab's, not torch's.
- ``cautions``: values that are accepted but unusual (momentum ≥ 1, lr = 0):
  `HParam.warnings` says what will happen, and the pages and the CLI show it
  next to the value instead of refusing it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

HValue = float | int | bool | str | None | tuple[float | None, float | None]

#: What a built-in knob's ``origin`` says: its range is torch's constructor check.
TORCH_CHECK = "torch's own check"


def _fmt(v: Any) -> str:
    """Formats a value exactly and compactly (``repr`` round-trips floats)."""
    if isinstance(v, bool):
        return str(v).lower()
    if v is None:
        return "none"
    if isinstance(v, float) and v.is_integer() and abs(v) < 1e15:
        return str(int(v))
    return repr(v) if isinstance(v, float) else str(v)


def interval_text(
    low: float | None, high: float | None, low_open: bool = False, high_open: bool = False
) -> str:
    """An interval in mathematical notation, e.g. ``[0, 1)`` or ``(0, inf)``."""
    lo = "-inf" if low is None else _fmt(low)
    hi = "inf" if high is None else _fmt(high)
    left = "(" if low_open or low is None else "["
    right = ")" if high_open or high is None else "]"
    return f"{left}{lo}, {hi}{right}"


def _inside(
    value: float, low: float | None, high: float | None, low_open: bool, high_open: bool
) -> bool:
    above = low is None or value > low or (not low_open and value == low)
    below = high is None or value < high or (not high_open and value == high)
    return above and below


@dataclass(frozen=True)
class Caution:
    """A range of values that is accepted but unusual, with what happens there.

    Attributes:
        text: What the value does, shown next to it (``"μ ≥ 1: ... diverges"``).
        low: The range's lower end (None: unbounded).
        high: Its upper end (None: unbounded).
        low_open: ``low`` itself is outside the range.
        high_open: ``high`` itself is outside the range.
    """

    text: str
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False

    def applies(self, value: float) -> bool:
        """Whether ``value`` lies in this caution's range."""
        return _inside(value, self.low, self.high, self.low_open, self.high_open)


@dataclass(frozen=True)
class Limit:
    """OptLab's own range inside the accepted one, and why it has one.

    Attributes:
        why: The reason, shown in the refusal (``"to bound the work of one step"``).
        low: The smallest value OptLab takes (inclusive; None: no limit).
        high: The largest (inclusive; None: no limit).
        server_cap: A shared server's resource cap (the message says "this
            server's cap"); False for a rule of OptLab's (a value torch's
            constructor takes but its ``step()`` fails on).
    """

    why: str
    low: float | None = None
    high: float | None = None
    server_cap: bool = True

    @property
    def owner(self) -> str:
        """Whose limit it is, for messages."""
        return "this server's cap" if self.server_cap else "OptLab's limit"

    def text(self) -> str:
        """``at most 200``, ``at least 1`` or ``[1, 200]``."""
        if self.low is None and self.high is not None:
            return f"at most {_fmt(self.high)}"
        if self.high is None and self.low is not None:
            return f"at least {_fmt(self.low)}"
        return interval_text(self.low, self.high)


@dataclass(frozen=True)
class HParam:
    """One tunable constructor argument of a `torch.optim` optimizer.

    Attributes:
        name: The keyword name torch.optim uses (``lr``, ``betas``, ...).
        default: torch's default value; its type decides the kind of widget.
        low: Smallest accepted value (each element, for pairs); None for none.
        high: Largest accepted value; None for none.
        log: Whether the value spans decades (log-scaled inputs).
        help: One line saying what the knob does.
        low_open: True when ``low`` itself is not accepted.
        high_open: True when ``high`` itself is not accepted.
        choices: The allowed values of a categorical knob.
        integer: Whether the value is an integer.
        optional: Whether None is accepted (an empty box; torch's ``None``).
        origin: Whose check ``low``/``high`` are, named in refusals
            (`TORCH_CHECK` for the built-in optimizers); "" for none.
        limit: OptLab's narrower range, where it needs one.
        cautions: Accepted values that deserve a warning.
        parts: For a pair whose elements obey different rules (Rprop's
            0 < η⁻ < 1 < η⁺), one `HParam` per element; otherwise each
            element follows this knob's own bounds.
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
    optional: bool = False
    origin: str = ""
    limit: Limit | None = None
    cautions: tuple[Caution, ...] = ()
    parts: tuple[HParam, HParam] | None = None

    @property
    def kind(self) -> str:
        """The widget kind: ``bool``, ``choice``, ``pair``, ``int`` or ``float``.

        An ``int`` or ``float`` knob may also be `optional` (None allowed).
        """
        if self.choices:
            return "choice"
        if isinstance(self.default, bool):
            return "bool"
        if isinstance(self.default, tuple) or self.parts is not None:
            return "pair"
        if self.integer:
            return "int"
        return "float"

    def part(self, index: int) -> HParam:
        """The rules of one element of a pair (its own `parts` entry, else this knob's)."""
        if self.parts is not None:
            return self.parts[index]
        default = self.default[index] if isinstance(self.default, tuple) else None
        return HParam(
            f"{self.name}[{index}]",
            default,
            self.low,
            self.high,
            self.log,
            self.help,
            self.low_open,
            self.high_open,
            integer=self.integer,
            optional=self.optional,
            origin=self.origin,
            limit=self.limit,
            cautions=self.cautions,
        )

    def range_text(self) -> str:
        """The accepted values in mathematical notation: ``[0, 1)``, ``(0, 1) × (1, inf)``."""
        if self.kind == "pair" and self.parts is not None:
            return " × ".join(p.range_text() for p in self.parts)
        text = interval_text(self.low, self.high, self.low_open, self.high_open)
        return f"{text} or none" if self.optional else text

    def allowed_text(self) -> str:
        """What is accepted, in words for a table: the range, then OptLab's own limit."""
        if self.kind == "bool":
            return "true, false"
        if self.kind == "choice":
            return ", ".join(map(_fmt, self.choices))
        text = self.range_text()
        limits = [self.limit] if self.kind != "pair" else [self.part(i).limit for i in (0, 1)]
        for limit in dict.fromkeys(lim for lim in limits if lim is not None):
            text += f"; {limit.owner}: {limit.text()} ({limit.why})"
        return text

    def _refuse(self, shown: Any, reason: str, owner: HParam | None) -> ValueError:
        name = (owner or self).name
        return ValueError(f"Invalid {name} value: {_fmt(shown)} ({reason})")

    def _check_number(self, value: Any, shown: Any, owner: HParam | None = None) -> float | int:
        name = (owner or self).name
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"Invalid {name} value: {shown!r} (expected a number)")
        try:
            finite = math.isfinite(value)
        except OverflowError:  # an int too large for a float
            digits = len(str(shown))
            raise ValueError(
                f"Invalid {name} value: a {digits}-digit number is far too large"
            ) from None
        if not finite:
            raise self._refuse(shown, "must be finite, OptLab's limit", owner)
        if self.integer:
            if float(value) != int(value):
                raise self._refuse(shown, "must be an integer", owner)
            value = int(value)
        else:
            value = float(value)
        if not _inside(value, self.low, self.high, self.low_open, self.high_open):
            which = f"{self.name} " if owner is not None else ""
            interval = interval_text(self.low, self.high, self.low_open, self.high_open)
            reason = f"{which}must be in {interval}"
            raise self._refuse(shown, f"{reason}; {self.origin}" if self.origin else reason, owner)
        lim = self.limit
        if lim is not None and not _inside(value, lim.low, lim.high, False, False):
            which = f"{self.name}: " if owner is not None else ""
            torch_too = "; torch's constructor accepts it" if self.origin == TORCH_CHECK else ""
            raise self._refuse(
                shown, f"{which}{lim.owner}: {lim.text()} ({lim.why}){torch_too}", owner
            )
        return value

    def _check_scalar(self, value: Any, owner: HParam | None = None) -> float | int | None:
        if value is None:
            if self.optional:
                return None
            name = (owner or self).name
            which = f" ({self.name} must be a number)" if owner is not None else ""
            raise ValueError(f"Invalid {name} value: none{which or ' (expected a number)'}")
        return self._check_number(value, value, owner)

    def validate(self, value: Any) -> HValue:
        """Checks a value and returns it in canonical form.

        Raises:
            ValueError: naming the parameter, the bad value and whose rule it breaks.
        """
        kind = self.kind
        if kind == "choice":
            if value not in self.choices:
                allowed = ", ".join(_fmt(c) for c in self.choices)
                why = f"; {self.origin}" if self.origin else ""
                raise ValueError(f"Invalid {self.name} value: {value!r} (one of: {allowed}{why})")
            return value
        if kind == "bool":
            if not isinstance(value, bool):
                raise ValueError(f"Invalid {self.name} value: {value!r} (expected true or false)")
            return value
        if kind == "pair":
            if not isinstance(value, tuple | list) or len(value) != 2:
                raise ValueError(f"Invalid {self.name} value: {value!r} (expected two numbers a/b)")
            return tuple(self.part(i)._check_scalar(v, self) for i, v in enumerate(value))  # type: ignore[return-value]
        return self._check_scalar(value)

    def warnings(self, value: HValue) -> tuple[str, ...]:
        """What is unusual about a valid ``value``: one line per caution that applies."""
        if self.kind == "pair" and isinstance(value, tuple):
            return tuple(w for i, v in enumerate(value) for w in self.part(i).warnings(v))
        if isinstance(value, bool) or not isinstance(value, int | float):
            return ()
        return tuple(c.text for c in self.cautions if c.applies(value))

    def caution_texts(self) -> tuple[str, ...]:
        """Every caution's text (a pair's elements' too), for a table of what warns."""
        if self.kind == "pair":
            return tuple(dict.fromkeys(t for i in (0, 1) for t in self.part(i).caution_texts()))
        return tuple(c.text for c in self.cautions)

    def parse(self, text: str) -> HValue:
        """Parses the text form used by the CLI and share links, then validates.

        Booleans are ``true``/``false``, pairs are ``a/b``, a missing choice or
        an optional number left out is ``none``.

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
            return self.validate(
                tuple(self.part(i)._number(p, text, self) for i, p in enumerate(parts))
            )
        return self.validate(self._number(text, text))

    def _number(self, text: str, shown: str, owner: HParam | None = None) -> float | int | None:
        text = text.strip()
        if self.optional and text.lower() in ("none", ""):
            return None
        try:
            return int(text) if self.integer else float(text)
        except ValueError:
            kind = "an integer" if self.integer else "a number"
            if self.optional:
                kind += " or none"
            name = (owner or self).name
            raise ValueError(f"Invalid {name} value: {shown!r} (expected {kind})") from None

    def short(self, value: HValue) -> str:
        """A compact display form for legends: numbers to 6 significant digits."""
        if isinstance(value, tuple):
            return "/".join(self.short(v) for v in value)
        if isinstance(value, float):
            return format(value, ".6g")
        return self.format(value)

    def format(self, value: HValue) -> str:
        """The text form of a value, the inverse of `parse`."""
        if isinstance(value, tuple):
            return "/".join(_fmt(v) for v in value)
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
