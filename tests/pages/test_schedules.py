"""Schedules and mid-run changes through the pages' own widgets, under AppTest.

The playground: a slot's "Schedule" expander (a torch lr scheduler and changes
typed one per line) reaches the run, the share link and the lr chart, and a
share link with ``plan=`` fills those widgets back. The CNN lab: a slot's
changes reach the started job, and the "Change a running optimizer" form
reaches a job while it trains. Charts are read from the plotly JSON the page
sends (arrays arrive as plotly's base64 typed arrays).
"""

from __future__ import annotations

import base64
import json
import math
import time
from dataclasses import replace

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from optlab.links import config_to_params
from optlab.optim.config import OptimizerConfig
from optlab.optim.plans import Change, Plan
from optlab.optim.schedulers import SchedulerConfig
from optlab.surface.problem import Problem
from optlab.surface.run import SurfaceRunConfig
from optlab.train.jobs import Job
from optlab.train.run import TrainRecord
from optlab.ui.cnn import jobs
from optlab.ui.playground import settings
from tests.support.resources import APP

TIMEOUT = 120
JOB_TIMEOUT = 60


def app(query: dict | None = None) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    if query:
        at.query_params.update(query)
    return at.run()


def no_problems(at: AppTest) -> None:
    assert not at.exception, [e.message for e in at.exception]
    assert not at.error, [e.value for e in at.error]


def query(at: AppTest) -> dict[str, list[str]]:
    """The page's URL query parameters, every value as a list."""
    return {k: v if isinstance(v, list) else [v] for k, v in at.query_params.items()}


def as_lists(params: dict) -> dict[str, list[str]]:
    return {k: v if isinstance(v, list) else [v] for k, v in params.items()}


def array(value) -> np.ndarray:
    """A plotly JSON array: a plain list or a base64 typed array."""
    if isinstance(value, dict) and "bdata" in value:
        out = np.frombuffer(base64.b64decode(value["bdata"]), dtype=np.dtype(value["dtype"]))
        return out.reshape(value["shape"]) if "shape" in value else out
    return np.asarray(value, dtype=float)


def chart(at: AppTest, key: str) -> dict | None:
    """The figure JSON of the plotly chart with widget key ``key``, if the page drew one."""
    for element in at.get("plotly_chart"):
        if element.proto.id.endswith(f"-{key}"):
            return json.loads(element.proto.spec)
    return None


def curves(figure: dict) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    return {t["name"]: (array(t["x"]), array(t["y"])) for t in figure["data"]}


# --- the playground ----------------------------------------------------------------------------


def test_scheduler_and_changes_reach_the_link_and_the_lr_chart():
    at = app()
    no_problems(at)
    assert chart(at, "lr_curves") is None  # no plan yet: no lr chart
    assert "plan" not in at.query_params
    assert at.selectbox(key="slot0_sched").value == "none"
    assert at.text_area(key="slot1_changes").value in ("", None)

    at.selectbox(key="slot0_sched").set_value("cosine").run()
    at.text_area(key="slot1_changes").set_value("100:lr=0.0001").run()
    no_problems(at)
    # The cosine's knob appeared with torch's default.
    assert at.number_input(key="slot0_sched_eta_min").value == 0.0

    expected = replace(
        settings.default_config(),
        plans=(
            Plan(SchedulerConfig("cosine")),
            Plan(changes=(Change(100, "lr", 1e-4),)),
            Plan(),
        ),
    )
    want = as_lists(config_to_params(expected))
    assert want["plan"] == ["cosine", "none|100:lr=0.0001", "none"]
    assert query(at) == want

    figure = chart(at, "lr_curves")
    assert figure is not None
    assert figure["layout"]["title"]["text"] == "Learning rate"
    lines = curves(figure)
    assert list(lines) == ["SGD (momentum=0.9)", "Adam (lr=0.1)", "RMSprop"]
    # SGD: CosineAnnealingLR over the 500 steps, from 1e-3 down to eta_min = 0.
    steps, lr = lines["SGD (momentum=0.9)"]
    assert list(steps) == list(range(501))
    cosine = [1e-3 * (1 + math.cos(math.pi * s / 500)) / 2 for s in steps]
    assert lr == pytest.approx(cosine, rel=1e-6, abs=1e-12)
    assert np.all(np.diff(lr) <= 0) and lr[250] == pytest.approx(5e-4)
    # Adam: 0.1 until the change, 1e-4 from step 100 on (the lr step 100 used).
    steps, lr = lines["Adam (lr=0.1)"]
    assert set(lr[steps < 100]) == {0.1} and set(lr[steps >= 100]) == {1e-4}
    # RMSprop: no plan, a flat line.
    assert set(lines["RMSprop"][1]) == {0.01}


