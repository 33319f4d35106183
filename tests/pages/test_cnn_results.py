"""The CNN lab's results after Stop, under AppTest: one evaluation feeds the table and the
confusion matrix, and images/s reads the same in the progress bar, the caption and the JSON.

A real job on the synthetic shapes is started and stopped through the page's own
buttons; the page is then read as the user sees it (text cells, the plotly JSON).
"""

from __future__ import annotations

import json
import re
import time

from streamlit.testing.v1 import AppTest

from optlab.train.jobs import CANCELLED
from optlab.train.report import speed_text
from optlab.train.run import IMAGES_PER_S, EvalRecord
from tests.pages.test_cnn import (
    JOB_TIMEOUT,
    button,
    clean_environment,
    cnn_page,
    finish,
    job_document,
    no_problems,
    results,
    tiny,
)

__all__ = ["clean_environment"]  # the autouse fixture: an empty cache, no data folder


def chart(at: AppTest, key: str) -> dict:
    (found,) = [e for e in at.get("plotly_chart") if e.proto.id.endswith(f"-{key}")]
    return json.loads(found.proto.spec)


def progress_text(at: AppTest) -> str:
    (bar,) = at.get("progress")
    return bar.proto.text


def test_after_stop_the_table_and_the_confusion_matrix_show_one_evaluation():
    at = tiny(cnn_page(), steps=400, eval_every=1000)
    at.number_input(key="cnn_train_limit").set_value(1024).run()  # 32 steps an epoch
    button(at, "Start").click().run()
    no_problems(at)
    job = at.session_state["cnn_job"]
    deadline = time.monotonic() + JOB_TIMEOUT
    while job.session is None or job.session.step < 3:
        assert time.monotonic() < deadline, "the job did not start"
        job.poll()
        time.sleep(0.02)
    at.run()  # the page as it polls: Stop is live
    button(at, "Stop").click().run()
    finish(at)
    session = job.session
    stop = session.step
    assert job.state == CANCELLED and 3 <= stop < 400
    evals = [r for r in job.poll().records if isinstance(r, EvalRecord)]
    assert {r.step for r in evals} == {stop}  # the one evaluation, at the stopping step

    rows = results(at)
    assert [r["status"] for r in rows] == [f"stopped at step {stop:,}"] * 2
    for index, row in enumerate(rows):
        at.radio(key="cnn_pick").set_value(index).run()
        no_problems(at)
        title = chart(at, "cnn_confusion")["layout"]["title"]["text"]
        right, total, share = re.search(
            rf"at step {stop:,}: (\d+) of (\d+) right \(([\d.]+%)\)", title
        ).groups()
        (mine,) = [e for e in evals if e.index == index]
        assert int(right) / int(total) == mine.test_acc
        assert row["final_test_acc"] == share == f"{mine.test_acc:.1%}"


def test_images_per_s_reads_the_same_in_the_progress_bar_the_caption_and_the_json():
    at = tiny(cnn_page(), steps=6)
    button(at, "Start").click().run()
    job = finish(at)
    speed = job.poll().images_per_s
    assert speed == job.session.images_per_s and speed > 0
    assert speed_text(speed) in progress_text(at)
    assert f"Speed: {speed_text(speed)}, {IMAGES_PER_S}." in [c.value for c in at.caption]
    assert job_document(job)["images_per_s"] == speed
    # Each optimizer's own compute time is named as such, never as images/s.
    (cost,) = [c.value for c in at.caption if c.value.startswith("Compute per step")]
    assert "images/s" not in cost and cost.count(" ms") == 2
