"""Streamlit-only helpers: widgets generated from specs, session state, cached runs.

The only package under ``optlab`` that imports Streamlit; pages import it,
the engine never does.
"""

import os

# The server trains in a worker thread while script threads build pages on the
# same cores. GNU OpenMP's threads spin-wait between torch's parallel regions
# by default, taking the cores those script threads need (and, under load, the
# training's own next region): passive waiting trained 1.7-3x faster in a
# server-like process on a busy 2-core machine. libgomp reads this when torch
# loads it, and this package is imported before any torch module on every
# page; an operator's own setting wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

# Plotly checks for pandas without importing it (it looks in sys.modules), so a
# session building a figure while another session's thread is still importing
# pandas would find the half-initialised module and fail. Importing it here, in
# the package every page imports first, finishes that import before any figure.
import pandas  # noqa: F401
