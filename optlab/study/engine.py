"""Where a study's trials run: Ray (local by default, or a cluster), or in this process.

Ray is imported and started only when a study starts (it takes several
seconds and about 700 MB here), never when a page loads. With no address,
`RayEngine` starts a local Ray bound to 127.0.0.1 with token authentication
on (Ray's default since 2.59); with an address (``--ray-address``,
``OPTLAB_RAY_ADDRESS``) it joins that cluster. Each trial is one Ray task with
one CPU; a worker process that dies mid-trial (killed, out of memory) has its
trial retried by Ray (`MAX_RETRIES`). Trials come back as they finish
(``ray.wait``).

`InlineEngine` runs the same trials one after another in this process: the
baseline `bench/study.py` measures Ray's overhead against.
"""

from __future__ import annotations

import contextlib
import os
import platform
import socket
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from optlab.study.config import TrialSpec
from optlab.study.trial import run_trial
from optlab.train.config import TrainRunConfig
from optlab.train.data import LoadedData
from optlab.train.jobs import first_line

#: The environment variable that names a Ray cluster to join.
ADDRESS_ENV = "OPTLAB_RAY_ADDRESS"
#: Retries of a trial whose worker process died (Ray's own task retries).
MAX_RETRIES = 3
#: How long to wait for a cluster's address to answer before giving up.
CONNECT_TIMEOUT_S = 5.0
#: Ray's object store for a local Ray: the data set and results are small.
LOCAL_OBJECT_STORE_BYTES = 256 * 2**20
#: How long a stopped study waits for its cancelled trials to settle before it
#: returns (and the caller shuts Ray down), so that no reply is still in flight.
CANCEL_SETTLE_S = 10.0


class EngineError(RuntimeError):
    """The engine cannot start or reach its cluster (one line, for the user)."""


def trial_result(spec: TrialSpec, outcome: dict[str, Any], node: str, pid: int) -> dict[str, Any]:
    """A trial's stored result: who it was, what it scored, where it ran."""
    return {
        "id": spec.id,
        "optimizer": spec.optimizer,
        "point": spec.point,
        "seed": spec.seed,
        "hparams": dict(spec.hparams),
        **outcome,
        "node": node,
        "pid": pid,
    }


