"""Handing freed memory back to the system."""

from __future__ import annotations

import ctypes
import ctypes.util


def trim_heap() -> bool:
    """glibc's ``malloc_trim(0)``: hands the allocator's free pages back to the system
    (Linux with glibc; elsewhere nothing). Whether it ran.

    Memory a thread freed stays with glibc's arena for that thread; a process whose
    threads come and go (a job each) otherwise keeps its high-water mark.
    """
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.malloc_trim(0)
    except (OSError, AttributeError):
        return False
    return True
