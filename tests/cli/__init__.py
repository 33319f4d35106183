"""Tests of optlab.cli."""
