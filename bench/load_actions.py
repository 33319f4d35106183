"""What a load-test session does: the actions, what each asks the server for,
how an action's time or error is recorded, and the rounds built from them.

The actions are the same for a real browser (`bench.load_browser`) and for
the protocol client (`bench.load_protocol`); a session class supplies one
coroutine per action that returns when the action's result is on the page.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections import defaultdict
from dataclasses import dataclass, field

ACTIONS = ("home", "lr_change", "sweep", "cnn_page", "cnn_job")
ERROR_KINDS = ("exception", "websocket", "timeout", "job", "other")

DEFAULT_PATHS = ["SGD (momentum=0.9)", "Adam (lr=0.1)", "RMSprop"]
QUEUED_RE = re.compile(r"Waiting for a free trainer: number (\d+) in the queue \((\d+) training")
FINISHED_RE = re.compile(r"Finished ([\d,]+) steps in")
STOPPED_RE = re.compile(
    r"Stopped at step [\d,]+ \(([^)]*)\)|training failed: [^\n]*|Cannot (?:start|train)[^\n]*"
)
RUNNING_RE = re.compile(r"Step [\d,]+ of [\d,]+")

SWEEP_N, SWEEP_STEPS = 20, 100
CNN_STEPS = 30


def cnn_query(steps: int = CNN_STEPS, seed: int = 0) -> str:
    """The CNN lab's share link for a tiny synthetic run of ``steps`` steps.

    Each ``seed`` is another comparison: the harness numbers them, so every
    CNN job trains (identical comparisons would share one training, or replay
    a finished one at once; ``bench.shared_runs`` measures that instead).
    """
    if steps < 1:
        raise ValueError(f"a CNN run needs at least one step, not {steps}")
    return (
        "page=cnn&data=synthetic&opt=sgd:lr=0.01,momentum=0.9&opt=adam"
        f"&steps={steps}&train=512&test=100&batch=64&eval=10&seed={seed}"
    )


def sweep_query(k: int) -> str:
    """A small sweep grid, different for every ``k`` (its lr axis ends at 0.01 + k * 1e-6)."""
    hi = f"{0.01 + (k % 9000) * 1e-6:.6g}"
    return (
        "page=sweep&mode=sweep&surface=rosenbrock&opt=sgd:momentum=0.9"
        f"&x=lr=1e-05:{hi}:log:{SWEEP_N}&y=momentum=0:0.99:lin:{SWEEP_N}"
        f"&steps={SWEEP_STEPS}&metric=final_loss"
    )


def adam_lr(k: int) -> str:
    """A learning rate for Adam, different for every ``k`` below 8000: 0.01000 .. 0.08999."""
    return f"{0.01 + (k % 8000) * 1e-5:.5g}"


def describe_error(err: BaseException, default: str = "no message") -> str:
    """``Type: first line`` of an exception (asyncio's timeouts have no message)."""
    lines = str(err).strip().splitlines()
    return f"{type(err).__name__}: {(lines[0] if lines else default)[:200]}"


class ActionError(Exception):
    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


@dataclass
class Record:
    """Everything one phase measured."""

    times: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    errors: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    queue_positions: set[int] = field(default_factory=set)
    caps_shown: set[int] = field(default_factory=set)
    running_now: set[int] = field(default_factory=set)
    max_running_seen: int = 0
    actors: dict[str, set[int]] = field(default_factory=lambda: defaultdict(set))
    rounds: int = 0
    #: Streams the server dropped from a page that then connected again and finished its
    #: action (a browser tab's; not errors: the page lost nothing).
    reconnects: list[str] = field(default_factory=list)
    #: Seconds each left page's websocket took to close (the protocol client closes
    #: it alongside the next page's load, as a browser does; no action waits for it).
    closes: list[float] = field(default_factory=list)

    def error_count(self) -> int:
        return sum(len(v) for v in self.errors.values())

    def add_from(self, other: Record, label: str) -> None:
        """``other``'s errors and reconnections, each marked ``(label)``, counted with
        this phase's (its times are not: they were another phase's)."""
        for kind, errs in other.errors.items():
            self.errors[kind].extend(f"({label}) {e}" for e in errs)
        self.reconnects.extend(f"({label}) {e}" for e in other.reconnects)


class Numbering:
    """A process-wide numbering of learning rates and sweep grids (never repeated)."""

    def __init__(self, start: int = 0) -> None:
        self._next = start

    def __call__(self) -> int:
        self._next += 1
        return self._next


class LoadSession:
    """The actions' bookkeeping, shared by the browser and the protocol sessions.

    A subclass defines the coroutines ``home``, ``lr_change``, ``sweep``,
    ``cnn_page`` and ``cnn_job`` (each takes the `Record` and returns when its
    result is on the page, raising `ActionError` for what went wrong), and
    `check` and `explain`.
    """

    idx: int
    timeout_s: float
    #: The longest a ``cnn_job`` may take, queue included (`timeout_s` when None):
    #: the load phase sets it from the job's ideal (`bench.load.job_timeout`).
    job_timeout_s: float | None = None
    #: The steps of a ``cnn_page`` run (`bench.load` sets it from ``--cnn-steps``).
    cnn_steps: int = CNN_STEPS
    counter: Numbering

    def job_finished(self, text: str, rec: Record) -> bool:
        """Reads the CNN lab's text during ``cnn_job``: notes a queue position shown or
        this session training; whether it says the job finished.

        Raises:
            ActionError: the job ended other than finished.
        """
        if found := QUEUED_RE.search(text):
            rec.queue_positions.add(int(found[1]))
            rec.caps_shown.add(int(found[2]))
            rec.running_now.discard(self.idx)
        elif FINISHED_RE.search(text):
            return True
        elif found := STOPPED_RE.search(text):
            raise ActionError("job", f"the CNN job ended: {found[0]}")
        elif RUNNING_RE.search(text):
            rec.running_now.add(self.idx)
            rec.max_running_seen = max(rec.max_running_seen, len(rec.running_now))
        return False

    def limit_s(self, action: str) -> float:
        """The longest ``action`` may take before it counts as a timeout."""
        if action == "cnn_job" and self.job_timeout_s is not None:
            return self.job_timeout_s
        return self.timeout_s

    def next_cnn_query(self) -> str:
        """The CNN lab's link for the next ``cnn_page``: a comparison never run before."""
        return cnn_query(self.cnn_steps, self.counter())

    async def check(self) -> tuple[str, str] | None:
        """An error left on the page after an action that returned: ``(kind, message)``."""
        raise NotImplementedError

    async def explain(self, kind: str, message: str) -> tuple[str, str]:
        """A better ``(kind, message)`` for an action that failed, when the page has one."""
        raise NotImplementedError

    def take_reconnects(self) -> list[str]:
        """The streams dropped and connected again since the last call (none by default)."""
        return []

    async def act(self, name: str, rec: Record) -> bool:
        """Runs one action and records its time or its error; whether it succeeded."""
        action = getattr(self, name)
        rec.actors[name].add(self.idx)
        t0 = time.monotonic()
        kind, message = None, ""
        limit = self.limit_s(name) + 10
        try:
            await asyncio.wait_for(action(rec), limit)
            elapsed = time.monotonic() - t0
            found = await self.check()
            if found is not None:
                kind, message = found
            for note in self.take_reconnects():
                rec.reconnects.append(f"session {self.idx}, {name}: {note}")
        except ActionError as err:
            kind, message = err.kind, str(err)
        except TimeoutError as err:
            kind, message = "timeout", describe_error(err, f"over {limit:.0f} s")
        except Exception as err:
            is_timeout = type(err).__name__ == "TimeoutError"
            kind = "timeout" if is_timeout else "other"
            message = describe_error(err)
        if kind is not None:
            kind, message = await self.explain(kind, message)
        if kind is None:
            rec.times[name].append(elapsed)
            return True
        rec.errors[kind].append(f"session {self.idx}, {name}: {message}")
        return False

    async def soak_run(self, rec: Record, i: int, cnn: bool = True) -> bool:
        """Soak run ``i`` (from 0): a comparison, or every fifth a sweep, every tenth
        a CNN training (a sweep without ``cnn``); the first (and any after a page
        change) loads the home page."""
        if i % 10 == 9 and cnn:
            names = ("cnn_page", "cnn_job", "home")
        elif i % 5 == 4:
            names = ("sweep", "home")
        else:
            names = ("home", "lr_change") if i == 0 else ("lr_change",)
        for name in names:
            if not await self.act(name, rec):
                return False
        rec.rounds += 1
        return True

    async def round(self, rec: Record, cnn: bool) -> bool:
        """One round of the actions; stops early at an error."""
        names = ACTIONS if cnn else ACTIONS[:3]
        for name in names:
            if not await self.act(name, rec):
                return False
        rec.rounds += 1
        return True

    async def close(self) -> None:
        """Closes the session's page."""
        raise NotImplementedError
