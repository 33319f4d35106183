"""How every table, note and label writes a number.

One place, so a diverged loss reads ``2.105e+11`` (not ``210500000000``) and
a missing value reads as what it means ("not reached") on every page, in the
CLI and in exports' human-readable parts.
"""

from __future__ import annotations

import math
import numbers

#: Significant digits of a real number in tables and labels.
DIGITS = 4
#: Integers up to this many digits are written whole, with thousands separators.
WHOLE_DIGITS = 9


def number_text(value: float | int | None, *, missing: str = "—", digits: int = DIGITS) -> str:
    """``value`` as a table cell shows it.

    Args:
        value: The number; None when there is none (say, a target never reached).
        missing: What None reads as, in the column's own words ("not reached").
        digits: Significant digits of a real number.

    Returns:
        Integers whole with thousands separators (``12,500``) up to `WHOLE_DIGITS`
        digits; reals to ``digits`` significant digits, in scientific notation
        past them (``2.105e+11``, ``3.2e-07``); ``inf``, ``-inf`` and ``nan`` as
        such; ``missing`` for None.
    """
    if value is None:
        return missing
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, numbers.Integral):
        whole = int(value)
        if len(str(abs(whole))) <= WHOLE_DIGITS:
            return f"{whole:,}"
        return f"{whole:.{digits}g}"
    real = float(value)
    if math.isnan(real):
        return "nan"
    if math.isinf(real):
        return "inf" if real > 0 else "-inf"
    return f"{real:.{digits}g}"
