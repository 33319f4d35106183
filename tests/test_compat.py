"""What the main branch wrote before the restructure still loads, unchanged.

``tests/fixtures/before-restructure`` was made by OptLab at commit 9b07be6, the
last one with the flat layout: share links of all three pages
(``links.json``), a 3-step checkpoint of a CNN run with a scheduler
(``python -m optlab train --synthetic --opt sgd:lr=0.05 --scheduler
step:step_size=2,gamma=0.5 --steps 3 --batch-size 16 --train-limit 64
--test-limit 32 --eval-every 2 --device cpu --seed 5 --checkpoint``), and
that run resumed there to step 5 (``resumed.json``, ``--resume ... --steps 5
--out``). Today's code must read every link into the same settings (writing
each back exactly) and resume the checkpoint to the same numbers.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from optlab.links import CNN, PLAYGROUND, SWEEP
from optlab.train.checkpoint import load_checkpoint, resume
from optlab.train.data import synthetic_data, synthetic_size
from optlab.train.report import fold, new_logs, run_document
from optlab.train.run import TrainingSession, TrainRunConfig
from optlab.ui.sweep import settings as sweep_settings
from tests.support.resources import ROOT

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "before-restructure"
LINKS = json.loads((FIXTURES / "links.json").read_text(encoding="utf-8"))
RESUMED = json.loads((FIXTURES / "resumed.json").read_text(encoding="utf-8"))


def as_lists(params: dict[str, Any]) -> dict[str, list[str]]:
    return {k: v if isinstance(v, list) else [v] for k, v in params.items()}


@pytest.mark.parametrize("params", LINKS["playground"], ids=["quadratic-plans", "formula"])
def test_old_playground_links_read_and_write_back_the_same(params: dict[str, Any]) -> None:
    cfg = PLAYGROUND.from_params(as_lists(params))
    assert as_lists(PLAYGROUND.to_params(cfg)) == as_lists(params)


def test_old_cnn_links_read_and_write_back_the_same() -> None:
    (params,) = LINKS["cnn"]
    link = CNN.from_params(as_lists(params))
    assert link.data == "synthetic" and link.config.train_limit is None
    assert as_lists(CNN.to_params(link)) == as_lists(params)


@pytest.mark.parametrize("params", LINKS["sweep"], ids=["sweep", "basins", "fair"])
def test_old_sweep_links_fill_the_page_as_they_did(params: dict[str, Any]) -> None:
    state: dict[str, Any] = {}
    sweep_settings._defaults(state)
    sweep_settings.apply_link(state, SWEEP.from_params(as_lists(params)))
    assert as_lists(sweep_settings.share_params(state)) == as_lists(params)


def _strip_timings(document: dict[str, Any]) -> dict[str, Any]:
    """A run document without what depends on the machine's speed or the path."""
    runs = []
    for run in document["runs"]:
        history = [{k: v for k, v in row.items() if k != "images_per_s"} for row in run["history"]]
        kept = {k: v for k, v in run.items() if k not in ("seconds", "images_per_s", "history")}
        runs.append({**kept, "history": history})
    return {"config": document["config"], "runs": runs}


def _same(ours: Any, theirs: Any, where: str = "") -> None:
    """Asserts two run documents are equal, floats to float32's precision: the
    fixture's numbers came from another CPU, whose vector kernels may round a sum's
    last bit differently (a loss of 2.37192965 there is 2.37192917 here)."""
    if isinstance(theirs, float) and isinstance(ours, int | float):
        assert math.isclose(ours, theirs, rel_tol=1e-5, abs_tol=1e-7), (where, ours, theirs)
    elif isinstance(theirs, dict):
        assert isinstance(ours, dict) and ours.keys() == theirs.keys(), where
        for key in theirs:
            _same(ours[key], theirs[key], f"{where}.{key}")
    elif isinstance(theirs, list):
        assert isinstance(ours, list) and len(ours) == len(theirs), where
        for i, (a, b) in enumerate(zip(ours, theirs, strict=True)):
            _same(a, b, f"{where}[{i}]")
    else:
        assert ours == theirs, (where, ours, theirs)


def test_an_old_checkpoint_resumes_to_the_same_numbers() -> None:
    state = load_checkpoint(FIXTURES / "checkpoint.pt")
    saved = TrainRunConfig.from_dict(state["config"])
    cfg = TrainRunConfig.from_dict({**state["config"], "steps": 5})
    assert (saved.steps, cfg.steps) == (3, 5)
    data = synthetic_data(synthetic_size(cfg.train_limit, cfg.test_limit), 0, "test")
    session = TrainingSession(cfg, data)
    resume(session, state)
    logs = new_logs(session)
    fold(logs, session.history)
    for record in session.run():
        logs[record.index].add(record)
    ours = run_document(session, logs, data.source, data.kind)
    _same(_strip_timings(ours), _strip_timings(RESUMED))


def test_the_cli_resumes_an_old_checkpoint_as_it_did(tmp_path: Path) -> None:
    out = tmp_path / "resumed.json"
    argv = ["train", "--synthetic", "--opt", "sgd:lr=0.05"]
    argv += ["--scheduler", "step:step_size=2,gamma=0.5", "--steps", "5", "--batch-size", "16"]
    argv += ["--train-limit", "64", "--test-limit", "32", "--eval-every", "2", "--device", "cpu"]
    argv += ["--seed", "5", "--resume", str(FIXTURES / "checkpoint.pt"), "--out", str(out)]
    proc = subprocess.run(
        [sys.executable, "-m", "optlab", *argv],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    ours = json.loads(out.read_text(encoding="utf-8"))
    assert ours["resumed_from"]["step"] == RESUMED["resumed_from"]["step"] == 3
    _same(_strip_timings(ours), _strip_timings(RESUMED))
