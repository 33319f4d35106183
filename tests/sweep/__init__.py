"""Tests of optlab.sweep."""
