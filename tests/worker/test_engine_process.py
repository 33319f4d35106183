"""The engine process (`optlab.worker`): a real ``python -m optlab.worker`` child.

It must compute exactly what the page's own thread computes, stop a job its
page stopped asking for, hand every error back, and never lose a run: when it
cannot take a config, cannot start, or dies mid-run, the page computes in its
own thread.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from multiprocessing.connection import Connection
from pathlib import Path

import numpy as np
import pytest

from optlab import turns
from optlab.optim.config import OptimizerConfig
from optlab.optim.plans import Plan
from optlab.optim.schedulers import SchedulerConfig
from optlab.surface.problem import Problem
from optlab.surface.run import SurfaceRunConfig, run_surface
from optlab.surface.trajectory import collect
from optlab.sweep.config import Axis, SweepConfig
from optlab.sweep.run import run_sweep
from optlab.worker import child
from optlab.worker.client import EngineLost, EngineProcess, run_or_fallback


@pytest.fixture(scope="module")
def engine() -> Iterator[EngineProcess]:
    process = EngineProcess()
    yield process
    process.stop()


def comparison(steps: int = 300, lr: float = 0.01) -> SurfaceRunConfig:
    """Adam, SGD with OneCycleLR, and L-BFGS on a typed formula with gradient noise."""
    return SurfaceRunConfig(
        (
            OptimizerConfig.create("adam", lr=lr),
            OptimizerConfig.create("sgd", lr=0.002, momentum=0.9),
            OptimizerConfig.create("lbfgs", lr=0.5),
        ),
        Problem(surface="custom", expr="(1 - x)**2 + 5*(y - x**2)**2", steps=steps, noise=0.01),
        plans=(Plan(), Plan(SchedulerConfig("onecycle")), Plan()),
    )


def long_comparison() -> SurfaceRunConfig:
    """Eight Adams for 3000 steps: a few seconds of computing."""
    adams = tuple(OptimizerConfig.create("adam", lr=k / 1000) for k in range(1, 9))
    return SurfaceRunConfig(adams, Problem(steps=3000))


def remote_records(engine: EngineProcess, cfg: SurfaceRunConfig) -> tuple[list, int, float]:
    """The records of ``cfg`` from the engine process, the chunks they came in, and
    the CPU seconds those reported (every chunk but the last `child.CHUNK_S` of it
    or more: chunks are counted in CPU, so a run stretched by load sends no more)."""
    records, chunks, cpus = [], 0, []
    with engine.submit("surface", cfg) as job:
        for answer in job:
            if answer[0] == "records":
                records += answer[2]
                chunks += 1
                cpus.append(answer[3])
    assert all(c >= child.CHUNK_S for c in cpus[:-1]), cpus
    return records, chunks, sum(cpus)


def cpu_ticks(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return int(fields[11]) + int(fields[12])


def test_a_run_on_the_engine_process_equals_the_run_in_this_thread(engine) -> None:
    cfg = comparison()
    assert engine.accepts({"adam", "sgd", "lbfgs"}, cfg)
    records, chunks, cpu = remote_records(engine, cfg)
    assert records == list(run_surface(cfg))  # every field of every step, exactly
    assert {r.index for r in records} == {0, 1, 2}
    assert chunks >= 1 and cpu > 0


def sgd_sweep(n_lr: int, n_momentum: int, steps: int) -> SweepConfig:
    """A sweep of SGD's lr (log) by its momentum, ``steps`` steps a cell."""
    return SweepConfig(
        OptimizerConfig.create("sgd"),
        Axis("lr", 1e-4, 1e-2, n_lr, "log"),
        Axis("momentum", 0.0, 0.95, n_momentum),
        Problem(steps=steps),
    )


def test_a_sweep_on_the_engine_process_equals_the_sweep_in_this_thread(engine) -> None:
    cfg = sgd_sweep(12, 10, 200)
    assert engine.accepts({"sgd"}, cfg)
    progress, result = [], None
    with engine.submit("sweep", cfg) as job:
        for answer in job:
            if answer[0] == "progress":
                progress.append(answer[2:])
            else:
                result = answer[2]
    here = run_sweep(cfg)
    assert result is not None and result.config == cfg
    for name in ("final_loss", "best_loss", "steps_to_target", "diverged_at", "basin", "paths"):
        np.testing.assert_array_equal(getattr(result, name), getattr(here, name), err_msg=name)
    # A quick sweep may end before its first progress message is due.
    assert all(total == 200 for _, total in progress)
    assert [p[0] for p in progress] == sorted(p[0] for p in progress)


