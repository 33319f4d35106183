"""A study's charts draw exactly the study's numbers."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest

from optlab.study.engine import trial_result
from optlab.study.plots import expected_best_figure, trials_box_figure, tuning_figure
from optlab.study.run import study_document
from optlab.study.space import Dimension
from tests.study.test_run import DATA_INFO, STUDY


def _result(spec, acc, status="done"):
    outcome = {"final_test_acc": acc, "final_test_loss": 1.0, "best_test_acc": acc}
    outcome |= {"status": status, "diverged_at": None if status == "done" else 3}
    return trial_result(spec, {**outcome, "chance": 0.1, "seconds": 1.0}, "n", 0)


@pytest.fixture
def doc():
    results = {}
    for n, spec in enumerate(STUDY.trial_specs()):
        status = "diverged" if n == 5 else "done"
        results[spec.id] = _result(spec, 0.2 + 0.05 * n, status)
    return study_document(STUDY, results, {"name": "inline"}, 0, DATA_INFO)


def test_expected_best_draws_each_optimizer_s_curve(doc):
    fig = expected_best_figure(doc)
    assert [t.name for t in fig.data] == ["SGD", "Adam"]
    for trace, opt in zip(fig.data, doc["optimizers"], strict=True):
        assert list(trace.x) == [1, 2] and list(trace.y) == opt["expected_best"]
    assert fig.data[0].line.color != fig.data[1].line.color
    # Ticks half a point apart must not print the same label twice (".0%" did).
    assert fig.layout.yaxis.tickformat == ".1~%"


def test_a_tuning_curve_shows_every_seed_the_mean_and_the_spread(doc):
    opt = doc["optimizers"][1]
    fig = tuning_figure(doc, 1)
    seeds, means, best = fig.data
    assert sorted(seeds.y) == sorted(s for p in opt["points"] for s in p["seed_scores"])
    assert list(means.y) == [p["score"] for p in opt["points"]]
    # The bar runs from the worst seed to the best.
    for p, up, down, mean in zip(
        opt["points"], means.error_y.array, means.error_y.arrayminus, means.y, strict=True
    ):
        assert mean + up == pytest.approx(max(p["seed_scores"]))
        assert mean - down == pytest.approx(min(p["seed_scores"]))
    assert best.y[0] == opt["best"]["score"] and fig.layout.xaxis.type == "log"
    # The whole searched lr range is on the axis.
    assert fig.layout.xaxis.range == pytest.approx((-3, math.log10(0.3)))
    # Its diverged trial (point 1, seed 5) is drawn at chance, 10%.
    assert 0.1 in list(seeds.y) and opt["points"][1]["diverged"] == 1


def test_every_trial_is_a_dot_in_its_optimizer_s_box(doc):
    fig = trials_box_figure(doc)
    assert [t.name for t in fig.data] == ["SGD", "Adam"]
    for trace, opt in zip(fig.data, doc["optimizers"], strict=True):
        assert sorted(trace.y) == sorted(t["score"] for t in opt["trials"])
        assert trace.boxpoints == "all"


def test_a_second_log_knob_is_coloured_by_decade():
    cfg = replace(STUDY, dims=(*STUDY.dims, Dimension("weight_decay", 1e-5, 1e-2, "log")))
    results = {s.id: _result(s, 0.3) for s in cfg.trial_specs()}
    doc = study_document(cfg, results, {"name": "inline"}, 0, DATA_INFO)
    means = tuning_figure(doc, 0).data[1]
    wd = [p["hparams"]["weight_decay"] for p in doc["optimizers"][0]["points"]]
    assert list(means.marker.color) == pytest.approx([math.log10(v) for v in wd])
    assert (means.marker.cmin, means.marker.cmax) == pytest.approx((-5, -2))
    assert list(means.marker.colorbar.ticktext) == ["1e-5", "1e-4", "1e-3", "1e-2"]
