"""Tests of optlab.links."""