class CountedTurns(turns.PythonTurns):
    """One turn at the interpreter that counts the times its holder set it aside."""

    def __init__(self) -> None:
        super().__init__(1, patience_s=30)
        self.set_asides = 0

    def set_aside(self):
        self.set_asides += self.holding()
        return super().set_aside()


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> CountedTurns:
    """The server's turns (`optlab.turns.TURNS`) replaced by a `CountedTurns`."""
    one = CountedTurns()
    monkeypatch.setattr(turns, "TURNS", one)
    return one


def test_answers_already_come_are_read_without_setting_the_turn_aside(engine, counted):
    """A page reading its job's answers gives its interpreter turn back only to wait for
    one: those already there are read in its turn (a run sends its records in chunks;
    each turn set aside is a turn to wait for again under load)."""
    cfg = comparison()
    assert engine.accepts({"adam", "sgd", "lbfgs"}, cfg)
    with turns.turn(), engine.submit("surface", cfg) as job:
        deadline = time.monotonic() + 60
        while not any(a[0] == "done" for a in list(job.answers.queue)):
            assert time.monotonic() < deadline, "the run did not finish"
            time.sleep(0.01)
        answers = list(job)
    assert len(answers) > 3 and answers[-1][0] == "done"
    assert counted.set_asides == 0


def test_asking_an_engine_that_is_up_keeps_the_turn(engine, counted):
    """Asking whether the engine takes a run waits (with the turn set aside) only while
    it starts: under load a turn set aside is a place at the back of the line, and
    every run asks once before its job."""
    cfg = sgd_sweep(4, 4, 10)
    assert engine.accepts({"sgd"}, cfg)  # started and up
    with turns.turn():
        assert engine.accepts({"sgd"}, cfg)
        assert not engine.accepts({"no-such-optimizer"}, cfg)
    assert counted.set_asides == 0
    fresh = EngineProcess()
    try:
        with turns.turn():
            assert fresh.accepts({"sgd"}, cfg)  # waits for the start, its turn set aside
        assert counted.set_asides == 1
    finally:
        fresh.stop()


