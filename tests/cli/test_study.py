"""``python -m optlab study``: bad input, an unreachable cluster, and a real 2-node Ray
cluster on 127.0.0.1 (``ray start --head`` plus a second node with its own temp dir)
running a study across both nodes, interrupted with Ctrl-C and resumed."""

from __future__ import annotations

import contextlib
import io
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from optlab.cli import main
from optlab.study.config import MAX_SEEDS, MAX_TRIALS
from tests.support.resources import ROOT as REPO

RAY = Path(sys.executable).parent / "ray"
TINY = ["--synthetic", "--train-limit", "64", "--test-limit", "32", "--batch-size", "16"]
TWO = ["--opt", "sgd:momentum=0.9", "--opt", "adam", "--space", "lr=1e-3:0.3:log"]


def study(*argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "optlab", "study", *argv],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        timeout=240,
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["--space", "lr=1e-3:1:log"], "--opt: name at least one optimizer"),
        (["--opt", "sgd"], "--space: give at least an lr range"),
        ([*TWO, "--space", "nonsense=1:2:lin"], "SGD has no hyperparameter nonsense"),
        ([*TWO, "--space", "momentum=0.5:0.9:lin"], "Adam has no hyperparameter momentum"),
        (["--opt", "sgd", "--space", "lr=0.1:0.1:log"], "the range 0.1:0.1 is empty"),
        (["--opt", "sgd", "--space", "lr=1:1e-3:log"], "the range 1:0.001 is inverted"),
        (
            ["--opt", "sgd", "--space", "lr=1e-3:1:log", "--space", "weight_decay=0:1e-2:log"],
            "a log range must stay above 0",
        ),
        (
            ["--opt", "sgd", "--space", "lr=1e-3:1:log", "--trials", str(MAX_TRIALS + 1)],
            f"--trials: expected a whole number in [1, {MAX_TRIALS}]",
        ),
        (
            ["--opt", "sgd", "--space", "lr=1e-3:1:log", "--seeds", str(MAX_SEEDS + 1)],
            f"--seeds: expected a whole number in [1, {MAX_SEEDS}]",
        ),
        (
            ["--opt", "sgd", "--space", "lr=1e-3:1:log", "--resume"],
            "--resume: name the study's folder",
        ),
        (["--resume", "--dir", "/nonexistent/study"], "holds no study"),
        (
            ["--opt", "sgd", "--space", "lr=1e-3:1:log", "--ray-address", "127.0.0.1:1"],
            "--ray-address 127.0.0.1:1: no Ray cluster answers there",
        ),
        (
            ["--opt", "sgd", "--space", "lr=1e-3:1:log", "--ray-address", "nowhere"],
            "--ray-address nowhere: expected HOST:PORT",
        ),
    ],
)
def test_bad_input_exits_2_with_one_line(argv, fragment):
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = main(["study", *TINY, "--steps", "2", *argv])
    lines = err.getvalue().strip().splitlines()
    assert code == 2 and len(lines) == 1, err.getvalue()
    assert fragment in lines[0]


