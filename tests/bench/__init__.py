"""Tests of the benchmark scripts under bench/ (they run, and print what they claim)."""
