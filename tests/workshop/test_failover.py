"""A workshop of two replicas behind HAProxy, end to end: real processes on 127.0.0.1.

``python -m optlab workshop --replicas 2`` runs as a subprocess for the whole
module. HAProxy keeps a browser on its replica (its cookie); when that
replica is killed with SIGKILL mid-training, the open tab reconnects through
HAProxy to the other replica, which offers the run from its last autosave
(the shared runs folder: the dead replica's pid is gone, so no lease is
waited for), and Resume trains it to the end with the results of a run never
interrupted (as `tests/browser/test_restart.py` checks for one server). The
launcher restarts the killed replica meanwhile, and SIGTERM stops it all.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from optlab.train.autosave import CHECKPOINT
from optlab.workshop.config import COOKIE, REPLICA_HEADER
from tests.browser.test_cnn import (
    server_env,
    set_number,
    settle,
    tiny_run,
)
from tests.browser.test_faults import open_lab, progress, shown_step, start
from tests.browser.test_restart import resumes_as_if_never_interrupted, saved_run
from tests.support.resources import ROOT
from tests.support.server import free_ports

pytestmark = pytest.mark.browser

#: Long enough that the page shows a step between the second autosave and the end
#: (60 steps, autosaved every 10, often finished between two of the page's polls).
STEPS = 150
AUTOSAVE = 25
#: Small batches: the machine running the tests is shared by two replicas and a browser.
BATCH = 16
_REPLICA_LINE = re.compile(r"workshop: (replica\d+): http://127\.0\.0\.1:(\d+) \(pid (\d+)\)")
_PROXY_LINE = re.compile(r"workshop: haproxy: \S+ \(pid (\d+)\)")


@dataclass
class Launched:
    """The launcher's process, its output file, URL and runs folder."""

    proc: subprocess.Popen
    log: Path
    url: str
    runs: Path

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def pids(self) -> dict[str, int]:
        """Each replica's latest pid, and HAProxy's, as the launcher printed them."""
        text = self.text()
        found = {name: int(pid) for name, _, pid in _REPLICA_LINE.findall(text)}
        found |= {
            m[0]: int(m[1]) for m in re.findall(r"(replica\d+): restarted \(pid (\d+)\)", text)
        }
        found["haproxy"] = int(_PROXY_LINE.findall(text)[-1])
        return found


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def stop_launcher(launched: Launched) -> None:
    """SIGTERM, then SIGKILL for the launcher and every child it printed if it hangs."""
    if launched.proc.poll() is None:
        launched.proc.send_signal(signal.SIGTERM)
        try:
            launched.proc.wait(timeout=40)
        except subprocess.TimeoutExpired:
            launched.proc.kill()
            launched.proc.wait()
    for pid in launched.pids().values() if "haproxy:" in launched.text() else ():
        if alive(pid):
            os.kill(pid, signal.SIGKILL)


@pytest.fixture(scope="module")
def workshop(tmp_path_factory) -> Iterator[Launched]:
    """``python -m optlab workshop --replicas 2`` on free loopback ports, until it is ready."""
    root = tmp_path_factory.mktemp("workshop")
    env = {
        **os.environ,
        **server_env(root / "cache", OPTLAB_MAX_JOBS="1", OPTLAB_CAP_AUTOSAVE_STEPS=str(AUTOSAVE)),
        # One thread per replica: two replicas and the browser share a small machine.
        "OMP_NUM_THREADS": "1",
    }
    port, log, runs = free_ports(3), root / "launcher.log", root / "runs"
    argv = ["--replicas", "2", "--port", str(port), "--runs-dir", str(runs)]
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "optlab", "workshop", *argv, "--state-dir", str(root / "state")],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    launched = Launched(proc, log, f"http://127.0.0.1:{port}", runs)
    try:
        deadline = time.monotonic() + 120
        while "ready: open" not in launched.text():
            assert proc.poll() is None, launched.text()
            assert time.monotonic() < deadline, launched.text()
            time.sleep(0.3)
        yield launched
    finally:
        stop_launcher(launched)


def served_by(url: str, cookie: str | None = None) -> tuple[str, str | None]:
    """Which replica answered a health check through HAProxy, and the cookie it set."""
    request = urllib.request.Request(url + "/_stcore/health")
    if cookie is not None:
        request.add_header("Cookie", f"{COOKIE}={cookie}")
    with urllib.request.urlopen(request, timeout=10) as resp:
        assert resp.status == 200
        set_cookies = " ".join(resp.headers.get_all("Set-Cookie") or [])
        got = re.search(rf"\b{COOKIE}=(\w+)", set_cookies)
        return resp.headers[REPLICA_HEADER], got[1] if got else None


def test_a_browser_stays_on_its_replica(workshop):
    first, cookie = served_by(workshop.url)
    assert cookie == first  # the cookie names the replica that answered
    assert {served_by(workshop.url, cookie)[0] for _ in range(6)} == {first}
    other = "replica2" if first == "replica1" else "replica1"
    assert [served_by(workshop.url, other) for _ in range(6)] == [(other, None)] * 6
    # No cookie: HAProxy spreads new browsers; each gets the cookie of the one it reached.
    for _ in range(4):
        replica, cookie = served_by(workshop.url)
        assert cookie == replica