def _cluster_pids(dirs: list[str]) -> list[int]:
    """Processes of the test's own cluster: those naming its temp dirs, and their children."""
    ours, parents = set(), {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmd = (entry / "cmdline").read_bytes().decode(errors="replace")
            parents[int(entry.name)] = int(
                (entry / "stat").read_text().rsplit(")", 1)[1].split()[1]
            )
        except (OSError, IndexError, ValueError):
            continue
        if any(d in cmd for d in dirs):
            ours.add(int(entry.name))
    return sorted(ours | {pid for pid, ppid in parents.items() if ppid in ours})


def _stop(dirs: list[str]) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in _cluster_pids(dirs):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + 3
        while _cluster_pids(dirs) and time.monotonic() < deadline:
            time.sleep(0.2)


def _ray_start(argv: list[str], env: dict[str, str]) -> None:
    done = subprocess.run(argv, env=env, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"{' '.join(argv[1:])} failed:\n{done.stdout}\n{done.stderr}"


@pytest.fixture(scope="module")
def cluster() -> Iterator[tuple[str, dict[str, str]]]:
    """A head node and a second node, one CPU each, token authentication on."""
    # The cluster's own token, given to its nodes and to the CLI (a fresh machine has
    # no ~/.ray/auth_token, and `ray start` does not make one).
    token = secrets.token_hex(32)
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": token}
    env["RAY_USAGE_STATS_ENABLED"] = "0"
    assert "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER" not in env  # a local Ray's switch, never leaked
    port = _free_port()
    dirs = [tempfile.mkdtemp(prefix="olh-"), tempfile.mkdtemp(prefix="olw-")]
    common = ["--num-cpus", "1", "--node-ip-address", "127.0.0.1", "--disable-usage-stats"]
    try:
        head = [str(RAY), "start", "--head", "--port", str(port), "--include-dashboard", "false"]
        _ray_start([*head, *common, "--temp-dir", dirs[0]], env)
        worker = [str(RAY), "start", "--address", f"127.0.0.1:{port}", *common]
        _ray_start([*worker, "--temp-dir", dirs[1]], env)
        yield f"127.0.0.1:{port}", env
    finally:
        _stop(dirs)


def test_a_study_runs_across_both_nodes_of_a_cluster(cluster, tmp_path):
    address, env = cluster
    out = tmp_path / "study.json"
    folder = tmp_path / "s"
    done = study(
        *TINY,
        "--steps",
        "4",
        "--eval-every",
        "2",
        *TWO,
        "--trials",
        "2",
        "--ray-address",
        address,
        "--dir",
        str(folder),
        "--out",
        str(out),
        env=env,
    )
    assert done.returncode == 0, done.stderr
    doc = json.loads(out.read_text())
    assert doc["engine"]["name"] == "ray" and doc["engine"]["nodes"] == 2
    assert doc["engine"]["cpus"] == 2 and doc["engine"]["version"]
    nodes = {t["node"] for o in doc["optimizers"] for t in o["trials"]}
    assert len(nodes) == 2, nodes
    assert sum("trial " in line for line in done.stderr.splitlines()) == 4
    # --resume of a finished study trains nothing and says so.
    again = study(
        "--resume", "--dir", str(folder), "--synthetic", "--ray-address", address, env=env
    )
    assert again.returncode == 0, again.stderr
    assert "resuming: 4 of 4 trials already finished" in again.stderr
    assert "trial " not in again.stderr
    assert json.loads((folder / "summary.json").read_text())["optimizers"] == doc["optimizers"]


def test_ctrl_c_keeps_finished_trials_and_resume_runs_the_rest(cluster, tmp_path):
    address, env = cluster
    folder = tmp_path / "s"
    argv = [
        sys.executable,
        "-m",
        "optlab",
        "study",
        *TINY,
        "--steps",
        "30",
        "--eval-every",
        "10",
        *TWO,
        "--trials",
        "4",
        "--ray-address",
        address,
        "--dir",
        str(folder),
    ]
    proc = subprocess.Popen(argv, cwd=REPO, env=env, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    for line in proc.stderr:
        if line.startswith("trial 2/8"):
            break
    proc.send_signal(signal.SIGINT)
    rest = proc.communicate(timeout=120)[1]
    assert proc.returncode == 130, rest
    assert "continue with --dir" in rest
    kept = len(list((folder / "trials").glob("*.json")))
    assert 2 <= kept < 8
    resumed = study(
        "--resume", "--dir", str(folder), "--synthetic", "--ray-address", address, env=env
    )
    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming: {kept} of 8 trials already finished" in resumed.stderr
    assert sum(line.startswith("trial ") for line in resumed.stderr.splitlines()) == 8 - kept
    assert len(list((folder / "trials").glob("*.json"))) == 8
