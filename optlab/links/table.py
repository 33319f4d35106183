"""The machinery of share links: a table of query keys, and the text forms of values.

A `LinkTable` lists a page's `LinkField`s; it reads a link (strictly: a
value over `MAX_VALUE_LENGTH` characters, a single-valued key given twice,
or more repeated values than the page can show is refused, naming the key,
before anything is parsed) and writes one. The parse and format functions
here are shared by every page's table and the CLI.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from optlab.caps import CIFAR_TEST_IMAGES, CIFAR_TRAIN_IMAGES
from optlab.surface.surfaces import CUSTOM, Bounds, Point, get_surface

#: Longest accepted value of one parameter (a formula is at most 500).
MAX_VALUE_LENGTH = 1000
Params = dict[str, str | list[str]]
T = TypeVar("T")


def _numbers(text: str, count: int, what: str, example: str) -> list[float]:
    parts = [p.strip() for p in text.split(",")]
    try:
        values = [float(p) for p in parts]
    except ValueError:
        values = []
    if len(values) != count or not all(math.isfinite(v) for v in values):
        raise ValueError(f"{what}: expected {count} finite numbers like {example}, got {text!r}")
    return values


def parse_point(text: str, what: str = "start") -> Point:
    """Parses ``X,Y``."""
    x, y = _numbers(text, 2, what, "-1.5,2")
    return (x, y)


def format_point(point: Point) -> str:
    """The inverse of `parse_point`."""
    return ",".join(repr(float(v)) for v in point)


def parse_bounds(text: str) -> Bounds:
    """Parses ``XMIN,XMAX,YMIN,YMAX``."""
    x0, x1, y0, y1 = _numbers(text, 4, "bounds", "-5,5,-5,5")
    return ((x0, x1), (y0, y1))


def format_bounds(bounds: Bounds) -> str:
    """The inverse of `parse_bounds`."""
    return ",".join(repr(float(v)) for pair in bounds for v in pair)


def parse_int(text: str, what: str) -> int:
    """Parses a whole number, naming the field when it is not one."""
    try:
        return int(text.strip())
    except ValueError:
        raise ValueError(f"{what}: expected a whole number, got {text!r}") from None


def parse_float(text: str, what: str) -> float:
    """Parses a finite number, naming the field when it is not one."""
    try:
        value = float(text.strip())
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise ValueError(f"{what}: expected a number, got {text!r}")
    return value


def parse_bool(text: str, what: str) -> bool:
    """``true`` or ``false``."""
    value = text.strip().lower()
    if value not in ("true", "false"):
        raise ValueError(f"{what}: true or false, got {value!r}")
    return value == "true"


def parse_key(text: str, what: str) -> str:
    """A registry key: trimmed and lower-cased (the registry checks it)."""
    return text.strip().lower()


def parse_text(text: str, what: str) -> str:
    """Text as it is (a formula; the config checks it)."""
    return text


def parse_surface_values(surface: str, items: Sequence[str]) -> tuple[tuple[str, float], ...]:
    """Parses ``name=value`` parameters of a registered surface."""
    if surface == CUSTOM:
        if items:
            raise ValueError("surface parameters do not apply to a custom formula")
        return ()
    spec = get_surface(surface)
    by_name = {hp.name: hp for hp in spec.params}
    values = {}
    for item in items:
        name, sep, raw = item.partition("=")
        name = name.strip()
        if not sep:
            raise ValueError(f"surface parameter {item!r}: expected name=value")
        if name not in by_name:
            known = ", ".join(by_name) or "none"
            raise ValueError(f"{spec.label} has no parameter {name!r} (known: {known})")
        if name in values:
            raise ValueError(f"surface parameter {name} is given twice")
        values[name] = float(by_name[name].parse(raw))
    return tuple(values.items())


def parse_subset(text: str, what: str) -> int | None:
    """A subset size: ``all``, or a whole number up to CIFAR-10's own size."""
    if text.strip().lower() == "all":
        return None
    most = CIFAR_TRAIN_IMAGES if what == "train" else CIFAR_TEST_IMAGES
    # The page's inputs stop at CIFAR-10's size; a larger subset would be
    # replaced there by the input's minimum, silently.
    value = parse_int(text, what)
    if not 1 <= value <= most:
        raise ValueError(f"{what}: expected a whole number in [1, {most}] or all, got {value}")
    return value


def format_subset(value: int | str) -> str:
    """The inverse of `parse_subset` (None, "all", is written by the table's getter)."""
    return str(value)


# Limits a page's widgets set: Streamlit would clamp a value beyond them, silently.


def within(low: float, high: float | None) -> Callable[[str, Any], None]:
    """A limit check: ``low <= value <= high`` (no upper limit for None)."""

    def check(what: str, value: Any) -> None:
        if value < low or (high is not None and value > high):
            allowed = f"in [{low}, {high}]" if high is not None else f"at least {low:g}"
            raise ValueError(f"{what}: must be {allowed}, got {value}")

    return check


