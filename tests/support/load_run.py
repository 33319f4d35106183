"""Runs ``python -m bench.load`` end to end for a test, in its own process group."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from tests.support.resources import ROOT


def run_load(args: list[str], timeout: float = 450) -> tuple[str, str]:
    """The load test's report and log for ``args``.

    Fails the test when it ran past ``timeout`` seconds (its servers stopped
    with it) or when the harness itself broke: an exit status other than 0 or
    1 (the timing targets depend on the machine).
    """
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.load", *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        # SIGTERM first: the harness then stops its servers (replicas run in
        # sessions of their own, out of this process group).
        proc.terminate()
        try:
            out, err = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, err = proc.communicate()
        pytest.fail(f"the run took over {timeout:.0f} s\n{out}\n{err[-3000:]}")
    assert proc.returncode in (0, 1), f"rc {proc.returncode}\n{out}\n{err[-3000:]}"
    return out, err
