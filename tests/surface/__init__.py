"""Tests of optlab.surface."""