def test_a_bad_change_line_is_named_and_stops_nothing_else():
    at = app()
    at.text_area(key="slot1_changes").set_value("100:lr=abc").run()
    assert not at.exception, [e.message for e in at.exception]
    (error,) = at.error
    assert "100:lr=abc" in error.value and "not a number" in error.value
    assert at.text_area(key="slot1_changes").value == "100:lr=abc"  # what was typed stays
    assert "plan" not in at.query_params  # the link keeps the last runnable comparison

    at.text_area(key="slot1_changes").set_value("100:lr=0.0001\n200:lr=-1").run()
    assert not at.exception
    (error,) = at.error
    assert "Invalid lr value: -1" in error.value

    at.text_area(key="slot1_changes").set_value("100:lr=0.0001").run()
    no_problems(at)
    assert query(at)["plan"] == ["none", "none|100:lr=0.0001", "none"]
    assert chart(at, "lr_curves") is not None


def test_a_share_link_with_plans_fills_the_schedule_widgets():
    cfg = SurfaceRunConfig(
        optimizers=(
            OptimizerConfig.create("sgd_momentum", lr=1e-3),
            OptimizerConfig.create("adam", lr=0.1),
        ),
        plans=(
            Plan(SchedulerConfig("step", (("step_size", 50), ("gamma", 0.5)))),
            Plan(changes=(Change(100, "lr", 1e-4), Change(150, "lr", 0.5, multiply=True))),
        ),
        problem=Problem(steps=200),
    )
    at = app(config_to_params(cfg))
    no_problems(at)
    assert not at.warning
    assert at.selectbox(key="slot0_sched").value == "step"
    assert at.number_input(key="slot0_sched_step_size").value == 50
    assert at.number_input(key="slot0_sched_gamma").value == 0.5
    assert at.text_area(key="slot0_changes").value == ""
    assert at.selectbox(key="slot1_sched").value == "none"
    assert at.text_area(key="slot1_changes").value == "100:lr=0.0001\n150:lr*=0.5"
    # The page writes back exactly the link it was opened with.
    assert query(at) == as_lists(config_to_params(cfg))
    lines = curves(chart(at, "lr_curves"))
    steps, lr = lines["SGD (momentum=0.9)"]
    assert lr[steps == 49][0] == 1e-3 and lr[steps == 50][0] == 5e-4
    steps, lr = lines["Adam (lr=0.1)"]
    assert lr[steps == 120][0] == 1e-4 and lr[steps == 150][0] == pytest.approx(5e-5)


# --- the CNN lab -------------------------------------------------------------------------------

TRAIN, TEST, BATCH = 256, 100, 32


@pytest.fixture
def cnn_env(monkeypatch, tmp_path):
    """An empty cache folder and no data folder (synthetic shapes); no job left behind."""
    cache = tmp_path / "cache"
    cache.mkdir()
    monkeypatch.setenv("OPTLAB_CACHE_DIR", str(cache))
    monkeypatch.delenv("OPTLAB_DATA_DIR", raising=False)
    monkeypatch.delenv("OPTLAB_CIFAR_URL", raising=False)
    jobs._cifar.clear()
    jobs.shared_runs.clear()  # a comparison finished by another test must train again
    yield
    jobs._cifar.clear()
    jobs.shared_runs.clear()
    for job in jobs.job_registry().active():
        job.cancel("test teardown")
        job.wait(30)


def cnn_page(steps: int) -> AppTest:
    """The CNN lab with a tiny synthetic run set through its widgets."""
    at = app()
    at.switch_page("pages/cnn.py").run()
    no_problems(at)
    at.radio(key="cnn_data").set_value("synthetic")
    at.radio(key="cnn_length").set_value("steps").run()
    at.number_input(key="cnn_steps").set_value(steps)
    at.number_input(key="cnn_batch").set_value(BATCH)
    at.number_input(key="cnn_train_limit").set_value(TRAIN)
    at.number_input(key="cnn_test_limit").set_value(TEST)
    at.number_input(key="cnn_eval_every").set_value(1000)
    return at


def start(at: AppTest) -> Job:
    (button,) = [b for b in at.button if b.label == "Start"]
    button.click().run()
    no_problems(at)
    return at.session_state["cnn_job"]


