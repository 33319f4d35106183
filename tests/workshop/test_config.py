"""The workshop's settings, its HAProxy configuration (checked by HAProxy itself) and the
command's refusals of bad input."""

from __future__ import annotations

import contextlib
import os
import re
import socket
import subprocess
import time
from pathlib import Path

import pytest

from optlab.caps import CAPS
from optlab.cli import main
from optlab.train import autosave
from optlab.workshop import config
from optlab.workshop.config import (
    COOKIE,
    HEALTH_PATH,
    REPLICA_HEADER,
    REQUEST_TIMEOUT_S,
    ROOMS_DB_ENV,
    RUNS_DIR_ENV,
    WorkshopConfig,
    default_replicas,
    haproxy_config,
)
from optlab.workshop.supervisor import WorkshopError, check_ports_free, validate_config
from tests.support.resources import ROOT
from tests.support.server import free_port

RUNS = Path("/srv/optlab/runs")


@pytest.mark.parametrize(
    ("replicas", "host"), [(1, "127.0.0.1"), (2, "127.0.0.1"), (CAPS.workshop_replicas, "0.0.0.0")]
)
def test_haproxy_accepts_the_configuration(tmp_path, haproxy, replicas, host):
    cfg = WorkshopConfig(replicas, 8501, RUNS, host)
    path = tmp_path / "haproxy.cfg"
    path.write_text(haproxy_config(cfg))
    validate_config(haproxy, path)  # haproxy -c -f
    text = path.read_text()
    assert f"bind {host}:8501\n" in text
    servers = re.findall(r"^\s+server (\S+) 127\.0\.0\.1:(\d+) check cookie (\S+)$", text, re.M)
    assert servers == [
        (f"replica{k}", str(8501 + k), f"replica{k}") for k in range(1, replicas + 1)
    ]
    for line in (
        f"cookie {COOKIE} insert indirect nocache",
        f"http-check send meth GET uri {HEALTH_PATH}",
        "option redispatch",
        "timeout tunnel 1h",
        f"timeout http-request {REQUEST_TIMEOUT_S}s",
        "option http-ignore-probes",
        f"http-response set-header {REPLICA_HEADER} %[srv_name]",
    ):
        assert line in text, line


def test_the_configuration_check_can_fail(tmp_path, haproxy):
    path = tmp_path / "haproxy.cfg"
    broken = haproxy_config(WorkshopConfig(2, 8501, RUNS)).replace("balance leastconn", "balance x")
    path.write_text(broken)
    with pytest.raises(WorkshopError, match=r"(?s)haproxy refuses .*balance only supports"):
        validate_config(haproxy, path)


def read_all(conn: socket.socket) -> bytes:
    """What HAProxy sends on ``conn`` until it closes it (a reset counts as a close)."""
    got = b""
    with contextlib.suppress(ConnectionResetError):
        while chunk := conn.recv(4096):
            got += chunk
    return got


def test_a_connection_left_empty_is_closed_without_a_408(tmp_path, haproxy, monkeypatch):
    """A browser opens connections before it has requests for them (Chromium's
    preconnect, its pool for a page's hundred module scripts). When HAProxy's request
    timeout strikes on one still empty, it closes it with nothing sent: a 408 there is
    taken by the browser for the answer to the next request it sends on it, and a page
    whose module script so failed stays blank (the load test's Chromium tabs met it)."""
    monkeypatch.setattr(config, "REQUEST_TIMEOUT_S", 1)
    port = free_port()
    path = tmp_path / "haproxy.cfg"
    path.write_text(haproxy_config(WorkshopConfig(1, port, RUNS)))
    proc = subprocess.Popen([haproxy, "-db", "-f", str(path)], stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                empty = socket.create_connection(("127.0.0.1", port), timeout=10)
                break
            except ConnectionRefusedError:
                assert time.monotonic() < deadline and proc.poll() is None, "haproxy did not start"
                time.sleep(0.05)
        # The control: half a request is still answered 408 when the timeout strikes.
        partial = socket.create_connection(("127.0.0.1", port), timeout=10)
        partial.sendall(b"GET / HTTP/1.1\r\n")
        began = time.monotonic()
        with empty, partial:
            assert read_all(empty) == b""
            assert read_all(partial).startswith(b"HTTP/1.1 408")
        assert 0.8 <= time.monotonic() - began < 5
    finally:
        proc.terminate()
        proc.wait(10)


def test_the_replicas_share_the_runs_folder_and_the_rooms_database():
    cfg = WorkshopConfig(3, 9000, RUNS)
    assert RUNS_DIR_ENV == autosave.RUNS_DIR_ENV  # the variable the replicas read
    assert cfg.replica_env() == {
        RUNS_DIR_ENV: str(RUNS),
        ROOMS_DB_ENV: str(RUNS / "rooms.sqlite"),
    }
    assert cfg.replica_ports == (9001, 9002, 9003)
    assert cfg.names == ("replica1", "replica2", "replica3")
    assert WorkshopConfig(1, 9000, RUNS, "0.0.0.0").url == "http://127.0.0.1:9000"


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"replicas": 0}, f"replicas: must be between 1 and {CAPS.workshop_replicas}"),
        ({"replicas": CAPS.workshop_replicas + 1}, "OPTLAB_CAP_WORKSHOP_REPLICAS"),
        ({"replicas": 2.0}, "replicas: 2.0 is not a whole number"),
        ({"replicas": True}, "replicas: True is not a whole number"),
        ({"port": 0}, "port: must be between 1 and 65533"),
        ({"port": 65534}, "the replicas take the 2 ports after it"),
        ({"host": "example.org"}, "host: 'example.org' is not an IPv4 address"),
        ({"host": "::1"}, "is not an IPv4 address"),
        ({"host": "127.0.0.1:80"}, "is not an IPv4 address"),
        ({"runs_dir": Path("runs")}, "runs_dir: 'runs' is not an absolute path"),
    ],
)
def test_bad_settings_are_refused_with_the_field_named(changes, message):
    settings = {"replicas": 2, "port": 8501, "runs_dir": RUNS, "host": "127.0.0.1", **changes}
    with pytest.raises(ValueError, match=re.escape(message)):
        WorkshopConfig(**settings)