def test_a_page_reading_a_sweep_waits_in_line_once_per_bar_move_or_once(engine, counted):
    """Read for a progress bar that moves every 0.25 s at most, a sweep's progress
    messages (one every `child.PROGRESS_EVERY_S`) cost the page one return to the
    line per move, not one per message; the messages in between are dropped, the
    result is the same. Moving
    the bar where the messages find the page (``on_progress``), its turn set aside
    while it waits, the page returns to the line once, for the result."""
    cfg = sgd_sweep(60, 60, 1500)
    assert engine.accepts({"sgd"}, cfg)

    def read(every_s: float, aside: bool = False) -> tuple[list[float], list[tuple], float, int]:
        counted.set_asides = 0
        shown, answers = [], []

        def show(answer: tuple) -> None:
            shown.append(time.monotonic())
            answers.append(answer)
            assert aside == (not turns.TURNS.holding())

        t0 = time.monotonic()
        with turns.turn(), engine.submit("sweep", cfg) as job:
            for answer in job.read(every_s, on_progress=show if aside else None):
                if answer[0] == "progress":
                    show(answer)
                else:
                    answers.append(answer)
        return shown, answers, time.monotonic() - t0, counted.set_asides

    every_shown, every_answers, wall, every_set_asides = read(0.25)
    all_shown, all_answers, _, all_set_asides = read(0.0)
    aside_shown, aside_answers, aside_wall, aside_set_asides = read(0.25, aside=True)
    assert wall > 0.5, "the sweep is too quick to show anything"
    assert len(all_shown) >= 3
    for shown, took in ((every_shown, wall), (aside_shown, aside_wall)):
        assert 2 <= len(shown) <= took / 0.25 + 1
        gaps = [b - a for a, b in itertools.pairwise(shown)]
        assert all(g >= 0.25 for g in gaps), gaps
    assert every_set_asides <= len(every_shown) + 1
    assert all_set_asides > 1
    assert aside_set_asides == 1
    for answers in (every_answers, aside_answers):
        steps = [a[2] for a in answers if a[0] == "progress"]
        # The steps `run_sweep` reports (every 2 %), in order.
        assert steps == sorted(steps) and all(s % (1500 // 50) == 0 for s in steps)
        np.testing.assert_array_equal(answers[-1][2].final_loss, all_answers[-1][2].final_loss)


def test_jobs_from_many_threads_each_get_their_own_answers(engine) -> None:
    configs = [comparison(steps=150, lr=0.01 + k / 1000) for k in range(6)]
    got: dict[int, list] = {}

    def page(k: int) -> None:
        got[k] = remote_records(engine, configs[k])[0]

    threads = [threading.Thread(target=page, args=(k,)) for k in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    for k, cfg in enumerate(configs):
        assert got[k] == list(run_surface(cfg))
    assert engine.running_jobs() == 0


def test_an_error_comes_back_as_the_jobs_own_exception(engine) -> None:
    with engine.submit("surface", "not a config") as job, pytest.raises(AttributeError):
        list(job)
    assert engine.running_jobs() == 0
    # The process is still there for the next job.
    assert remote_records(engine, comparison(steps=20))[0] == list(run_surface(comparison(20)))


def test_an_exception_that_does_not_pickle_comes_back_as_its_type_and_message() -> None:
    class Local(Exception):  # a class defined in a function does not pickle
        pass

    err = child.portable(Local("the optimizer failed"))
    assert isinstance(err, RuntimeError) and str(err) == "Local: the optimizer failed"
    kept = ValueError("lr: must be positive")
    assert child.portable(kept) is kept

    class NeedsTwo(Exception):  # pickles, but does not unpickle (one argument stored)
        def __init__(self, a, b):
            super().__init__(a)

    globals()["NeedsTwo"] = NeedsTwo  # found by name, as a module-level class would be
    NeedsTwo.__qualname__ = "NeedsTwo"
    try:
        err = child.portable(NeedsTwo("x", "y"))
    finally:
        del globals()["NeedsTwo"]
    assert isinstance(err, RuntimeError) and str(err) == "NeedsTwo: x"


def test_a_job_closed_early_stops_computing(engine) -> None:
    """A page that stops asking (its budget spent, its user gone) stops the job: the
    process's CPU use falls to nothing right after."""
    long_run = long_comparison()
    with engine.submit("surface", long_run) as job:
        first = next(iter(job))
        assert first[0] == "records"
    assert engine.running_jobs() == 0
    time.sleep(0.3)
    before = cpu_ticks(engine.pid)
    time.sleep(1.0)
    # One clock tick is 10 ms: the process idles (a running job would use ~100).
    assert cpu_ticks(engine.pid) - before <= 5


def test_it_takes_only_what_it_can_run(engine) -> None:
    cfg = comparison()
    assert not engine.accepts({"adam", "only-this-server-knows-me"}, cfg)
    assert not engine.accepts({"adam"}, lambda: cfg)  # does not pickle
    assert {"adam", "sgd", "lbfgs", "muon"} <= engine.keys


def test_a_killed_engine_process_loses_no_run_and_comes_back() -> None:
    engine = EngineProcess()
    try:
        cfg = long_comparison()
        assert engine.accepts({"adam"}, cfg)
        first_pid = engine.pid
        killed = []

        def remote(job) -> list:
            records = []
            for answer in job:
                records += answer[2]
                if not killed:
                    os.kill(first_pid, signal.SIGKILL)
                    killed.append(True)
            return records

        def local() -> list:
            return list(run_surface(cfg))

        records = run_or_fallback(engine, {"adam"}, "surface", cfg, remote, local)
        assert killed and records == list(run_surface(cfg))  # computed here instead
        with pytest.raises(EngineLost):
            engine.submit("surface", cfg)
        # The next run starts a new process.
        small = comparison(steps=30)
        assert engine.accepts({"adam", "sgd", "lbfgs"}, small)
        assert engine.pid not in (None, first_pid) and engine.starts == 2
        assert remote_records(engine, small)[0] == list(run_surface(small))
    finally:
        engine.stop()


def test_a_process_that_cannot_start_is_not_retried_on_every_run() -> None:
    broken = EngineProcess([sys.executable, "-c", "import sys; sys.exit(3)"], start_timeout=30)
    started = time.monotonic()
    assert not broken.accepts({"adam"}, comparison())
    assert not broken.accepts({"adam"}, comparison())
    assert broken.starts == 1
    assert time.monotonic() - started < 30
    cfg = comparison(steps=10)
    out = run_or_fallback(broken, {"adam"}, "surface", cfg, lambda job: None, lambda: "here")
    assert out == "here"


def test_the_process_ends_with_its_server() -> None:
    engine = EngineProcess()
    assert engine.accepts({"adam"}, comparison())
    proc = engine._proc
    engine.stop()
    assert proc is not None and proc.poll() == 0


def ended(pid: int) -> bool:
    """Whether process ``pid`` has ended (gone, or a zombie waiting to be reaped)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] == "Z"
    except FileNotFoundError:
        return True


def test_the_process_runs_in_its_servers_session_and_ends_with_a_killed_server() -> None:
    """The engine process runs in its server's session (where the kernel shares the
    cores between sessions first, the trainings' nice value then counts against its
    runs) but in a process group of its own: the server killed with SIGKILL, its
    socket's close ends the engine."""
    script = (
        "import sys; from optlab.worker.client import EngineProcess\n"
        "from optlab.optim.config import OptimizerConfig\n"
        "from optlab.surface.problem import Problem\n"
        "from optlab.surface.run import SurfaceRunConfig\n"
        "e = EngineProcess()\n"
        "assert e.accepts({'sgd'}, SurfaceRunConfig((OptimizerConfig('sgd'),), Problem(steps=1)))\n"
        "print(e.pid, flush=True)\n"
        "sys.stdin.read()\n"
    )
    server = subprocess.Popen(
        [sys.executable, "-c", script],
        cwd=Path(__file__).resolve().parents[2],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        pid = int(server.stdout.readline())
        assert os.getsid(pid) == os.getsid(server.pid) != pid
        assert os.getpgid(pid) == pid != os.getpgid(server.pid)
        server.kill()
        server.wait(10)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not ended(pid):
            time.sleep(0.05)
        assert ended(pid)
    finally:
        server.kill()


def test_the_worker_refuses_a_command_line_without_its_socket(capsys) -> None:
    assert child.main([]) == 2
    assert "usage" in capsys.readouterr().out


def test_pages_run_on_the_engine_process_and_get_the_same_paths(monkeypatch) -> None:
    from optlab.ui.playground import cache

    engine = EngineProcess()
    try:
        monkeypatch.setattr(cache, "engine_process", lambda: engine)
        monkeypatch.setattr(cache, "trajectory_cache", lambda: cache.new_trajectory_cache())
        monkeypatch.setattr(cache, "REDRAW_EVERY_S", 0.01)
        cfg = comparison(steps=2000, lr=0.0123467)
        redraws = []
        trajectories, finished = cache.run_cached(
            cfg, on_progress=lambda trs, step: redraws.append(step)
        )
        assert finished and engine.starts == 1
        assert trajectories == collect(cfg)
        assert redraws and redraws == sorted(redraws) and redraws[-1] <= 2000
        # A budget of CPU seconds cuts a run on the engine process too.
        cut, finished = cache.run_cached(comparison(steps=4000, lr=0.0123468), budget_s=0.02)
        assert not finished and len(cut[0].step) < 4001
    finally:
        engine.stop()


@contextlib.contextmanager
def served_here() -> Iterator[tuple[Connection, threading.Thread]]:
    """`child.serve` in a thread of this process on a socket pair: the server's end,
    past the "ready" message, and the serving thread (joined when the end closes)."""
    ours, theirs = socket.socketpair()
    server, conn = Connection(ours.detach()), Connection(theirs.detach())
    serving = threading.Thread(target=child.serve, args=(conn,), daemon=True)
    serving.start()
    try:
        assert server.recv()[0] == "ready"
        yield server, serving
    finally:
        server.close()
        serving.join(10)


def test_a_short_run_after_a_long_one_does_not_wait_for_it() -> None:
    """Jobs compute side by side: a quick change submitted after a long run ends
    first, long before the long run does (a quick change never waits for the whole
    of a long run ahead of it)."""
    with served_here() as (server, serving):
        server.send(("surface", 1, long_comparison()))
        server.send(("surface", 2, comparison(steps=300, lr=0.0123469)))
        order, done = [], []
        while len(done) < 2:
            answer = server.recv()
            if answer[0] == "done":
                done.append(answer[1])
            elif answer[0] == "records":
                order.append(answer[1])
        assert done == [2, 1]
        # The long run's chunks kept coming while the short one computed.
        assert order.index(2) < len(order) - 1 - order[::-1].index(1)
    assert not serving.is_alive()  # it returns when the server's end closes


@pytest.mark.parametrize("every_s", [0.0, 0.1])
def test_a_sweep_sends_its_progress_at_most_every_progress_interval(monkeypatch, every_s):
    """A sweep's progress every 2 % of its steps was fifty messages, each read by the
    server's reader thread and by the waiting page, both needing the server's
    interpreter lock; the bar moves every 0.25 s at most. The engine sends one
    every `child.PROGRESS_EVERY_S` at most (0: every 2 %)."""
    monkeypatch.setattr(child, "PROGRESS_EVERY_S", every_s)
    with served_here() as (server, _):
        start = time.monotonic()
        server.send(("sweep", 1, sgd_sweep(60, 60, 1000)))
        steps = []
        while (answer := server.recv())[0] != "done":
            assert answer[0] == "progress"
            steps.append(answer[2])
        wall = time.monotonic() - start
    assert steps == sorted(steps)
    if every_s:
        assert wall > 3 * every_s, "the sweep is too quick to show the interval"
        assert 1 <= len(steps) <= wall / every_s + 1
    else:
        assert len(steps) == 50


def test_a_result_that_does_not_pickle_comes_back_as_an_error(monkeypatch) -> None:
    """Never a job its page waits for forever: a result the socket cannot carry is
    the job's error."""
    monkeypatch.setitem(child.JOBS, "unpicklable", lambda job, cfg, stop, send: lambda: cfg)
    with served_here() as (server, _):
        server.send(("unpicklable", 7, None))
        kind, job, err = server.recv()
        assert (kind, job) == ("error", 7)
        assert "pickle" in str(err).lower()


@pytest.mark.parametrize("cell", [None, 5])
def test_a_sweep_and_its_replay_come_in_one_job(engine, cell) -> None:
    """A sweeps page's job: the sweep, then one cell (the best one, or the chosen one)
    replayed with torch.optim, its records before the sweep's result."""
    cfg = sgd_sweep(4, 3, 150)
    assert engine.accepts({"sgd"}, (cfg, cell))
    kinds, records, result = [], [], None
    with engine.submit("sweep_replay", (cfg, cell)) as job:
        for answer in job:
            kinds.append(answer[0])
            if answer[0] == "records":
                records += answer[2]
            elif answer[0] == "done":
                result = answer[2]
    here = run_sweep(cfg)
    np.testing.assert_array_equal(result.final_loss, here.final_loss)
    replayed = here.best_cell() if cell is None else cell
    assert records == list(run_surface(cfg.cell_run(replayed)))
    # The sweep's progress (none when it is quick), then the replay's records, sent
    # once whole, then the result.
    assert kinds[-2:] == ["records", "done"] and set(kinds[:-2]) <= {"progress"}


def test_a_replay_that_fails_leaves_the_sweeps_result_standing(monkeypatch) -> None:
    """The sweep's result comes without the replay's records: the page then replays
    the cell in a job of its own, which shows the error (as with two jobs)."""
    import optlab.surface.run

    def failing(cfg):
        yield from itertools.islice(run_surface(cfg), 5)
        raise RuntimeError("this optimizer failed at step 5")

    cfg = sgd_sweep(3, 3, 40)
    with served_here() as (server, _):
        monkeypatch.setattr(optlab.surface.run, "run_surface", failing)  # after its warm-up
        server.send(("sweep_replay", 3, (cfg, None)))
        answers = []
        while not answers or answers[-1][0] not in ("done", "error"):
            answers.append(server.recv())
    assert [a[0] for a in answers if a[0] != "progress"] == ["done"]
    np.testing.assert_array_equal(answers[-1][2].final_loss, run_sweep(cfg).final_loss)


def test_a_sweeps_page_caches_its_replay_from_the_sweeps_job(monkeypatch) -> None:
    """The sweeps page asks the engine process for one job, and the replay it draws is
    then found in the trajectory cache: the same trajectory as a run of its own."""
    from optlab.ui.playground import cache as runs
    from optlab.ui.sweep import cache as sweeps

    engine = EngineProcess()
    try:
        for module in (runs, sweeps):
            monkeypatch.setattr(module, "engine_process", lambda: engine)
        kept = runs.new_trajectory_cache()
        monkeypatch.setattr(runs, "trajectory_cache", lambda: kept)
        swept = sweeps.new_sweep_cache()
        monkeypatch.setattr(sweeps, "sweep_cache", lambda: swept)
        cfg = sgd_sweep(5, 4, 120)
        result = sweeps.sweep_cached(cfg, replay=True)
        assert engine.submitted == 1
        best = cfg.cell_run(result.best_cell())
        trajectories, finished = runs.run_cached(best)
        assert finished and engine.submitted == 1  # found in the cache, no second job
        assert trajectories == collect(best)
        # A sweep found in the cache is not run again; a new one replays the chosen cell.
        assert sweeps.sweep_cached(cfg, replay=True, cell=3) is result
        assert engine.submitted == 1 and kept.get(cfg.cell_run(3)) is None  # the page runs it
        other = sgd_sweep(5, 4, 121)
        sweeps.sweep_cached(other, replay=True, cell=3)
        assert engine.submitted == 2
        assert [kept.get(other.cell_run(3))] == collect(other.cell_run(3))
    finally:
        engine.stop()
