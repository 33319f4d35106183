"""Tests of optlab.train."""