def page_takes(low: float, high: float | None) -> Callable[[str, Any], None]:
    """A widget's range as a limit check, worded as the page's own."""

    def check(what: str, value: Any) -> None:
        if value < low or (high is not None and value > high):
            allowed = f"{low:g} to {high:g}" if high is not None else f"at least {low:g}"
            raise ValueError(f"{what}: the page takes {allowed}, got {value:g}")

    return check


#: `LinkField.counted` of a key given once per optimizer (``plan``, ``clr``).
PER_OPTIMIZER = "values, one per optimizer"


@dataclass(frozen=True)
class LinkField:
    """One query key of a page's share link.

    Attributes:
        key: The query key.
        setting: The setting it carries: the attribute path on the table's object
            (``problem.steps``; ``config.slots[].optimizer`` for one per slot;
            several, comma-separated, when one key carries them together).
        parse: ``parse(text, key)`` reads one value; raises ValueError naming the key.
        format: Writes one value (the inverse of ``parse``).
        get: Reads the value (or, with ``many``, the list of values) from the object
            the table encodes; None leaves the key out of the link.
        many: The key repeats (one value per optimizer, say).
        most: With ``many``: how many values a link may carry, checked before any is
            parsed (a hostile link may carry thousands).
        counted: What ``most`` counts, for its message.
        check: ``check(key, value)`` applies a limit beyond what the config checks
            (a widget's range), with a message naming the key.
    """

    key: str
    setting: str
    parse: Callable[[str, str], Any]
    format: Callable[[Any], str]
    get: Callable[[Any], Any]
    many: bool = False
    most: int | None = None
    counted: str = "optimizers"
    check: Callable[[str, Any], None] | None = None


def link_readers(
    params: Mapping[str, Sequence[str]],
) -> tuple[Callable[[str], list[str]], Callable[[str], str | None]]:
    """``values(key)`` and ``one(key)`` over a link's query parameters.

    ``values`` gives every value of a key, ``one`` its single value or None;
    both refuse a value over `MAX_VALUE_LENGTH` characters and ``one`` a key
    given twice, with a ValueError naming the key.
    """

    def values(key: str) -> list[str]:
        got = list(params.get(key, ()))
        for v in got:
            if len(v) > MAX_VALUE_LENGTH:
                raise ValueError(f"{key}: value too long ({len(v)} characters)")
        return got

    def one(key: str) -> str | None:
        got = values(key)
        if len(got) > 1:
            raise ValueError(f"{key}: given {len(got)} times, expected once")
        return got[0] if got else None

    return values, one


@dataclass(frozen=True)
class LinkTable(Generic[T]):
    """A page's share link: its `LinkField`s, and how they make the page's settings.

    Attributes:
        page: The ``page`` key's value (None for the home page, whose link has none).
        fields: The keys, in the order a link lists them (and they are read).
        build: Makes the page's settings from the read values (absent keys are
            missing from the mapping), validated by their own classes.
    """

    page: str | None
    fields: tuple[LinkField, ...]
    build: Callable[[dict[str, Any]], T] = field(compare=False)

    @property
    def keys(self) -> tuple[str, ...]:
        """Every query key the page knows."""
        return (*(("page",) if self.page else ()), *(f.key for f in self.fields))

    def read(self, params: Mapping[str, Sequence[str]]) -> dict[str, Any]:
        """The values a link gives, parsed and checked field by field.

        Raises:
            ValueError: naming the first bad key.
        """
        values, one = link_readers(params)
        out: dict[str, Any] = {}
        for f in self.fields:
            if f.many:
                texts = values(f.key)
                if not texts:
                    continue
                if f.most is not None and len(texts) > f.most:
                    raise ValueError(
                        f"{f.key}: at most {f.most} {f.counted}, the link has {len(texts)}"
                    )
                parsed = [f.parse(text, f.key) for text in texts]
            else:
                text = one(f.key)
                if text is None:
                    continue
                parsed = f.parse(text, f.key)
            if f.check is not None:
                for value in parsed if f.many else [parsed]:
                    f.check(f.key, value)
            out[f.key] = parsed
        return out

    def from_params(self, params: Mapping[str, Sequence[str]]) -> T:
        """The page's settings from a link (see `read`)."""
        return self.build(self.read(params))

    def to_params(self, obj: T) -> Params:
        """The link of ``obj``: each field's text, absent where ``get`` gives None."""
        out: Params = {"page": self.page} if self.page else {}
        for f in self.fields:
            value = f.get(obj)
            if value is None:
                continue
            out[f.key] = [f.format(v) for v in value] if f.many else f.format(value)
        return out
