"""The workshop tests' HAProxy: Debian's, skipped where it is missing (failed under CI)."""

from __future__ import annotations

import shutil

import pytest

from optlab.workshop.supervisor import HAPROXY
from tests.support.resources import under_ci


@pytest.fixture(scope="session")
def haproxy() -> str:
    """The HAProxy executable (`make workshop` installs it as root)."""
    found = shutil.which(HAPROXY)
    if found is None:
        message = f"HAProxy not found at {HAPROXY} (apt-get install haproxy)"
        if under_ci():
            pytest.fail(f"{message}; the workshop tests must run under CI")
        pytest.skip(message)
    return found
