"""The pages' turns at the interpreter (`optlab.turns`): a page script runs
inside `page_turn`, and a fragment rerun, which runs only its function, inside
the turn `fragment` adds."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable
from typing import Any

import streamlit as st

from optlab import turns


def page_turn() -> contextlib.AbstractContextManager:
    """Holds one of the server's turns for a page's script run (`app.py`)."""
    return turns.turn()


def fragment(func: Callable | None = None, **kwargs: Any) -> Any:
    """``st.fragment`` whose reruns hold a turn too (within a page's run, the page's
    turn serves). Takes ``st.fragment``'s arguments."""

    def decorate(f: Callable) -> Callable:
        @functools.wraps(f)  # Streamlit names a fragment by its module and qualified name
        def in_turn(*args: Any, **kw: Any) -> Any:
            with turns.turn():
                return f(*args, **kw)

        return st.fragment(in_turn, **kwargs)

    return decorate(func) if func is not None else decorate
