"""Tests of optlab.rooms."""