def wait_until(job: Job, done, what: str) -> None:
    """Polls ``job`` (as the page's fragment does) until ``done()``."""
    deadline = time.monotonic() + JOB_TIMEOUT
    while not done():
        assert time.monotonic() < deadline, f"{what}: job {job.state} at step {job.poll().step}"
        job.poll()
        time.sleep(0.02)


def lrs(job: Job, index: int) -> dict[int, tuple[float, ...]]:
    return {
        r.step: r.lrs for r in job.poll().records if isinstance(r, TrainRecord) and r.index == index
    }


def test_a_cnn_slots_changes_reach_the_job_and_its_records(cnn_env):
    at = cnn_page(steps=4)
    at.text_area(key="cnn_slot0_changes").set_value("2:lr=0.5").run()
    no_problems(at)
    job = start(at)
    assert job.cfg.slots[0].changes == (Change(2, "lr", 0.5),)
    assert job.cfg.slots[1].changes == ()
    wait_until(job, lambda: job.wait(0.2), "finish")
    at.run()
    no_problems(at)
    # Before 0-based step 2: the third step (record step 3) is the first at 0.5.
    assert lrs(job, 0) == {1: (0.01, 0.01), 2: (0.01, 0.01), 3: (0.5, 0.5), 4: (0.5, 0.5)}
    assert set(lrs(job, 1).values()) == {(0.001, 0.001)}
    table = next(df.value for df in at.dataframe if "final_test_acc" in df.value)
    assert list(table["optimizer"]) == ["SGD (lr=0.01, momentum=0.9) + 1 change", "Adam"]


def running_job_with_form(steps: int = 3000) -> tuple[AppTest, Job]:
    """A long job, trained a few steps, and the page redrawn while it runs."""
    at = cnn_page(steps=steps)
    job = start(at)
    wait_until(job, lambda: job.session is not None and job.session.step >= 3, "start")
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    (expander,) = [e for e in at.expander if e.label.startswith("Change a running optimizer")]
    assert expander.button(key="cnn_live_apply").label == "Apply at the next step"
    return at, job


def test_the_live_form_changes_a_running_job_at_its_next_step(cnn_env):
    at, job = running_job_with_form()
    at.selectbox(key="cnn_live_opt").set_value(1)  # Adam
    at.selectbox(key="cnn_live_name").set_value("lr")
    at.selectbox(key="cnn_live_group").set_value("classifier")
    at.radio(key="cnn_live_how").set_value("multiply by")
    at.number_input(key="cnn_live_value").set_value(0.5)
    at.button(key="cnn_live_apply").click().run()
    no_problems(at)
    session = job.session
    wait_until(
        job, lambda: session.live_changes and session.step > session.live_changes[0][0], "apply"
    )
    ((at_step, index, change),) = session.live_changes
    assert (index, change.name, change.value, change.multiply, change.group) == (
        1,
        "lr",
        0.5,
        True,
        "classifier",
    )
    at.run()  # while it still runs: the form lists what was applied
    captions = [c.value for c in at.caption if c.value.startswith("Applied before step")]
    assert captions == [f"Applied before step {at_step + 1}: Adam, multiply classifier lr by 0.5."]
    job.cancel("test done")
    job.wait(30)
    adam = lrs(job, 1)
    assert {lr for step, lr in adam.items() if step <= at_step} == {(0.001, 0.001)}
    assert {lr for step, lr in adam.items() if step > at_step} == {(0.001, 0.0005)}
    assert set(lrs(job, 0).values()) == {(0.01, 0.01)}  # the other optimizer


def test_the_live_form_refuses_a_bad_value_without_stopping_the_job(cnn_env):
    at, job = running_job_with_form()
    at.number_input(key="cnn_live_value").set_value(-1.0)
    at.button(key="cnn_live_apply").click().run()  # "set to" -1: the lr check refuses it
    assert not at.exception, [e.message for e in at.exception]
    assert any(e.value.startswith("Not applied:") and "lr" in e.value for e in at.error)
    assert job.session.live_changes == []
    assert job.poll().state == "running"
    job.cancel("test done")


def test_the_live_form_refuses_a_non_positive_factor_without_crashing(cnn_env):
    at, job = running_job_with_form()
    at.radio(key="cnn_live_how").set_value("multiply by")
    at.number_input(key="cnn_live_value").set_value(-1.0)
    at.button(key="cnn_live_apply").click().run()
    try:
        assert not at.exception, [e.message for e in at.exception]
        assert any("factor must be positive" in e.value for e in at.error)
    finally:
        job.cancel("test done")
