"""Tests of optlab.optim."""
