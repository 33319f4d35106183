"""Studies in this process: a trial is ``optlab train``, the folder, resume, the JSON."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from optlab.cli import main
from optlab.study.config import MAX_SEEDS, MAX_STUDY_STEPS, MAX_TRIALS, StudyConfig
from optlab.study.engine import InlineEngine
from optlab.study.run import run_study
from optlab.study.space import Dimension
from optlab.study.store import StudyFolder, StudyFolderError
from optlab.study.trial import run_trial
from optlab.train.data import synthetic_data
from tests.support.training import tiny_train_config

pytestmark = pytest.mark.usefixtures("one_thread")

TRAIN = {"steps": 4, "eval_every": 2, "train_limit": 64, "test_limit": 32, "batch_size": 16}
BASE = tiny_train_config("sgd:momentum=0.9", "adam", **TRAIN)
STUDY = StudyConfig(BASE, (Dimension("lr", 1e-3, 0.3, "log"),), trials=2, seeds=2, seed=5)
DATA_INFO = {"kind": "synthetic", "source": "test", "synthetic": True}


@pytest.fixture(scope="module")
def data():
    # What `optlab train --synthetic` trains on with these limits.
    return synthetic_data((64, 32), 0, "as asked by --synthetic")


class CountingEngine(InlineEngine):
    """The in-process engine, counting the trials it was given and stopping after
    ``stop_after`` results (an interrupted study)."""

    def __init__(self, stop_after: int | None = None) -> None:
        self.given: list[str] = []
        self.stop_after = stop_after

    def run(self, specs, data, should_stop=None):
        self.given += [s.id for s in specs]
        for n, result in enumerate(super().run(specs, data, should_stop), start=1):
            yield result
            if n == self.stop_after:
                return


def test_a_trial_is_optlab_train_bit_for_bit(tmp_path, data):
    spec = STUDY.trial_specs()[3]
    assert (spec.optimizer, spec.point, spec.seed) == (1, 0, 6)
    outcome = run_trial(spec.config, data)
    out = tmp_path / "run.json"
    argv = ["train", "--synthetic", "--opt", spec.config.slots[0].optimizer.to_text()]
    for name, value in TRAIN.items():
        argv += [f"--{name.replace('_', '-')}", str(value)]
    argv += ["--seed", str(spec.seed), "--device", "cpu", "--out", str(out)]
    assert main(argv) == 0
    (run,) = json.loads(out.read_text())["runs"]
    assert run["hparams"]["lr"] == spec.hparams["lr"]
    assert outcome["final_test_acc"] == run["final_test_acc"]
    assert outcome["best_test_acc"] == run["best_test_acc"]
    assert outcome["final_test_loss"] == run["evals"][-1]["test_loss"]
    assert outcome["status"] == run["status"] == "done"


def test_every_optimizer_gets_the_same_points_and_seeds():
    specs = STUDY.trial_specs()
    assert len(specs) == STUDY.n_trials == 8
    by_opt = [
        [(s.point, s.seed, s.hparams["lr"]) for s in specs if s.optimizer == i] for i in (0, 1)
    ]
    assert by_opt[0] == by_opt[1]
    assert {s.seed for s in specs} == {5, 6}
    # Each trial is a one-optimizer run with the point's lr and its seed.
    for s in specs:
        (slot,) = s.config.slots
        assert slot.optimizer.kwargs["lr"] == s.hparams["lr"] and s.config.seed == s.seed
        assert slot.optimizer.key == BASE.slots[s.optimizer].optimizer.key
    assert dict(specs[0].config.slots[0].optimizer.kwargs)["momentum"] == 0.9


def test_an_interrupted_study_resumes_without_rerunning_a_finished_trial(tmp_path, data):
    folder = StudyFolder(tmp_path / "study")
    folder.start(STUDY, DATA_INFO)
    first = CountingEngine(stop_after=3)
    partial = run_study(STUDY, data, folder, first, DATA_INFO)
    assert partial["trials_done"] == 3 and len(folder.finished()) == 3
    assert not any(o["complete"] for o in partial["optimizers"])
    # A new process reads the study back from its folder and runs only the rest.
    cfg, info = StudyFolder(folder.path).read()
    assert cfg.to_dict() == STUDY.to_dict() and info == DATA_INFO
    second = CountingEngine()
    doc = run_study(cfg, data, folder, second, info)
    assert set(second.given).isdisjoint(first.given[:3]) and len(second.given) == 5
    assert doc["resumed_trials"] == 3 and doc["trials_done"] == 8
    # Done is done: a third run trains nothing.
    third = CountingEngine()
    assert run_study(cfg, data, folder, third, info)["trials_done"] == 8 and third.given == []
    # The same numbers as a study that was never interrupted.
    whole = StudyFolder(tmp_path / "whole")
    whole.start(STUDY, DATA_INFO)
    uninterrupted = run_study(STUDY, data, whole, InlineEngine(), DATA_INFO)
    for a, b in zip(doc["optimizers"], uninterrupted["optimizers"], strict=True):
        assert a["points"] == b["points"] and a["expected_best"] == b["expected_best"]
    summary = json.loads((folder.path / "summary.json").read_text())
    assert summary["trials_done"] == 8


def test_the_study_json_holds_what_the_contract_names(tmp_path, data):
    folder = StudyFolder(tmp_path / "s")
    folder.start(STUDY, DATA_INFO)
    doc = run_study(STUDY, data, folder, InlineEngine(), DATA_INFO)
    assert {"config", "engine", "resumed_trials", "optimizers"} <= set(doc)
    assert StudyConfig.from_dict(doc["config"]) == STUDY
    assert doc["engine"]["name"] == "inline"
    for opt in doc["optimizers"]:
        assert {"optimizer", "trials", "expected_best", "best", "edge"} <= set(opt)
        assert len(opt["trials"]) == 4 and len(opt["expected_best"]) == 2
        for t in opt["trials"]:
            assert {"hparams", "seed", "final_test_acc", "final_test_loss", "best_test_acc"} <= set(
                t
            )
            assert {"status", "seconds", "node"} <= set(t)
        scores = sorted(p["score"] for p in opt["points"])
        assert opt["expected_best"][0] == pytest.approx(sum(scores) / 2)
        assert opt["best"]["score"] == scores[-1]
        # Two points at 1e-3..0.3 on a log scale: Sobol's first points are near the
        # middle and an end, so the flag is computed, not assumed.
        assert opt["edge"] == bool(opt["edge_notes"])


def test_a_folder_holds_one_study(tmp_path):
    folder = StudyFolder(tmp_path / "s")
    folder.start(STUDY, DATA_INFO)
    with pytest.raises(StudyFolderError, match="holds a study already; add --resume"):
        folder.start(STUDY, DATA_INFO)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(StudyFolderError, match="not an empty folder"):
        StudyFolder(tmp_path / "other").start(STUDY, DATA_INFO)
    with pytest.raises(StudyFolderError, match="holds no study"):
        StudyFolder(tmp_path / "other").read()
    (tmp_path / "s" / "study.json").write_text("{not json")
    with pytest.raises(StudyFolderError, match="is not a study"):
        folder.read()


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"trials": MAX_TRIALS + 1}, f"--trials: expected a whole number in [1, {MAX_TRIALS}]"),
        ({"trials": 0}, "--trials: expected a whole number"),
        ({"seeds": MAX_SEEDS + 1}, f"--seeds: expected a whole number in [1, {MAX_SEEDS}]"),
        ({"base": replace(BASE, steps=MAX_STUDY_STEPS // 4)}, "over the study cap"),
        (
            {
                "grid": True,
                "dims": (Dimension("lr", 1e-3, 1.0), Dimension("weight_decay", 1e-5, 1e-2)),
            },
            "--grid: 2 trials is no grid",
        ),
    ],
)
def test_studies_past_the_caps_are_refused(change, fragment):
    with pytest.raises(ValueError) as err:
        replace(STUDY, **change)
    assert fragment in str(err.value)
