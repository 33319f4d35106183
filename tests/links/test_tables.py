"""The link tables themselves: every key names a real setting, and the keys do not clash."""

from __future__ import annotations

from typing import Any

import pytest

from optlab.links import CNN, PLAYGROUND, SWEEP, CnnLink, LinkTable, SweepLink
from optlab.optim.config import OptimizerConfig
from optlab.surface.run import SurfaceRunConfig
from optlab.ui.cnn import settings as cnn_settings

SAMPLES: dict[str, tuple[LinkTable, Any]] = {
    "playground": (PLAYGROUND, SurfaceRunConfig((OptimizerConfig("adam"),))),
    "cnn": (CNN, CnnLink(cnn_settings.default_config())),
    "sweep": (SWEEP, SweepLink()),
}


def resolve(obj: Any, path: str) -> Any:
    """``problem.steps`` on a config; ``slots[].x`` reads the first slot's ``x``."""
    for part in path.split("."):
        if part.endswith("[]"):
            obj = getattr(obj, part[:-2])[0]
        else:
            assert hasattr(obj, part), f"{type(obj).__name__} has no {part!r}"
            obj = getattr(obj, part)
    return obj


@pytest.mark.parametrize("page", list(SAMPLES))
def test_every_key_names_a_setting_of_the_page(page: str) -> None:
    table, sample = SAMPLES[page]
    for field in table.fields:
        for path in field.setting.split(", "):
            resolve(sample, path)


@pytest.mark.parametrize("page", list(SAMPLES))
def test_keys_are_unique_and_page_is_reserved(page: str) -> None:
    table, _ = SAMPLES[page]
    keys = [f.key for f in table.fields]
    assert len(keys) == len(set(keys)) and "page" not in keys
    assert table.keys == (("page",) if table.page else ()) + tuple(keys)


def test_only_the_playground_has_no_page_key() -> None:
    assert [table.page for table, _ in SAMPLES.values()] == [None, "cnn", "sweep"]


def test_a_repeated_key_over_its_limit_is_refused_before_parsing() -> None:
    # "nope" is not an optimizer: the count is refused first, so no value is parsed.
    with pytest.raises(ValueError, match="opt: at most 8 optimizers, the link has 9"):
        PLAYGROUND.read({"opt": ["nope"] * 9})
    with pytest.raises(ValueError, match="unknown optimizer 'nope'"):
        PLAYGROUND.read({"opt": ["nope"]})


@pytest.mark.parametrize("page", ["playground", "cnn"])
def test_every_repeated_key_has_a_limit_checked_before_parsing(page: str) -> None:
    """A link with thousands of ``plan`` values is refused by count, not parsed (a 5000-plan
    link took 40 ms to parse before its count was checked)."""
    table, _ = SAMPLES[page]
    for field in table.fields:
        if not field.many:
            continue
        assert field.most is not None, f"{page}: {field.key} repeats without a limit"
        with pytest.raises(ValueError, match=f"{field.key}: at most {field.most} "):
            # "nope" parses as no value of any key: only the count can refuse it first.
            table.read({field.key: ["nope"] * (field.most + 1)})
