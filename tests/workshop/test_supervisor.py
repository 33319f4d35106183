"""The supervisor's restarts and stops, on real short-lived processes (not replicas:
those are the failover test's)."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
import threading
import time
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from optlab.workshop.config import WorkshopConfig
from optlab.workshop.supervisor import Workshop, warm_assets


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


def test_children_share_the_launchers_session_in_process_groups_of_their_own(tmp_path):
    """One session for the whole workshop (one autogroup, where the kernel has them:
    a training's nice value then yields to every replica's pages), and a process
    group each, which a Ctrl-C in the presenter's terminal does not reach."""
    workshop = Workshop(
        WorkshopConfig(2, 9000, tmp_path / "runs"), tmp_path, "haproxy", io.StringIO()
    )
    children = [*workshop.replicas, workshop.proxy]
    for child in children:
        # The session, group and autogroup are set before `Popen` returns.
        child.cmd = [sys.executable, "-c", "import time; time.sleep(60)"]
        child.start()
    try:
        for child in children:
            pid = child.proc.pid
            assert os.getsid(pid) == os.getsid(0), child.name
            assert os.getpgid(pid) == pid != os.getpgid(0), child.name
            group = Path(f"/proc/{pid}/autogroup")
            if group.exists():
                # "/autogroup-<id> nice <n>", or an empty line for a process in the
                # kernel's default group (a runner that never started a session of
                # its own): equal lines either way when the launcher's group is shared.
                same = Path("/proc/self/autogroup").read_text().strip()
                assert group.read_text().strip() == same, child.name
    finally:
        for child in children:
            child.terminate()
            child.wait_stopped(grace_s=5)


def test_replicas_take_the_extra_environment_options_and_launcher(tmp_path):
    """What the load test (`bench.load --replicas`) uses to run the replicas through its
    probe: every replica gets the same extra variables and options, and its own launcher
    command ahead of ``run app.py``."""
    cfg = WorkshopConfig(2, 9000, tmp_path / "runs")
    workshop = Workshop(
        cfg,
        tmp_path,
        "haproxy",
        io.StringIO(),
        env={"OPTLAB_CACHE_DIR": "/elsewhere"},
        extra_args=["--server.disconnectedSessionTTL=5"],
        launcher=lambda name: ["wrapper", f"{name}.json"],
    )
    for name, child in zip(cfg.names, workshop.replicas, strict=True):
        assert child.cmd[:4] == ["wrapper", f"{name}.json", "run", "app.py"]
        assert child.cmd[-1] == "--server.disconnectedSessionTTL=5"
        assert child.env["OPTLAB_CACHE_DIR"] == "/elsewhere"
        # The workshop's own variables are kept, and the cores are shared out.
        assert child.env["OPTLAB_RUNS_DIR"] == str(tmp_path / "runs")
        assert child.env["OMP_NUM_THREADS"] == str(max(1, (os.cpu_count() or 1) // 2))
        assert child.env["OPTLAB_CAP_TRAINING_NICE"] == "10"
        assert child.env["OPTLAB_CAP_ENGINE_PROCESS"] == "1"
    plain = Workshop(cfg, tmp_path, "haproxy", io.StringIO(), python="/py")
    assert plain.replicas[0].cmd[:5] == ["/py", "-m", "streamlit", "run", "app.py"]
    assert plain.replicas[0].cmd[-1] == "--browser.gatherUsageStats=false"


def test_the_presenters_own_settings_are_kept(tmp_path, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    monkeypatch.setenv("OPTLAB_CAP_TRAINING_NICE", "0")
    monkeypatch.setenv("OPTLAB_CAP_ENGINE_PROCESS", "0")
    workshop = Workshop(WorkshopConfig(4, 9000, tmp_path / "runs"), tmp_path, "haproxy")
    assert {c.env["OMP_NUM_THREADS"] for c in workshop.replicas} == {"3"}
    assert {c.env["OPTLAB_CAP_TRAINING_NICE"] for c in workshop.replicas} == {"0"}
    assert {c.env["OPTLAB_CAP_ENGINE_PROCESS"] for c in workshop.replicas} == {"0"}


def test_torch_takes_its_thread_count_from_the_variable_the_replicas_get():
    """The sharing out works only while torch reads OMP_NUM_THREADS at start-up."""
    code = "import torch; print(torch.get_num_threads())"
    for threads in ("1", "2"):
        env = {**os.environ, "OMP_NUM_THREADS": threads}
        done = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
        )
        assert done.stdout.strip() == threads, done.stderr


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


def test_filling_the_asset_cache_fetches_every_file_and_names_those_that_failed(tmp_path):
    """`warm_assets` asks for each file of the folder under ``/static/`` (here from a
    plain file server on 127.0.0.1 standing in for HAProxy), counts what came, and
    names what did not."""
    served = tmp_path / "root" / "static"
    (served / "js").mkdir(parents=True)
    (served / "js" / "index.abc.js").write_text("x" * 10)
    (served / "index.def.css").write_text("y" * 5)
    listed = tmp_path / "listed"
    shutil.copytree(served, listed)
    (listed / "js" / "gone.ghi.js").write_text("not served")
    server = ThreadingHTTPServer(
        ("127.0.0.1", 0), partial(_Quiet, directory=str(tmp_path / "root"))
    )
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        files, size, failed = warm_assets(f"http://127.0.0.1:{server.server_port}", listed)
    finally:
        server.shutdown()
        server.server_close()
    assert (files, size) == (2, 15)
    assert failed == ["js/gone.ghi.js: HTTP Error 404: File not found"]
