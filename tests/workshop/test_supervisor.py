"""The supervisor's restarts and stops, on real short-lived processes (not replicas:
those are the failover test's)."""

from __future__ import annotations

import io
import sys
import time

from optlab.workshop.config import WorkshopConfig
from optlab.workshop.supervisor import Workshop


def test_a_child_that_keeps_dying_is_restarted_after_a_growing_pause(tmp_path):
    out = io.StringIO()
    workshop = Workshop(WorkshopConfig(1, 9000, tmp_path / "runs"), tmp_path, "haproxy", out)
    child = workshop.replicas[0]
    child.cmd = [sys.executable, "-c", "raise SystemExit(3)"]  # dies right after starting
    for delay in (1, 2):
        child.start()
        first = child.proc.pid
        child.proc.wait()
        workshop.check()
        assert out.getvalue().splitlines()[-1] == (
            f"workshop: replica1 (pid {first}) exited with status 3; restarting it in {delay} s"
        )
        workshop.check()  # not yet
        assert child.proc.pid == first
        time.sleep(delay + 0.05)
        workshop.check()
        assert (
            out.getvalue().splitlines()[-1]
            == f"workshop: replica1: restarted (pid {child.proc.pid})"
        )
        assert child.proc.pid != first
        child.proc.wait()
        child.started -= 60  # as if the restarted one had lived a while: next time at once
    workshop.check()
    assert out.getvalue().splitlines()[-2].endswith("exited with status 3; restarting it")
    assert "restarted" in out.getvalue().splitlines()[-1]
    workshop.stop()
    assert out.getvalue().splitlines()[-1] == "workshop: stopped"
    workshop.check()  # stopping: nothing is restarted
    assert out.getvalue().splitlines()[-1] == "workshop: stopped"


def test_a_child_that_ignores_sigterm_is_killed_after_its_grace(tmp_path):
    workshop = Workshop(
        WorkshopConfig(1, 9000, tmp_path / "runs"), tmp_path, "haproxy", io.StringIO()
    )
    child = workshop.replicas[0]
    child.cmd = [
        sys.executable,
        "-c",
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        "print('up', flush=True); time.sleep(60)",
    ]
    child.start()
    while "up" not in child.tail():
        time.sleep(0.05)
    child.terminate()
    child.wait_stopped(grace_s=0.5)
    assert child.proc.returncode == -9
