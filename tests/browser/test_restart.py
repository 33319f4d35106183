"""A server killed mid-training loses no work: a real `streamlit run` killed with SIGKILL.

The CNN lab's job autosaves every few steps into the runs folder. After the
kill a new server starts on the same port and folders; the open tab
reconnects by itself, its page (which knows its run from the ``run`` in its
URL) offers the interrupted run, and Resume trains it to the end. The
resumed run's results (every step's losses, accuracies, learning rates and
norms, every test evaluation) equal those of an uninterrupted run from the
same checkpoint, computed here in the test process.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
import torch
from playwright.sync_api import expect

from optlab.train.autosave import CHECKPOINT, META
from optlab.train.checkpoint import load_checkpoint, resume
from optlab.train.data import synthetic_data, synthetic_size
from optlab.train.report import fold, new_logs
from optlab.train.run import TrainingSession, TrainRunConfig
from tests.browser.test_cnn import no_exception, server_env, settle, sidebar, tiny_run
from tests.browser.test_faults import finishes_normally, open_lab, progress, shown_step, start
from tests.support.server import free_port, launch_app, stop_app

pytestmark = pytest.mark.browser

STEPS = 150
AUTOSAVE = 25


def saved_run(runs: Path) -> tuple[Path, dict]:
    """The one run folder and its run.json."""
    [folder] = [p for p in runs.iterdir() if (p / META).is_file()]
    return folder, json.loads((folder / META).read_text())


def uninterrupted_from(checkpoint: Path) -> list[dict]:
    """The run documents' ``history`` and ``evals`` of the checkpoint trained to the end here."""
    state = load_checkpoint(checkpoint)
    cfg = TrainRunConfig.from_dict(state["config"])
    # The page's synthetic set; resume checks that these are the images the run
    # was trained on.
    data = synthetic_data(synthetic_size(cfg.train_limit, cfg.test_limit), 0, "test")
    session = TrainingSession(cfg, data)
    resume(session, state)
    while not session.finished:
        session.run_step()
    logs = new_logs(session)
    fold(logs, session.history)
    return [{"history": log.history, "evals": log.evals} for log in logs]


def resumes_as_if_never_interrupted(
    tab, run_id: str, saved_step: int, steps: int, folder: Path, kept: Path, threads: int
) -> None:
    """After its server died: the tab, reconnected by itself, offers its run saved at
    ``saved_step``; Resume trains it to the end, with the results of the checkpoint
    ``kept`` trained on here uninterrupted (with ``threads`` torch threads, as the
    server trained: float sums depend on the thread count)."""
    banner = tab.get_by_text("Your run was interrupted (the server stopped)")
    banner.wait_for(timeout=90_000)
    assert f"saved at step {saved_step:,} of {steps:,}" in tab.inner_text("body")
    settle(tab)
    assert f"run={run_id}" in tab.url
    no_exception(tab)

    tab.get_by_role("button", name="Resume my run").click()
    progress(tab, steps).wait_for()
    expect(tab.get_by_text("Your run was interrupted")).to_have_count(0)
    finishes_normally(tab, steps)
    assert not folder.exists()  # a finished run is not kept

    with tab.expect_download() as download:
        tab.get_by_role("button", name="Download JSON").click()
    page_doc = json.loads(Path(download.value.path()).read_text())
    got = [{"history": r["history"], "evals": r["evals"]} for r in page_doc["runs"]]
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        want = uninterrupted_from(kept)
    finally:
        torch.set_num_threads(before)
    for mine, theirs in zip(got, want, strict=True):
        assert len(mine["history"]) == steps
        assert mine == theirs
    assert sidebar(tab).get_by_role("button", name="Start").is_enabled()


def test_a_killed_server_s_run_is_resumed_with_the_same_results(browser, tmp_path):
    env = server_env(
        tmp_path / "cache", OPTLAB_MAX_JOBS="1", OPTLAB_CAP_AUTOSAVE_STEPS=str(AUTOSAVE)
    )
    runs = tmp_path / "runs"
    env["OPTLAB_RUNS_DIR"] = str(runs)
    log, port = tmp_path / "server.log", free_port()
    proc, url = launch_app(log, env, port)
    context = None
    try:
        context, tab = open_lab(browser, url)
        tiny_run(tab, steps=STEPS)
        start(tab)
        progress(tab, STEPS).wait_for()
        tab.wait_for_function("() => /[?&]run=\\d{8}-\\d{6}-[0-9a-f]{6}/.test(location.search)")
        run_id = re.search(r"run=([\w-]+)", tab.url)[1]
        while shown_step(tab, STEPS) < 3 * AUTOSAVE:
            assert shown_step(tab, STEPS) < STEPS
            tab.wait_for_timeout(100)
        folder, meta = saved_run(runs)
        assert folder.name == run_id and meta["state"] == "running"

        proc.kill()  # SIGKILL: no clean shutdown, no last save
        proc.wait()
        folder, meta = saved_run(runs)
        saved_step = meta["step"]
        assert saved_step % AUTOSAVE == 0 and AUTOSAVE <= saved_step < STEPS
        kept = tmp_path / "at-the-kill.pt"
        shutil.copy(folder / CHECKPOINT, kept)

        proc, _ = launch_app(log, env, port)  # the same port and folders
        # The tab reconnects by itself; its URL names its run.
        resumes_as_if_never_interrupted(
            tab, run_id, saved_step, STEPS, folder, kept, torch.get_num_threads()
        )
    finally:
        if context is not None:
            context.close()
        stop_app(proc, log)
