"""Tests of optlab.script."""