def test_a_port_in_use_is_refused_before_anything_starts():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        for base in (port, port - 2):  # HAProxy's port, then a replica's
            with pytest.raises(ValueError, match=f"127.0.0.1:{port} is not free"):
                check_ports_free(WorkshopConfig(2, base, RUNS))


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--replicas", "0"], "replicas: must be between 1 and"),
        (["--replicas", "two"], "argument --replicas: invalid int value: 'two'"),
        (["--host", "lan"], "host: 'lan' is not an IPv4 address"),
        (["--haproxy", "/nonexistent/haproxy"], "install it with `sudo apt-get install haproxy`"),
    ],
)
def test_the_command_refuses_bad_input_in_one_line(tmp_path, capsys, argv, message):
    status = main(["workshop", "--runs-dir", str(tmp_path), "--port", str(free_port()), *argv])
    err = capsys.readouterr().err
    assert status == 2 and err.startswith("optlab: error: ") and message in err, err
    assert err.count("\n") == 1


def cache_lines() -> list[str]:
    """The asset cache's lines of the launcher's configuration."""
    text = haproxy_config(WorkshopConfig(2, 8501, RUNS))
    lines = [line.strip() for line in text.splitlines()]
    start = lines.index("cache assets")
    cache = lines[start : start + 4]
    rules = ("cache-use", "cache-store", "set-header Host")
    return cache + [line for line in lines if any(rule in line for rule in rules)]


def test_the_compose_recipe_has_the_same_shape_and_haproxy_accepts_it(tmp_path, haproxy):
    """docs/workshop-compose.yml cannot be run here (no Docker): its HAProxy configuration
    is checked by HAProxy, and its replicas share the runs folder like the launcher's."""
    yaml = pytest.importorskip("yaml")
    recipe = yaml.safe_load((ROOT / "docs" / "workshop-compose.yml").read_text())
    text = recipe["configs"]["haproxy"]["content"]
    path = tmp_path / "haproxy.cfg"
    path.write_text(text)
    validate_config(haproxy, path)
    for line in (
        f"cookie {COOKIE} insert indirect nocache",
        f"http-check send meth GET uri {HEALTH_PATH}",
        "option redispatch",
        "timeout tunnel 1h",
        f"timeout http-request {REQUEST_TIMEOUT_S}s",
        "option http-ignore-probes",
        *cache_lines(),
        f"server-template replica 1-{CAPS.workshop_replicas} app:8501 check",
    ):
        assert line in text, line
    env = recipe["services"]["app"]["environment"]
    assert env[ROOMS_DB_ENV] == env[RUNS_DIR_ENV] + "/rooms.sqlite"
    assert "ports" not in recipe["services"]["app"]  # HAProxy is the one door


def test_the_default_is_one_replica_more_than_the_cores_within_the_cap() -> None:
    """Each replica held its interpreter lock about half the time under a class's load:
    on 2 cores, 3 replicas served the most (docs/workshop.md)."""
    assert [default_replicas(c) for c in (1, 2, 4)] == [2, 3, 5]
    assert default_replicas(CAPS.workshop_replicas + 8) == CAPS.workshop_replicas
    assert default_replicas() == min(CAPS.workshop_replicas, (os.cpu_count() or 1) + 1)
    # Three replicas on two cores: each replica's torch still gets a thread.
    assert WorkshopConfig(3, 8501, Path("/tmp/runs")).torch_threads >= 1
