"""How numbers read in tables: whole integers, significant digits, named missing values."""

from __future__ import annotations

import math

import numpy as np
import pytest

from optlab.numbers import number_text


@pytest.mark.parametrize(
    ("value", "kwargs", "text"),
    [
        (None, {}, "—"),
        (None, {"missing": "not reached"}, "not reached"),
        (12500, {}, "12,500"),
        (np.int64(7), {}, "7"),
        (-3, {}, "-3"),
        (123_456_789, {}, "123,456,789"),
        (210_500_000_000, {}, "2.105e+11"),
        (210500000000.0, {}, "2.105e+11"),
        (0.1234567, {}, "0.1235"),
        (3.2e-07, {}, "3.2e-07"),
        (np.float32(0.5), {}, "0.5"),
        (0.0, {}, "0"),
        (math.inf, {}, "inf"),
        (-math.inf, {}, "-inf"),
        (math.nan, {}, "nan"),
        (True, {}, "true"),
        (1 / 3, {"digits": 2}, "0.33"),
    ],
)
def test_number_text(value: object, kwargs: dict, text: str) -> None:
    assert number_text(value, **kwargs) == text  # type: ignore[arg-type]


def test_a_diverged_loss_is_never_written_in_full() -> None:
    # The example: a loss of 2x10^11 printed as twelve digits.
    assert len(number_text(2.105e11)) < 12
