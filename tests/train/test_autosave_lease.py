"""One runs folder shared by several server processes (a workshop's replicas).

A run saved as running by a live process is never offered elsewhere; a
killed process's run is offered at once (its pid is gone on this machine),
or after the lease where its pid cannot be checked (another machine or
container); claiming it is exclusive and makes it the claimer's.
Real processes: a child Python process saves a run and is SIGKILLed.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from optlab.train.autosave import LEASE_S, META, RUNNING, SERVERS, RunError, RunStore
from optlab.train.run import TrainingSession
from tests.support.resources import ROOT
from tests.support.training import tiny_data, tiny_train_config

CHOICE = {"source": "synthetic", "dir": ""}
RUN = "20261204-120000-aaaaaa"

#: A replica: saves a running run as ``argv[2]``, says so, then keeps its job alive.
_REPLICA = textwrap.dedent(
    """
    import sys, time
    from optlab.train.autosave import RunStore
    from optlab.train.run import TrainingSession
    from tests.support.training import tiny_data, tiny_train_config
    session = TrainingSession(tiny_train_config("sgd:lr=0.01", steps=6), tiny_data(64, 16))
    session.run_step()
    store = RunStore(sys.argv[1], server=sys.argv[2])
    store.save(sys.argv[3], session, {"source": "synthetic", "dir": ""})
    print("saved", flush=True)
    time.sleep(120)
    """
)


#: Another replica: tries to claim run ``argv[3]``; prints why it cannot, or "claimed".
_CLAIM = textwrap.dedent(
    """
    import sys
    from optlab.train.autosave import RunError, RunStore
    try:
        RunStore(sys.argv[1], server=sys.argv[2]).claim(sys.argv[3])
    except RunError as err:
        print(err)
    else:
        print("claimed")
    """
)


def session() -> TrainingSession:
    run = TrainingSession(tiny_train_config("sgd:lr=0.01", steps=6), tiny_data(64, 16))
    run.run_step()
    return run


def write_beat(root, server: str, host: str, pid: int, age_s: float) -> None:
    """A heartbeat as a process elsewhere writes it, ``age_s`` seconds old."""
    (root / SERVERS).mkdir(parents=True, exist_ok=True)
    beat = {"host": host, "pid": pid, "at": time.time() - age_s}
    (root / SERVERS / f"{server}.json").write_text(json.dumps(beat))


def test_a_live_replica_s_run_is_not_offered_and_a_killed_one_is_at_once(tmp_path):
    child = subprocess.Popen(
        [sys.executable, "-c", _REPLICA, str(tmp_path), "replica-a", RUN],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout.readline().strip() == "saved"
        other = RunStore(tmp_path, server="replica-b")  # this process: another replica
        assert other.interrupted() == []
        with pytest.raises(RunError, match="being trained already"):
            other.load(RUN)
        with pytest.raises(RunError, match="resumed it first"):
            other.claim(RUN)
        # Its heartbeat is fresh; the folder keeps the run as running.
        assert json.loads((tmp_path / RUN / META).read_text())["server"] == "replica-a"
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    [run] = other.interrupted()  # the lease (30 s) is not waited for: its pid is gone
    assert run.id == RUN and run.step == 1 and run.why("replica-b") == "the server stopped"
    other.load(RUN)
    other.claim(RUN)
    meta = json.loads((tmp_path / RUN / META).read_text())
    assert (meta["server"], meta["state"], meta["step"]) == ("replica-b", RUNNING, 1)
    beat = json.loads((tmp_path / SERVERS / "replica-b.json").read_text())
    assert beat["pid"] == os.getpid() and time.time() - beat["at"] < LEASE_S
    # A third replica, in its own process, finds it taken.
    third = subprocess.run(
        [sys.executable, "-c", _CLAIM, str(tmp_path), "replica-c", RUN],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert third.stdout.strip() == "run: another browser resumed it first, or it was discarded"


def test_another_machine_s_run_is_live_within_its_lease_and_interrupted_after(tmp_path):
    RunStore(tmp_path, server="far").save(RUN, session(), CHOICE)
    # Its pid means nothing here (another host or container): only the lease tells.
    write_beat(tmp_path, "far", "laptop-2/pid:[4026531836]", 1, age_s=LEASE_S - 5)
    here = RunStore(tmp_path, server="near", keep=0)
    assert here.interrupted() == []
    here.prune()  # a live replica's runs are never pruned as old interrupted ones
    assert (tmp_path / RUN / META).is_file()
    with pytest.raises(RunError, match="being trained already"):
        here.load(RUN)

    write_beat(tmp_path, "far", "laptop-2/pid:[4026531836]", 1, age_s=LEASE_S + 1)
    assert [r.id for r in here.interrupted()] == [RUN]
    assert [r.id for r in RunStore(tmp_path, server="near", lease_s=60.0).interrupted()] == []
    (tmp_path / SERVERS / "far.json").unlink()
    assert [r.id for r in here.interrupted()] == [RUN]  # no heartbeat at all: gone


def test_a_predecessor_with_this_pid_or_a_vanished_pid_is_gone_before_its_lease(tmp_path):
    """A restarted container's server often has its predecessor's pid; a killed one's
    pid no longer exists. Both runs are offered at once."""
    from optlab.train.autosave import this_host

    finished = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        check=True,
        capture_output=True,
        text=True,
    )
    vanished = int(finished.stdout)
    RunStore(tmp_path, server="old").save(RUN, session(), CHOICE)
    here = RunStore(tmp_path, server="new")
    for pid in (os.getpid(), vanished):
        write_beat(tmp_path, "old", this_host(), pid, age_s=0.0)
        assert [r.id for r in here.interrupted()] == [RUN], pid
    write_beat(tmp_path, "old", this_host(), os.getppid(), age_s=0.0)  # alive, not us
    assert here.interrupted() == []


@pytest.mark.parametrize("server", ["../../etc/passwd", "", "x" * 65, "a b"])
def test_a_bad_server_id_is_refused_and_one_in_run_json_never_becomes_a_path(tmp_path, server):
    with pytest.raises(ValueError, match="is not a server id"):
        RunStore(tmp_path, server=server)
    RunStore(tmp_path, server="someone").save(RUN, session(), CHOICE)
    meta = json.loads((tmp_path / RUN / META).read_text())
    (tmp_path / RUN / META).write_text(json.dumps({**meta, "server": server}))
    assert [r.id for r in RunStore(tmp_path, server="new").interrupted()] == [RUN]


def test_a_bad_lease_is_refused(tmp_path):
    for lease in (0.0, -1.0, float("nan")):
        with pytest.raises(ValueError, match="lease_s"):
            RunStore(tmp_path, lease_s=lease)
