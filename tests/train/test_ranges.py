"""Divergence never wrecks a chart: a loss that blows up leaves the chart, marked, and the
other optimizers keep the panel's height; tables write such numbers readably.

The diverging run is real (SGD at lr 10 on SeedNet: its batch loss reaches about
6e15 at step 3, then is not finite); the figure is read from its plotly objects.
"""

from __future__ import annotations

import math

import pytest
import torch

from optlab.numbers import number_text
from optlab.train import plots as train_plots
from optlab.train.ranges import LOSS_CAP_FACTOR, Excursion, clip_range, excursions
from optlab.train.report import fold, new_logs, results_cells
from optlab.train.run import DIVERGED, EvalRecord, TrainingSession, TrainRecord
from tests.support.training import tiny_data, tiny_train_config


@pytest.fixture(scope="module")
def diverged():
    """SGD at lr 10 (diverges at step 4) beside Adam, 12 steps, with their logs."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        cfg = tiny_train_config("sgd:lr=10", "adam:lr=0.001", steps=12, eval_every=4)
        session = TrainingSession(cfg, tiny_data(seed=5))
        logs = new_logs(session)
        fold(logs, session.run())
    finally:
        torch.set_num_threads(threads)
    return session, logs


def test_excursions_say_where_a_curve_left_how_high_it_went_and_where_it_came_back():
    steps = [1, 2, 3, 4, 5, 6, 7]
    values = [2.0, 9.0, 30.0, 3.0, None, 12.0, math.inf]
    assert excursions(steps, values, cap=5.0) == [
        Excursion(left_at=2, peak=30.0, peak_at=3, back_at=4),
        Excursion(left_at=6, peak=12.0, peak_at=6, back_at=None),
    ]
    assert excursions(steps, [1.0] * 7, cap=5.0) == []


def test_the_range_is_the_values_under_the_cap_with_room_for_the_markers():
    assert clip_range([[2.3, 2.1, 1.9], [2.3, 2.2]], cap=4.6) is None  # all drawn: autorange
    clip = clip_range([[2.3, 2.1, 1.9], [2.3, 2e10, None]], cap=4.6)
    assert clip is not None and clip.cap == 2.3  # the highest value it holds
    assert clip.low < 1.9 and 2.3 < clip.marker_y < clip.high < 3.0
    # Set by the curves that did not diverge: the other one's 4 (under the cap) is off it.
    healthy = [[2.3, 2.1, 1.9]]
    clip = clip_range([*healthy, [2.3, 4.0, 3e15]], cap=4.6, basis=healthy)
    assert clip.cap == 2.3 and clip.high < 3.0
    log_clip = clip_range([[1.0, 3.0], [1.0, 1e12]], cap=1e4, log=True)
    assert log_clip.low < 0 < math.log10(3.0) < math.log10(log_clip.marker_y) < log_clip.high < 1


def test_a_diverged_loss_is_marked_off_the_chart_and_the_others_fill_it(diverged):
    _, (sgd, adam) = diverged
    assert sgd.status == DIVERGED and adam.status == "done"
    fig = train_plots.live_figure([sgd, adam])
    low, high = fig.layout.yaxis.range
    assert high < LOSS_CAP_FACTOR * sgd.history[0]["train_loss"]
    # Adam, which did not diverge, sets the range: its curves are drawn whole and
    # fill the panel but for the room left for the markers.
    mine = [h[k] for h in adam.history for k in ("train_loss", "smooth_loss")]
    assert low < min(mine) and max(mine) < high
    assert (max(mine) - min(mine)) / (high - low) > 0.7
    smooth = [h["smooth_loss"] for h in adam.history]
    # SGD's smoothed loss left where it first passed Adam's highest, marked with its peak.
    limit = max(mine)
    over = [(h["step"], h["smooth_loss"]) for h in sgd.history if h["smooth_loss"] > limit]
    off = [t for t in fig.data if t.name == f"{sgd.label} (off the chart)" and t.xaxis == "x"]
    (marker,) = [t for t in off if t.text]  # the faint batch loss's are unlabelled
    assert list(marker.x) == [over[0][0]]
    assert list(marker.text) == [f"↑{number_text(max(v for _, v in over))}"]
    assert high > marker.y[0] > max(smooth)  # in the room above the curves
    assert marker.marker.color == fig.data[0].line.color  # SGD's colour
    # Where its loss stopped being finite: a ✖.
    (cross,) = [t for t in fig.data if t.name == f"{sgd.label} (diverged)"]
    assert list(cross.x) == [sgd.diverged_at]
    assert cross.hovertext == (f"{sgd.label}: the loss was not finite at step {sgd.diverged_at:,}",)
    assert fig.layout.yaxis.title.text == "cross-entropy · ▲ off the chart"


def test_a_healthy_comparison_keeps_plotlys_own_range():
    cfg = tiny_train_config("sgd:lr=0.01", "adam:lr=0.001", steps=4, eval_every=2)
    session = TrainingSession(cfg, tiny_data(seed=5))
    logs = new_logs(session)
    fold(logs, session.run())
    fig = train_plots.live_figure(logs)
    assert fig.layout.yaxis.range is None and fig.layout.yaxis4.range is None
    assert not [t for t in fig.data if "off the chart" in t.name or "diverged" in t.name]


def test_every_optimizer_line_has_its_colour_and_dash(diverged):
    from optlab.charts import color, dash

    _, logs = diverged
    fig = train_plots.live_figure(logs)
    for trace in fig.data:
        if trace.mode and "lines" in trace.mode:
            i = int(trace.legendgroup)
            assert (trace.line.color, trace.line.dash) == (color(i), dash(i)), trace.name


def test_table_cells_write_huge_and_missing_numbers_readably(diverged):
    session, logs = diverged
    sgd, adam = results_cells(logs)
    assert sgd["status"].startswith("diverged at step ")
    assert adam["final_test_acc"].endswith("%") and adam["test_loss"] == number_text(
        adam_loss := logs[1].final_test_loss
    )
    assert float(adam["test_loss"]) == pytest.approx(adam_loss, rel=1e-3)
    # A test loss that is not finite, a huge one, and one not measured yet.
    huge = new_logs(session)
    fold(huge, [EvalRecord(4, 0, math.inf, 0.1), EvalRecord(4, 1, 2.105e11, 0.1)])
    fold(huge, [r for r in session.history if isinstance(r, TrainRecord) and r.step == 1])
    a, b = results_cells(huge)
    assert (a["test_loss"], b["test_loss"]) == ("not finite", "2.105e+11")
    (fresh, _) = results_cells(new_logs(session))
    assert fresh["final_test_acc"] == "not tested yet" and fresh["train_loss"] == "—"
    assert "None" not in " ".join(fresh.values())
