"""What a comparison's records add up to: logs, results table, predictions, optimizer state."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from optlab.optim.config import OptimizerConfig
from optlab.optim.schedulers import SchedulerConfig
from optlab.train import plots as train_plots
from optlab.train.data import LoadedData
from optlab.train.report import (
    confusion_matrix,
    fold,
    new_logs,
    param_group_rows,
    prediction_examples,
    results_rows,
    run_document,
    short_names,
    state_rows,
)
from optlab.train.run import DONE, EvalRecord, TrainingSession, TrainRunConfig, TrainSlot
from tests.support.training import tiny_data, tiny_train_config


@pytest.fixture(scope="module")
def data() -> LoadedData:
    return tiny_data(seed=5)


@pytest.fixture(scope="module")
def finished(data):
    cfg = tiny_train_config(
        TrainSlot(OptimizerConfig.from_text("sgd:lr=0.05,momentum=0.9"), 10.0),
        TrainSlot(OptimizerConfig.from_text("adam:lr=0.002"), scheduler=SchedulerConfig("cosine")),
        steps=8,
        eval_every=4,
    )
    session = TrainingSession(cfg, data)
    records = list(session.run())
    logs = new_logs(session)
    fold(logs, records)
    return session, records, logs


def test_logs_fold_every_record_of_their_optimizer(finished):
    _session, records, logs = finished
    for i, log in enumerate(logs):
        mine = [r for r in records if r.index == i]
        evals = [r for r in mine if isinstance(r, EvalRecord)]
        assert [h["step"] for h in log.history] == list(range(1, 9))
        assert [e["step"] for e in log.evals] == [r.step for r in evals] == [4, 8]
        assert log.final_test_acc == evals[-1].test_acc
        assert log.best_test_acc == max(r.test_acc for r in evals)
        assert log.status == DONE
        # Seconds are the sum of the optimizer's own step times; ms/step their mean.
        times = [r.step_s for r in mine if not isinstance(r, EvalRecord)]
        assert log.seconds == pytest.approx(sum(times))
        assert log.step_ms == pytest.approx(1000 * sum(times) / 8)


def test_results_rows_are_the_table_the_cli_and_the_page_show(finished):
    _, _, logs = finished
    rows = results_rows(logs)
    assert [r["optimizer"] for r in rows] == [log.slot.label for log in logs]
    for row, log in zip(rows, logs, strict=True):
        assert row["final_test_acc"] == log.final_test_acc
        assert 0 <= row["best_test_acc"] <= 1
        assert row["test_loss"] > 0 and row["train_loss"] > 0
        assert row["step_ms"] > 0
        assert row["status"] == "done"


def test_results_rows_before_any_record_say_nothing_is_known(finished):
    session, _, _ = finished
    (row, _) = results_rows(new_logs(session))
    assert row["final_test_acc"] is None and row["step_ms"] is None
    assert row["train_loss"] is None


def test_run_document_is_strict_json(finished):
    session, _, logs = finished
    doc = run_document(session, logs, "synthetic (test)", "synthetic")
    back = json.loads(json.dumps(doc, allow_nan=False))
    assert back["config"] == session.cfg.to_dict()
    assert [len(r["history"]) for r in back["runs"]] == [8, 8]
    assert back["device"] == "cpu"


def test_short_names_number_only_repeated_optimizers():
    slots = [TrainSlot(OptimizerConfig.from_text(t)) for t in ("adam", "sgd", "adam:lr=0.1")]
    assert short_names(slots) == ["Adam #1", "SGD", "Adam #3"]


def test_predictions_and_confusion_matrix_agree_with_the_evaluation(finished):
    session, _, logs = finished
    for i, log in enumerate(logs):
        predicted = session.predict(i)
        assert predicted.shape == session.test_labels.shape and predicted.dtype == torch.int64
        matrix = confusion_matrix(session.test_labels, predicted, 10)
        assert matrix.sum() == len(session.test_labels)
        assert np.array_equal(matrix.sum(axis=1), np.bincount(session.test_labels, minlength=10))
        # The evaluation after the last step measured the same models.
        assert np.trace(matrix) / matrix.sum() == pytest.approx(log.final_test_acc)


def test_confusion_matrix_counts_true_rows_and_predicted_columns():
    labels = torch.tensor([0, 0, 1, 2, 2, 2])
    predicted = torch.tensor([0, 1, 1, 2, 0, 2])
    expected = [[1, 1, 0], [0, 1, 0], [1, 0, 2]]
    assert confusion_matrix(labels, predicted, 3).tolist() == expected


def test_prediction_examples_enlarge_images_and_caption_mistakes():
    images = torch.randint(0, 256, (3, 3, 32, 32), dtype=torch.uint8)
    examples = prediction_examples(
        images, torch.tensor([0, 1, 2]), torch.tensor([0, 2, 2]), ("cat", "dog", "ship"), scale=2
    )
    assert [(caption, ok) for _, caption, ok in examples] == [
        ("✓ cat", True),
        ("✗ dog → ship", False),
        ("✓ ship", True),
    ]
    big = examples[0][0]
    assert big.shape == (64, 64, 3) and big.dtype == np.uint8
    assert np.array_equal(big[::2, ::2], images[0].permute(1, 2, 0).numpy())


def test_param_group_rows_show_both_groups_and_their_own_lrs(finished):
    session, _, _ = finished
    sgd_rows = param_group_rows(session.optimizers[0])
    assert [r["group"] for r in sgd_rows] == ["features", "classifier"]
    assert [r["lr"] for r in sgd_rows] == ["0.05", "0.5"]  # classifier lr x10
    assert all(r["momentum"] == "0.9" for r in sgd_rows)
    assert sgd_rows[0]["params"] == "6 tensors" and sgd_rows[1]["params"] == "4 tensors"


def test_state_rows_name_every_state_tensor_with_its_true_norm(finished):
    session, _, _ = finished
    adam, model = session.optimizers[1], session.models[1]
    rows = state_rows(adam, model)
    names = dict(model.named_parameters())
    assert {r["state"] for r in rows} == {"step", "exp_avg", "exp_avg_sq"}
    assert len(rows) == 3 * len(names)
    for row in rows:
        value = adam.state[names[row["parameter"]]][row["state"]]
        if row["state"] == "step":
            assert row["shape"] == "scalar" and float(row["value"]) == 8
        else:
            assert row["shape"] == "×".join(map(str, value.shape))
            norm = float(row["value"].split("= ")[1])
            assert norm == pytest.approx(torch.linalg.vector_norm(value).item(), rel=1e-3)


def panel(fig, row: int, col: int) -> list:
    """The traces drawn in one panel of the 2 x 2 live figure."""
    n = (row - 1) * 2 + col
    axis = "x" if n == 1 else f"x{n}"
    return [t for t in fig.data if t.xaxis == axis]


def test_live_figure_draws_loss_and_accuracy_per_optimizer(finished):
    _, _, logs = finished
    fig = train_plots.live_figure(logs)
    assert [a.text for a in fig.layout.annotations] == list(train_plots.TITLES)
    legend = [t.name for t in fig.data if t.showlegend]
    sgd, adam = (log.slot.label for log in logs)
    assert legend == [sgd, f"{sgd} (classifier)", adam]  # one entry each, plus SGD's 2nd group
    loss = [t for t in panel(fig, 1, 1) if t.opacity is None]
    assert [t.name for t in loss] == [sgd, adam]
    assert [list(t.x) for t in panel(fig, 1, 2)] == [[4, 8], [4, 8]]
    assert list(fig.layout.yaxis2.range) == [0, 1.02]


def test_live_figure_splits_lr_groups_only_where_they_differ(finished):
    _, _, logs = finished
    fig = train_plots.live_figure(logs)
    sgd, adam = (log.slot.label for log in logs)
    lr = panel(fig, 2, 1)
    assert [t.name for t in lr] == [f"{sgd} (features)", f"{sgd} (classifier)", adam]
    assert list(lr[1].y) == [10 * v for v in lr[0].y]
    cosine = lr[2]
    assert list(cosine.y) == sorted(cosine.y, reverse=True) and cosine.y[0] > cosine.y[-1]
    assert fig.layout.yaxis3.type == "log" and fig.layout.yaxis4.type == "log"
    assert len(panel(fig, 2, 2)) == 2  # one gradient-norm curve per optimizer


def test_empty_charts_say_they_are_waiting(finished):
    session, _, _ = finished
    fig = train_plots.live_figure(new_logs(session))
    assert "waiting for the first step" in fig.layout.annotations[-1].text


def test_long_runs_are_thinned_for_drawing(finished):
    session, _, _ = finished
    logs = new_logs(session)
    for log in logs:
        log.history = [
            {"step": s, "train_loss": 1.0, "smooth_loss": 1.0, "lrs": [0.1, 0.1], "grad_norm": 1.0}
            for s in range(1, 5001)
        ]
    fig = train_plots.live_figure(logs)
    assert all(len(t.x) <= train_plots.MAX_CURVE_POINTS for t in fig.data)
    assert all(t.x[-1] == 5000 for t in panel(fig, 1, 1))


def test_a_diverged_run_keeps_its_last_finite_loss(data):
    cfg = TrainRunConfig(
        (TrainSlot(OptimizerConfig.from_text("sgd:lr=1000")),),
        batch_size=32,
        steps=30,
        epochs=None,
        train_limit=256,
        test_limit=64,
        device="cpu",
    )
    session = TrainingSession(cfg, data)
    logs = new_logs(session)
    fold(logs, session.run())
    (log,) = logs
    assert log.status_text().startswith("diverged at step ")
    assert math.isfinite(log.smooth_loss)
    assert json.dumps(log.to_dict(), allow_nan=False)