def fetch(url: str, host: str | None = None) -> tuple[bytes, dict[str, str]]:
    """A response's body and headers (lower-case names; a repeated header's values
    joined with commas), asked for with ``host`` as the ``Host`` header if given."""
    request = urllib.request.Request(url, headers={"Host": host} if host else {})
    with urllib.request.urlopen(request, timeout=10) as resp:
        assert resp.status == 200
        names = {k.lower() for k in resp.headers}
        return resp.read(), {k: ", ".join(resp.headers.get_all(k)) for k in names}


def page_bundle(url: str) -> tuple[str, dict[str, str]]:
    """The URL of the page's own script bundle (named by its content's hash), and the
    page's headers."""
    page, headers = fetch(url + "/")
    [script] = re.findall(rb'src="\./(static/js/index\.[\w-]+\.js)"', page)
    return f"{url}/{script.decode()}", headers


def test_streamlits_assets_come_from_haproxys_cache_and_pages_from_a_replica(workshop):
    """The launcher fills the cache with Streamlit's static folder before it says the
    workshop is ready, and an asset is one entry whatever name the browser knows the
    server by: attendees' first pages take no asset from a replica."""
    files, mb = re.findall(r"asset cache: (\d+) file\(s\), ([\d.]+) MB", workshop.text())[0]
    assert int(files) > 100 and float(mb) > 5
    asset, headers = page_bundle(workshop.url)
    assert headers[REPLICA_HEADER.lower()].startswith("replica")
    first, headers = fetch(asset, host="projector.example:8501")
    assert len(first) > 100_000 and "immutable" in headers["cache-control"]
    assert "age" in headers and REPLICA_HEADER.lower() not in headers  # filled at launch
    pids = [pid for name, pid in workshop.pids().items() if name != "haproxy"]
    for pid in pids:  # no replica can answer now
        os.kill(pid, signal.SIGSTOP)
    try:
        again, headers = fetch(asset, host="192.168.1.20:8501")
    finally:
        for pid in pids:
            os.kill(pid, signal.SIGCONT)
    assert again == first
    assert "age" in headers and REPLICA_HEADER.lower() not in headers  # HAProxy's own copy
    # A page is never cached: each comes from a replica (its HTML is not immutable).
    assert [fetch(workshop.url + "/")[1][REPLICA_HEADER.lower()][:7] for _ in range(2)] == [
        "replica"
    ] * 2


def test_a_restarted_haproxy_fills_its_cache_again(workshop):
    """HAProxy's cache lives in its memory: the launcher restarts a dead HAProxy and
    fills the new one's cache as it did at launch."""
    os.kill(workshop.pids()["haproxy"], signal.SIGKILL)
    deadline = time.monotonic() + 60
    while workshop.text().count("asset cache: ") < 2:
        assert time.monotonic() < deadline, workshop.text()
        time.sleep(0.2)
    assert re.search(r"haproxy \(pid \d+\) exited with status -9; restarting it", workshop.text())
    _, headers = fetch(page_bundle(workshop.url)[0])
    assert "age" in headers and REPLICA_HEADER.lower() not in headers


def session_replica(context) -> str:
    [cookie] = [c["value"] for c in context.cookies() if c["name"] == COOKIE]
    return cookie


def test_a_killed_replica_s_browser_resumes_its_run_on_the_other(browser, workshop, tmp_path):
    context = None
    try:
        context, tab = open_lab(browser, workshop.url)
        tiny_run(tab, steps=STEPS)
        set_number(tab, "Batch size", BATCH)
        settle(tab)
        start(tab)
        progress(tab, STEPS).wait_for()
        tab.wait_for_function("() => /[?&]run=\\d{8}-\\d{6}-[0-9a-f]{6}/.test(location.search)")
        run_id = re.search(r"run=([\w-]+)", tab.url)[1]
        while shown_step(tab, STEPS) < 2 * AUTOSAVE:
            assert shown_step(tab, STEPS) < STEPS
            tab.wait_for_timeout(100)
        folder, meta = saved_run(workshop.runs)
        assert folder.name == run_id and meta["state"] == "running"

        victim = session_replica(context)
        os.kill(workshop.pids()[victim], signal.SIGKILL)  # no clean shutdown, no last save
        folder, meta = saved_run(workshop.runs)
        saved_step = meta["step"]
        assert saved_step % AUTOSAVE == 0 and AUTOSAVE <= saved_step < STEPS
        kept = tmp_path / "at-the-kill.pt"
        shutil.copy(folder / CHECKPOINT, kept)

        # The tab reconnects by itself, through HAProxy, to the other replica, where
        # its run resumes as if never interrupted (the replicas train on one thread).
        resumes_as_if_never_interrupted(tab, run_id, saved_step, STEPS, folder, kept, 1)
        assert session_replica(context) != victim
    finally:
        if context is not None:
            context.close()
    assert re.search(rf"{victim} \(pid \d+\) exited with status -9; restarting it", workshop.text())


def test_sigterm_stops_haproxy_and_every_replica(workshop):
    deadline = time.monotonic() + 60
    # Every child the tests before killed is back.
    while workshop.text().count("restarting it") > workshop.text().count("restarted (pid"):
        assert time.monotonic() < deadline, workshop.text()
        time.sleep(0.3)
    pids = workshop.pids()
    assert len(pids) == 3 and all(alive(pid) for pid in pids.values())
    workshop.proc.send_signal(signal.SIGTERM)
    assert workshop.proc.wait(timeout=40) == 0
    assert workshop.text().rstrip().endswith("workshop: stopped")
    assert not [name for name, pid in pids.items() if alive(pid)]
