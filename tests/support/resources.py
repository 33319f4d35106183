"""Where the tests find things: the checkout, the app, the CIFAR-10 subset, CI's rules."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from optlab.optim import registry
from optlab.optim.spec import OptimizerSpec

ROOT = Path(__file__).resolve().parents[2]
APP = str(ROOT / "app.py")
ARTIFACTS = ROOT / "artifacts"
#: The real-format CIFAR-10 subset beside the checkout (never copied into it).
CIFAR_SUBSET = ROOT.parent / "shared" / "data" / "cifar10-subset" / "cifar-10-batches-py"


def under_ci() -> bool:
    """Whether this run is CI's, where nothing may be skipped for lack of a resource."""
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require_cifar_subset() -> Path:
    """The shared subset's folder: a skip locally when it is missing, a failure under CI."""
    if not (CIFAR_SUBSET / "test_batch").is_file():
        message = f"CIFAR-10 subset not found at {CIFAR_SUBSET}"
        if under_ci():
            pytest.fail(f"{message}; it is required under CI")
        pytest.skip(message)
    return CIFAR_SUBSET


def register(monkeypatch: pytest.MonkeyPatch, spec: OptimizerSpec) -> OptimizerSpec:
    """Adds ``spec`` to the optimizer registry for one test, as a loaded plugin would be."""
    monkeypatch.setitem(registry._by_key(), spec.key, spec)
    return spec
