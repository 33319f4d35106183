"""The results table's columns: widths that fit a 1024-px screen, wrapping for the rest.

Streamlit's data grid draws on a canvas and cuts a cell's text that is wider
than its column (an ellipsis), headers included. Its columns are sized here
instead: short headers (each column's help says it in full), the number
columns as wide as their longest word, the optimizer column (labels can be
long) the rest, and where a text still needs more than one line the rows
grow tall enough to wrap it (the grid wraps text only in rows taller than
4 rem). Six columns fit at 1024 px with the sidebar open; each optimizer's
compute time per step goes in a line under the table.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import streamlit as st

#: Width the table gets on a 1024-px-wide screen with the sidebar open.
TABLE_PX = 560
#: Width of an average character of the grid's 14-px font (digits, lower case).
CHAR_PX = 7.4
#: A cell's left and right padding together.
PAD_PX = 18
#: One line of wrapped text, and a row's padding above and below its lines.
LINE_PX = 20
ROW_PAD_PX = 14
#: The grid's own row height (one line), and the least that lets it wrap.
ONE_LINE_PX = 35
WRAP_MIN_PX = 66
#: The narrowest and widest a number column gets.
MIN_COLUMN_PX, MAX_COLUMN_PX = 60, 120
#: The narrowest the optimizer column gets.
MIN_NAME_PX = 120
NAME = "optimizer"
#: The page's columns (keys of `optlab.train.report.results_cells`) and their headers.
HEADERS = {
    NAME: "optimizer",
    "final_test_acc": "test acc",
    "best_test_acc": "best acc",
    "test_loss": "test loss",
    "train_loss": "train loss",
    "status": "status",
}


def _text_px(text: str) -> float:
    return len(text) * CHAR_PX + PAD_PX


def widths(rows: Sequence[Mapping[str, str]]) -> dict[str, int]:
    """Pixel widths: each number column its header (which cannot wrap) and its
    longest word (a value wraps only at spaces), the optimizer column what is left."""
    out: dict[str, int] = {}
    for key, header in HEADERS.items():
        if key == NAME:
            continue
        words = [w for r in rows for w in r[key].split()]
        longest = max([_text_px(header), *(_text_px(w) for w in words)])
        out[key] = math.ceil(min(max(longest, MIN_COLUMN_PX), MAX_COLUMN_PX))
    out[NAME] = max(MIN_NAME_PX, TABLE_PX - sum(out.values()))
    return out


def _lines(text: str, width: int) -> int:
    """Lines ``text`` takes in a column ``width`` px wide, wrapped at spaces."""
    room, lines, used = width - PAD_PX, 1, 0.0
    for word in text.split():
        need = len(word) * CHAR_PX
        if used and used + CHAR_PX + need > room:
            lines, used = lines + 1, need
        else:
            used += need + (CHAR_PX if used else 0)
        lines += max(0, math.ceil(need / room) - 1)
    return lines


def result_columns(
    rows: Sequence[Mapping[str, str]], helps: Mapping[str, str]
) -> dict[str, object]:
    """`st.dataframe`'s column config for the results table's text ``rows``."""
    sized = widths(rows)
    return {
        key: st.column_config.TextColumn(header, width=sized[key], help=helps.get(key))
        for key, header in HEADERS.items()
    }


def row_height(rows: Sequence[Mapping[str, str]]) -> int | None:
    """Tall enough rows for the longest wrapped cell; None (the grid's own) for one line."""
    sized = widths(rows)
    lines = max((_lines(r[k], sized[k]) for r in rows for k in HEADERS), default=1)
    if lines <= 1:
        return None
    return max(WRAP_MIN_PX, lines * LINE_PX + ROW_PAD_PX)