class InlineEngine:
    """Runs trials one after another in this process (no Ray)."""

    name = "inline"

    def info(self) -> dict[str, Any]:
        """The engine's description for the study's JSON."""
        return {
            "name": self.name,
            "version": None,
            "address": None,
            "nodes": 1,
            "cpus": os.cpu_count(),
        }

    def run(
        self,
        specs: Sequence[TrialSpec],
        data: LoadedData,
        should_stop: Callable[[], bool] | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Yields each trial's result as it finishes; stops between trials when asked."""
        for spec in specs:
            if should_stop is not None and should_stop():
                return
            outcome = run_trial(spec.config, data)
            yield trial_result(spec, outcome, platform.node(), os.getpid())

    def shutdown(self) -> None:
        """Nothing to release."""


def _check_reachable(address: str) -> None:
    """Refuses, in one line, an address where nothing answers."""
    host, sep, port = address.removeprefix("ray://").rpartition(":")
    if not sep or not host or not port.isdigit():
        raise EngineError(f"--ray-address {address}: expected HOST:PORT (or auto)")
    try:
        with socket.create_connection((host, int(port)), timeout=CONNECT_TIMEOUT_S):
            pass
    except OSError as err:
        reason = err.strerror or type(err).__name__
        raise EngineError(
            f"--ray-address {address}: no Ray cluster answers there ({reason})"
        ) from None


#: Ray's switch for a single-machine node (meant for Windows and macOS): its servers
#: then bind to 127.0.0.1 instead of the machine's routable address.
_SINGLE_MACHINE = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"


@contextlib.contextmanager
def _loopback_only(local: bool) -> Iterator[Any]:
    """Imports Ray; for a local Ray, makes the node a single-machine one while it starts
    (its processes inherit the switch), then restores this process's environment, so
    that nothing started later (``ray start`` joining a cluster, say) inherits it."""
    if not local:
        import ray

        yield ray
        return
    saved = os.environ.get(_SINGLE_MACHINE)
    os.environ[_SINGLE_MACHINE] = "0"
    import ray
    from ray._private import ray_constants

    saved_constant = ray_constants.ENABLE_RAY_CLUSTER  # read when Ray was imported
    ray_constants.ENABLE_RAY_CLUSTER = False
    try:
        yield ray
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = saved_constant
        if saved is None:
            os.environ.pop(_SINGLE_MACHINE, None)
        else:
            os.environ[_SINGLE_MACHINE] = saved


def _remote_trial(cfg_dict: dict[str, Any], data: LoadedData) -> tuple[dict[str, Any], str, int]:
    """The body of a trial's Ray task (runs in a Ray worker process)."""
    import ray
    import torch

    # One CPU per task: as many threads as CPUs Ray gave it.
    cpus = ray.get_runtime_context().get_assigned_resources().get("CPU", 1)
    torch.set_num_threads(max(1, int(cpus)))
    outcome = run_trial(TrainRunConfig.from_dict(cfg_dict), data)
    return outcome, ray.get_runtime_context().get_node_id(), os.getpid()


def _cancel(ray: Any, refs: list[Any]) -> None:
    """Cancels ``refs`` and waits until Ray has settled them.

    Not ``force=True``: killing a worker mid-trial raced with that trial's own
    reply, and Ray's core worker in the driver then failed its internal check
    ("Tried to complete task that was not pending") and took the CLI down with
    exit status 1 instead of its "interrupted" line and 130. Without force, a
    queued trial is dropped and a running one gets a KeyboardInterrupt between
    two of its Python steps; either way one reply settles it.
    """
    for ref in refs:
        ray.cancel(ref, force=False)
    if refs:
        with contextlib.suppress(Exception):
            ray.wait(refs, num_returns=len(refs), timeout=CANCEL_SETTLE_S)


class RayEngine:
    """Trials as Ray tasks: a local Ray (the default) or a cluster at ``address``.

    Args:
        address: A cluster's ``HOST:PORT`` (or ``auto``); None: ``$OPTLAB_RAY_ADDRESS``,
            else start a local Ray on this machine.
        cpus: CPUs each trial takes (Ray schedules by them).
        local_cpus: CPUs a local Ray offers (None: all of this machine's).
    """

    name = "ray"

    def __init__(
        self, address: str | None = None, cpus: int = 1, local_cpus: int | None = None
    ) -> None:
        self.address = address or os.environ.get(ADDRESS_ENV) or None
        self.cpus = cpus
        self.local_cpus = local_cpus
        self.started_s: float | None = None
        self._owns_ray = False
        self._remote: Any = None
        self._lock = threading.Lock()

    def check_address(self) -> None:
        """Refuses, in one line and at once, a cluster address where nothing answers.

        Raises:
            EngineError: naming the address and why.
        """
        if self.address is not None and self.address != "auto":
            _check_reachable(self.address)

    def start(self) -> None:
        """Starts (or joins) Ray, once.

        Raises:
            EngineError: if the cluster cannot be reached or Ray fails to start.
        """
        with self._lock:
            if self._remote is None:
                self._start()

    def _start(self) -> None:
        self.check_address()
        started = time.perf_counter()
        try:
            with _loopback_only(self.address is None) as ray:
                if not ray.is_initialized():
                    self._init(ray)
                    self._owns_ray = True
        except Exception as err:  # Ray raises many kinds; the user gets one line
            where = f"the Ray cluster at {self.address}" if self.address else "a local Ray"
            first = first_line(err, type(err).__name__)
            raise EngineError(f"could not start {where}: {first}") from None
        self.started_s = time.perf_counter() - started
        self._remote = ray.remote(_remote_trial).options(
            num_cpus=self.cpus, max_retries=MAX_RETRIES, retry_exceptions=False
        )

    def _init(self, ray: Any) -> None:
        env = {k: v for k, v in os.environ.items() if k in ("OPTLAB_PLUGINS", "OPTLAB_PACKS")}
        if self.address is None:
            ray.init(
                num_cpus=self.local_cpus,
                include_dashboard=False,
                log_to_driver=False,
                logging_level="ERROR",
                object_store_memory=LOCAL_OBJECT_STORE_BYTES,
                runtime_env={"env_vars": env} if env else None,
            )
        else:
            ray.init(
                address=self.address,
                log_to_driver=False,
                logging_level="ERROR",
                runtime_env={"env_vars": env} if env else None,
            )

    def info(self) -> dict[str, Any]:
        """The engine's description for the study's JSON: version, address, nodes, CPUs."""
        import ray

        nodes = [n for n in ray.nodes() if n.get("Alive")]
        return {
            "name": self.name,
            "version": ray.__version__,
            "address": ray.get_runtime_context().gcs_address,
            "nodes": len(nodes),
            "cpus": int(sum(n.get("Resources", {}).get("CPU", 0) for n in nodes)),
        }

    def run(
        self,
        specs: Sequence[TrialSpec],
        data: LoadedData,
        should_stop: Callable[[], bool] | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Submits every trial and yields each result as it finishes.

        When ``should_stop()`` turns true, the trials still queued or running
        are cancelled and nothing more is yielded. A trial whose worker died
        more often than Ray retries it is yielded with status ``failed`` (not
        stored, so ``--resume`` runs it again).
        """
        import ray

        self.start()
        data_ref = ray.put(data)
        pending = {self._remote.remote(spec.config.to_dict(), data_ref): spec for spec in specs}
        try:
            while pending:
                if should_stop is not None and should_stop():
                    break
                done, _ = ray.wait(list(pending), num_returns=1, timeout=0.5)
                for ref in done:
                    spec = pending.pop(ref)
                    try:
                        outcome, node, pid = ray.get(ref)
                    except ray.exceptions.RayError as err:
                        failed = {"status": "failed", "error": first_line(err)}
                        yield trial_result(spec, failed, "", 0)
                        continue
                    yield trial_result(spec, outcome, node, pid)
        except KeyboardInterrupt:
            # Ctrl-C in the CLI: this process is on its way out, and Ray ends the
            # tasks a driver owns when it disconnects. Cancelling them here could
            # still race a trial's own reply and fail Ray's internal check
            # ("Tried to complete task that was not pending": exit 1, not 130).
            pending.clear()
            raise
        finally:
            _cancel(ray, list(pending))

    def shutdown(self) -> None:
        """Stops the local Ray this engine started (a joined cluster keeps running)."""
        if self._owns_ray:
            import ray

            ray.shutdown()
            self._owns_ray = False
        self._remote = None
