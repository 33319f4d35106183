"""The engine process's side: receives jobs, runs each in a thread, sends results back.

Messages from the server: ``("surface", id, SurfaceRunConfig)``, ``("sweep",
id, SweepConfig)``, ``("sweep_replay", id, (SweepConfig, cell))`` and
``("stop", id)``. Messages to it: ``("ready", keys)`` once warmed up (the
optimizer keys it knows), then per job ``("records", id, records, cpu_s)``
chunks, ``("progress", id, step, steps)``, and one ``("done", id, result)``
or ``("error", id, exception)``. The process ends when the server's end of
the socket closes (the server stopped or died).
"""

from __future__ import annotations

import contextlib
import math
import os
import pickle
import threading
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

from optlab.heap import trim_heap

Send = Callable[[tuple], None]

#: How long a surface job computes between two chunks of records sent back: CPU
#: seconds of its thread, not wall time. Under load a run's wall time stretches
#: with the cores' sharing, and each chunk is a message the page waits for in line
#: for its interpreter turn; counted in CPU a run sends as many chunks as alone.
CHUNK_S = 0.05
#: The least wall time between two progress messages of a sweep (0: each one
#: `run_sweep` reports, every 2 % of its steps). A sweeps page moves its bar every
#: 0.25 s at most (`optlab.ui.sweep.cache.BAR_EVERY_S`), and each message is read by
#: the server's reader thread and by the page waiting for the sweep, each needing the
#: server's interpreter lock: fifty for a 20 x 20 sweep of 100 steps, about 40 ms of
#: computing alone (none now), or 0.5 s under a class's load (four or five now).
PROGRESS_EVERY_S = 0.1
#: The least time between two trims of the heap (when no job runs).
TRIM_EVERY_S = 2.0


class Stopped(Exception):
    """Raised inside a sweep's progress callback once its page has stopped asking."""


def portable(err: BaseException) -> BaseException:
    """``err`` if it survives pickling both ways, else a RuntimeError carrying its
    type and message (an exception class that does not unpickle would break the
    server's reader, not just this job)."""
    try:
        pickle.loads(pickle.dumps(err))
    except Exception:
        return RuntimeError(f"{type(err).__name__}: {err}")
    return err


def surface_job(job: int, cfg, stop: threading.Event, send: Send, chunk_s: float = CHUNK_S) -> Any:
    """Runs a surface config, sending its records every ``chunk_s`` of its CPU (and
    the rest at its end); returns None."""
    from optlab.surface.run import run_surface

    batch: list = []
    cpu = time.thread_time()
    records = run_surface(cfg)
    try:
        for record in records:
            batch.append(record)
            if stop.is_set():
                raise Stopped
            if (now_cpu := time.thread_time()) - cpu >= chunk_s:
                send(("records", job, batch, now_cpu - cpu))
                batch, cpu = [], now_cpu
        send(("records", job, batch, time.thread_time() - cpu))
    finally:
        records.close()
    return None


def sweep_job(job: int, cfg, stop: threading.Event, send: Send) -> Any:
    """Runs a sweep, sending its progress at most every `PROGRESS_EVERY_S`; returns its
    result."""
    from optlab.sweep.run import run_sweep

    every_s, sent = PROGRESS_EVERY_S, time.monotonic()

    def progress(step: int, steps: int) -> None:
        nonlocal sent
        if stop.is_set():
            raise Stopped
        if (now := time.monotonic()) - sent >= every_s:
            sent = now
            send(("progress", job, step, steps))

    return run_sweep(cfg, on_progress=progress)


def sweep_replay_job(job: int, payload, stop: threading.Event, send: Send) -> Any:
    """A sweep, then one of its cells replayed with the real torch.optim; returns the
    sweep's result. ``payload`` is ``(SweepConfig, cell)``, ``cell`` None for the best
    one. The replay's ``records`` come in one message before the ``done``.

    One job for a sweeps page, which shows both: as two jobs the page waited twice
    for its answers, and under load each wait ends at the back of the line for an
    interpreter turn (`optlab.turns`)."""
    cfg, cell = payload
    result = sweep_job(job, cfg, stop, send)
    if (cell := result.cell_or_best(cell)) is not None:
        # The replay's records in one message, sent once it is whole. A replay that
        # fails sends none and leaves the sweep's result standing: the page then
        # replays the cell in a job of its own and shows that job's error, as it
        # did before the two were one job.
        try:
            surface_job(job, cfg.cell_run(cell), stop, send, chunk_s=math.inf)
        except Stopped:
            raise
        except Exception:
            pass
    return result


JOBS = {"surface": surface_job, "sweep": sweep_job, "sweep_replay": sweep_replay_job}


def warm_up() -> tuple[str, ...]:
    """Pays the first backward and torch's thread pool now; the optimizer keys known."""
    import torch

    from optlab.optim.config import OptimizerConfig
    from optlab.optim.registry import optimizers
    from optlab.surface.problem import Problem
    from optlab.surface.run import SurfaceRunConfig, run_surface

    list(run_surface(SurfaceRunConfig((OptimizerConfig("sgd"),), Problem(steps=1))))
    torch.ones(1 << 16).mul(2).sum()  # starts the intra-op pool a large sweep would start
    return tuple(spec.key for spec in optimizers())


def serve(conn: Connection) -> None:
    """Answers ``conn`` until it closes."""
    lock = threading.Lock()
    stops: dict[int, threading.Event] = {}
    trimmed = [-TRIM_EVERY_S]

    def send(message: tuple) -> None:
        # A server that went away ends this process (its recv below sees the socket
        # close): a job's answer has nowhere to go then, and is dropped.
        with lock, contextlib.suppress(OSError):
            conn.send(message)

    def run(kind: str, job: int, cfg, stop: threading.Event) -> None:
        try:
            result = JOBS[kind](job, cfg, stop, send)
            if not stop.is_set():
                send(("done", job, result))  # raises here if the result does not pickle
        except Stopped:
            pass
        except Exception as err:  # the server shows it as the run's error
            send(("error", job, portable(err)))
        finally:
            stops.pop(job, None)
            if not stops and time.monotonic() - trimmed[0] >= TRIM_EVERY_S:
                # Idle: what the jobs' threads freed goes back to the system.
                trim_heap()
                trimmed[0] = time.monotonic()

    send(("ready", warm_up()))
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return
        kind, job = message[0], message[1]
        if kind == "stop":
            if (stop := stops.get(job)) is not None:
                stop.set()
        elif kind in JOBS:
            stops[job] = stop = threading.Event()
            threading.Thread(
                target=run, args=(kind, job, message[2], stop), name=f"job-{job}", daemon=True
            ).start()


def main(argv: list[str]) -> int:
    """Serves the socket whose descriptor is ``argv[0]``; exits when it closes."""
    if len(argv) != 1 or not argv[0].isdigit():
        print("usage: python -m optlab.worker FD (started by optlab.worker.client)")
        return 2
    conn = Connection(int(argv[0]))
    try:
        serve(conn)
    finally:
        conn.close()
    # Job threads still running have nobody to answer: do not wait for them.
    os._exit(0)
