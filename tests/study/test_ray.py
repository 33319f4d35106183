"""Studies on a real local Ray: the same numbers as in-process, streamed back, a killed
worker's trial retried, servers on the loopback only. One Ray for the module."""

from __future__ import annotations

import os
import signal
import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest

from optlab.study.engine import InlineEngine, RayEngine
from optlab.study.run import run_study
from optlab.study.store import StudyFolder
from tests.study.test_run import DATA_INFO, STUDY

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def engine():
    engine = RayEngine(local_cpus=2)
    engine.start()
    yield engine
    engine.shutdown()


@pytest.fixture(scope="module")
def data():
    from optlab.train.data import synthetic_data

    return synthetic_data((64, 32), 0, "as asked by --synthetic")


def _study(tmp_path: Path, name: str, cfg, data, engine, **kwargs):
    folder = StudyFolder(tmp_path / name)
    folder.start(cfg, DATA_INFO)
    return run_study(cfg, data, folder, engine, DATA_INFO, **kwargs)


NUMBERS = ("id", "hparams", "status", "final_test_acc", "final_test_loss", "best_test_acc")


def _trials(doc):
    return [{k: t[k] for k in NUMBERS} for opt in doc["optimizers"] for t in opt["trials"]]


def test_a_local_ray_listens_on_the_loopback_with_token_authentication(engine):
    import ray

    info = engine.info()
    assert info["name"] == "ray" and info["version"] == ray.__version__
    assert info["address"].startswith("127.0.0.1:") and info["nodes"] == 1 and info["cpus"] == 2
    assert [n["NodeManagerAddress"] for n in ray.nodes() if n["Alive"]] == ["127.0.0.1"]
    assert os.environ.get("RAY_AUTH_MODE", "token") == "token"
    assert engine.started_s is not None and engine.started_s > 0
    # The single-machine switch was only for starting it: nothing this process starts
    # later (`ray start` joining a cluster) inherits it.
    assert "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER" not in os.environ


def test_trials_on_ray_equal_the_same_trials_in_this_process(tmp_path, engine, data):
    seen = []
    doc = _study(tmp_path, "ray", STUDY, data, engine, on_trial=seen.append)
    # Results stream back one by one as trials finish.
    assert [p.done for p in seen] == list(range(1, STUDY.n_trials + 1))
    assert doc["engine"]["name"] == "ray" and doc["trials_done"] == STUDY.n_trials
    node = doc["optimizers"][0]["trials"][0]["node"]
    assert len(node) > 8 and all(t["node"] == node for t in doc["optimizers"][1]["trials"])
    inline = _study(tmp_path, "inline", STUDY, data, InlineEngine())
    assert _trials(doc) == _trials(inline)


def _kill_first_trial_worker(killed: list[int], stop: threading.Event) -> None:
    """SIGKILLs the first Ray worker seen running a trial (its process title)."""
    while not stop.is_set():
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                title = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if title.startswith(b"ray::_remote_trial"):
                os.kill(int(entry.name), signal.SIGKILL)
                killed.append(int(entry.name))
                return
        time.sleep(0.01)


def test_a_worker_killed_mid_trial_loses_nothing(tmp_path, engine, data):
    cfg = replace(STUDY, base=replace(STUDY.base, steps=40), seeds=1)
    killed: list[int] = []
    stop = threading.Event()
    killer = threading.Thread(target=_kill_first_trial_worker, args=(killed, stop), daemon=True)
    killer.start()
    try:
        doc = _study(tmp_path, "killed", cfg, data, engine)
    finally:
        stop.set()
        killer.join()
    assert killed, "no trial was seen running"
    assert doc["trials_done"] == cfg.n_trials
    assert all(t["status"] != "failed" for o in doc["optimizers"] for t in o["trials"])
    # The retried trial trained from scratch: the same numbers as never killed.
    inline = _study(tmp_path, "inline", cfg, data, InlineEngine())
    assert _trials(doc) == _trials(inline)
