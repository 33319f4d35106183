"""Streamlit-only helpers: widgets generated from specs, session state, cached runs.

The only package under ``optlab`` that imports Streamlit; pages import it,
the engine never does.
"""
