"""A workshop's settings, and the HAProxy configuration in front of its replicas.

The shape follows HAProxy's documented recipe for sticky web-socket
applications:

- ``cookie SERVERID insert indirect nocache``: HAProxy names the replica in
  a cookie of its own (never forwarded to Streamlit, never cached by a
  proxy), so a browser's page, assets and web socket reach the one process
  that holds its session.
- ``option httpchk`` on ``GET /_stcore/health`` (Streamlit's health
  endpoint) every 2 s: a dead replica is taken out within seconds.
- ``option redispatch`` with retries: a browser whose replica is down (its
  cookie names it) is sent to a live one at its first retry, and HAProxy sets
  the cookie anew.
- ``timeout tunnel``: an open web socket may stay idle far longer than an
  HTTP request (a page waiting on a training).
- ``balance leastconn``: new browsers go to the replica with the fewest
  connections (web sockets are long-lived, so round robin would drift).
- ``cache`` for Streamlit's static assets (``/static/``: its JavaScript,
  fonts and styles, 8-10 MB for a first visit, each file named by its
  content's hash and sent ``Cache-Control: public, immutable``): HAProxy
  serves them from memory after the first browser fetched them. A replica
  sends a file through its event loop, the one that carries every page's
  web socket, each piece waiting for the interpreter lock its page scripts
  hold: with 30 attendees busy the Plotly bundle (4.7 MB) took 0.14-1.4 s
  from a replica and 3-20 ms from the cache (docs/load-test.md). The
  launcher fills the cache before the first attendee comes (every file of
  Streamlit's static folder, fetched once through HAProxy), and HAProxy keys
  an asset by its path alone (its ``Host`` header is set to `ASSETS_HOST`
  before the lookup): the cache keys on host and path, and attendees reach
  the presenter's machine by a name the launcher cannot know.
- ``option http-ignore-probes`` and a request timeout longer than a
  browser's own for a connection it opened and has not used (Chromium: 10 s):
  such a connection is left for the browser to close, and one HAProxy does
  close is closed without a 408, which a browser takes as the answer to the
  next request it sends there; a page whose module script so failed stays
  blank (the load test's Chromium tabs met it, docs/load-test.md).

Each response names its replica in `REPLICA_HEADER` (the cookie does too),
which is how a presenter, and the tests, see who served what.
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from optlab.caps import CAPS

#: The runs folder's variable (`optlab.train.autosave.RUNS_DIR_ENV`; a test checks
#: they agree: importing the trainer here would load torch into the launcher).
RUNS_DIR_ENV = "OPTLAB_RUNS_DIR"
#: The rooms database's variable, and its file in the runs folder.
ROOMS_DB_ENV, ROOMS_DB = "OPTLAB_ROOMS_DB", "rooms.sqlite"
#: Streamlit's health endpoint, which HAProxy checks on every replica.
HEALTH_PATH = "/_stcore/health"
#: HAProxy's stickiness cookie, and the response header naming the replica.
COOKIE, REPLICA_HEADER = "SERVERID", "X-OptLab-Replica"
#: Every replica listens here only: HAProxy is the one door.
REPLICA_HOST = "127.0.0.1"
#: Seconds between two health checks of a replica.
CHECK_INTERVAL_S = 2
#: Seconds HAProxy waits for a whole request on a connection (``timeout http-request``,
#: and between two on one kept alive): longer than Chromium keeps a connection it opened
#: ahead and has not used (10 s), so the browser is the one to close those.
REQUEST_TIMEOUT_S = 30
#: Where Streamlit serves its static assets, which HAProxy's cache keeps.
ASSETS_PATH = "/static/"
#: The asset cache's memory in MB (HAProxy reserves it at start; Streamlit 1.67's
#: static folder holds 26 MB), its largest file in bytes (the Plotly chart's
#: bundle is 4.7 MB; HAProxy allows up to half the memory) and how long an
#: entry is kept, in seconds (the names change with their content).
ASSET_CACHE_MB, ASSET_MAX_BYTES, ASSET_MAX_AGE_S = 64, 16 * 2**20, 86400
#: The ``Host`` an asset request is given before the cache looks it up: one key per path.
ASSETS_HOST = "optlab-assets"


def default_replicas(cores: int | None = None) -> int:
    """Replicas for a machine of ``cores`` cores (this one's by default): one more than
    its cores, within ``CAPS.workshop_replicas``.

    Each replica's page scripts share one interpreter lock, and under a class's
    load a replica held it only about half the time (waiting on the engine's
    slots, its web sockets, its training), so one process per core leaves the
    cores idle part of the time. On 2 cores with 30 sessions and two Chromium
    tabs (docs/workshop.md): 2 replicas served 336-344 rounds in 120 s, 3
    served 391-412 (their p95 ratios overlapping), 4 served 374 and one tab
    timed out.
    """
    cores = (os.cpu_count() or 1) if cores is None else cores
    return max(1, min(CAPS.workshop_replicas, cores + 1))


@dataclass(frozen=True)
class WorkshopConfig:
    """What ``python -m optlab workshop`` serves.

    Attributes:
        replicas: ``streamlit run`` processes, 1 to ``CAPS.workshop_replicas``.
        port: HAProxy's port; the replicas take the next ``replicas`` ports.
        host: HAProxy's address (an IPv4 address): 127.0.0.1 keeps the
            workshop on this machine, 0.0.0.0 opens it to the network.
        runs_dir: The runs folder every replica shares (absolute).
    """

    replicas: int
    port: int
    runs_dir: Path
    host: str = "127.0.0.1"

    def __post_init__(self) -> None:
        cap = CAPS.workshop_replicas
        if isinstance(self.replicas, bool) or not isinstance(self.replicas, int):
            raise ValueError(f"replicas: {self.replicas!r} is not a whole number")
        if not 1 <= self.replicas <= cap:
            raise ValueError(
                f"replicas: must be between 1 and {cap} (OPTLAB_CAP_WORKSHOP_REPLICAS), "
                f"got {self.replicas}"
            )
        if isinstance(self.port, bool) or not isinstance(self.port, int):
            raise ValueError(f"port: {self.port!r} is not a whole number")
        if not 1 <= self.port <= 65535 - self.replicas:
            raise ValueError(
                f"port: must be between 1 and {65535 - self.replicas} (the replicas take "
                f"the {self.replicas} ports after it), got {self.port}"
            )
        try:
            address = ipaddress.ip_address(self.host)
        except ValueError:
            address = None
        if not isinstance(address, ipaddress.IPv4Address):
            raise ValueError(
                f"host: {self.host[:60]!r} is not an IPv4 address "
                "(127.0.0.1 for this machine only, 0.0.0.0 for the network)"
            )
        if not Path(self.runs_dir).is_absolute():
            raise ValueError(f"runs_dir: {str(self.runs_dir)[:200]!r} is not an absolute path")

    @property
    def names(self) -> tuple[str, ...]:
        """The replicas' names: ``replica1`` ... (HAProxy's server names and cookie values)."""
        return tuple(f"replica{k}" for k in range(1, self.replicas + 1))

    @property
    def replica_ports(self) -> tuple[int, ...]:
        """The replicas' loopback ports: the ``replicas`` ports after `port`."""
        return tuple(range(self.port + 1, self.port + 1 + self.replicas))

    @property
    def url(self) -> str:
        """Where attendees point their browsers (on this machine)."""
        host = REPLICA_HOST if self.host == "0.0.0.0" else self.host
        return f"http://{host}:{self.port}"

    @property
    def rooms_db(self) -> Path:
        """The rooms database every replica shares, in the runs folder."""
        return Path(self.runs_dir) / ROOMS_DB

    @property
    def torch_threads(self) -> int:
        """Threads each replica's torch computes on: the machine's cores shared out
        (at least one). N replicas with torch's default, every core each, would ask
        the machine for N times its cores: two trainings on a 2-core machine then
        took 30 s each instead of 7 (docs/load-test.md)."""
        return max(1, (os.cpu_count() or 1) // self.replicas)

    def replica_env(self) -> dict[str, str]:
        """The variables every replica gets on top of the launcher's environment."""
        return {RUNS_DIR_ENV: str(self.runs_dir), ROOMS_DB_ENV: str(self.rooms_db)}


def haproxy_config(cfg: WorkshopConfig) -> str:
    """HAProxy's configuration for ``cfg`` (see the module docstring for its shape)."""
    servers = "\n".join(
        f"    server {name} {REPLICA_HOST}:{port} check cookie {name}"
        for name, port in zip(cfg.names, cfg.replica_ports, strict=True)
    )
    return f"""\
# Written by `python -m optlab workshop`: {cfg.replicas} OptLab replica(s) behind HAProxy.
global
    # Logs go to HAProxy's standard output (the launcher keeps them in a file).
    log stdout format raw local0 info
    maxconn 4096

defaults
    mode http
    log global
    option httplog
    # Only errors, retries and redispatches are logged, not every asset.
    option dontlog-normal
    option dontlognull
    # A browser whose replica is down goes to a live one at the first retry
    # (not after waiting out every retry on the dead one).
    option redispatch 1
    retries 2
    timeout connect 5s
    timeout client 60s
    timeout server 60s
    timeout http-request {REQUEST_TIMEOUT_S}s
    # A browser opens connections before it has requests for them (Chromium's
    # preconnect, its pool for a page's many module scripts) and closes those
    # unused after 10 s. One still empty when the timeout above strikes is
    # closed in silence, not answered 408: a browser takes that 408 as the
    # answer to the next request it sends there.
    option http-ignore-probes
    timeout queue 30s
    # An open web socket may stay quiet much longer than a request.
    timeout tunnel 1h
    timeout client-fin 30s

# Streamlit's static assets, kept in memory after their first fetch.
cache assets
    total-max-size {ASSET_CACHE_MB}
    max-object-size {ASSET_MAX_BYTES}
    max-age {ASSET_MAX_AGE_S}

frontend optlab
    bind {cfg.host}:{cfg.port}
    default_backend replicas

backend replicas
    balance leastconn
    cookie {COOKIE} insert indirect nocache httponly
    option httpchk
    http-check send meth GET uri {HEALTH_PATH}
    http-check expect status 200
    default-server inter {CHECK_INTERVAL_S}s fall 2 rise 2
    http-request set-var(txn.asset) bool(true) if {{ path_beg {ASSETS_PATH} }}
    http-request set-header Host {ASSETS_HOST} if {{ var(txn.asset) -m bool }}
    http-request cache-use assets if {{ var(txn.asset) -m bool }}
    http-response cache-store assets if {{ var(txn.asset) -m bool }}
    http-response set-header {REPLICA_HEADER} %[srv_name] unless {{ res.cache_hit }}
{servers}
"""
