"""The Studies page under `streamlit.testing.v1.AppTest`: its widgets, a share link, and
a real tiny study on a real local Ray (started by the study, not by the page)."""

from __future__ import annotations

import json
import sys
import time
from urllib.parse import parse_qs, urlparse

import pytest
from streamlit.testing.v1 import AppTest

from optlab.links.study import study_to_params
from optlab.study.config import StudyConfig
from optlab.train.jobs import DONE
from optlab.ui.cnn import jobs as cnn_jobs
from optlab.ui.studies import jobs, settings
from tests.support.resources import APP

TIMEOUT = 120
STUDY_TIMEOUT = 240


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("OPTLAB_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("OPTLAB_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.delenv("OPTLAB_DATA_DIR", raising=False)
    cnn_jobs._cifar.clear()
    yield
    cnn_jobs._cifar.clear()


@pytest.fixture(scope="module", autouse=True)
def stop_ray():
    yield
    jobs.ray_engine().shutdown()


def studies_page(query: dict[str, list[str]] | None = None) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    if query:
        at.query_params.update(query)
    at.switch_page("pages/studies.py").run()
    assert not at.exception, [e.message for e in at.exception]
    assert at.title[0].value == "Tuning studies"
    return at


def button(at: AppTest, label: str):
    (found,) = [b for b in at.button if b.label == label]
    return found


def test_the_page_opens_on_the_default_study_without_starting_ray():
    at = studies_page()
    assert "ray" not in sys.modules or not __import__("ray").is_initialized()
    assert settings.config_from_state(at.session_state) == settings.default_config()
    assert not at.error
    summary = [c.value for c in at.caption if "trials (" in c.value]
    assert summary and summary[0].startswith("32 trials (2 optimizers x 8 points x 2 seeds)")


def test_bad_settings_are_named_and_nothing_is_lost():
    at = studies_page()
    at.text_area(key=settings.SPACE).set_value("lr=1e-4:1:log\nmomentum=0.5:0.9:lin").run()
    assert "Adam has no hyperparameter momentum" in at.error[0].value
    assert button(at, "Start").disabled
    # The typed text stays, and fixing it brings Start back.
    assert at.text_area(key=settings.SPACE).value == "lr=1e-4:1:log\nmomentum=0.5:0.9:lin"
    at.text_area(key=settings.SPACE).set_value("lr=1e-4:1:log\nsgd:momentum=0.5:0.9:lin").run()
    assert not at.error and not button(at, "Start").disabled


def test_a_share_link_fills_the_widgets_and_a_bad_one_warns():
    cfg = StudyConfig.from_dict({**settings.default_config().to_dict(), "trials": 4, "seeds": 3})
    params = study_to_params(cfg, "synthetic")
    at = studies_page({k: v if isinstance(v, list) else [v] for k, v in params.items()})
    assert at.session_state[settings.TRIALS] == 4 and at.session_state[settings.SEEDS] == 3
    assert settings.config_from_state(at.session_state).to_dict() == cfg.to_dict()
    bad = studies_page({"page": ["studies"], "opt": ["adam"], "space": ["lr=1:0.1:log"]})
    assert "This link could not be used" in bad.warning[0].value


def test_a_tiny_study_runs_on_ray_and_offers_its_results(tmp_path):
    at = studies_page()
    at.radio(key=settings.DATA).set_value(settings.SYNTHETIC)
    at.text_area(key=settings.SPACE).set_value("lr=1e-3:0.3:log")
    for key, value in (
        (settings.TRIALS, 2),
        (settings.SEEDS, 1),
        (settings.STEPS, 4),
        (settings.BATCH, 16),
        (settings.TRAIN_LIMIT, 64),
        (settings.TEST_LIMIT, 32),
    ):
        at.number_input(key=key).set_value(value)
    at.run()
    button(at, "Start").click().run()
    assert not at.exception, [e.message for e in at.exception]
    job = at.session_state[jobs.JOB]
    deadline = time.monotonic() + STUDY_TIMEOUT
    while not job.wait(0.5):
        job.poll()  # as the page's fragment does, so it is not stopped as unwatched
        assert time.monotonic() < deadline, f"study still {job.state}"
    assert job.state == DONE, job.message
    at.run()
    assert not at.exception and not at.error
    assert any("All 4 trials done on Ray" in s.value for s in at.success)
    labels = [t.label for t in at.tabs]
    assert labels[:4] == ["Expected best vs trials", "Tuning curves", "All trials", "Trials table"]
    table = at.dataframe[0].value
    assert len(table) == 4 and set(table["optimizer"]) == {"SGD", "Adam"}
    doc = job.poll().doc
    assert doc["engine"]["name"] == "ray" and doc["trials_done"] == 4
    # The folder holds the study (under the runs folder), one file per trial.
    assert len(list(job.folder.path.glob("trials/*.json"))) == 4
    assert json.loads((job.folder.path / "summary.json").read_text())["trials_done"] == 4
    # One click races the best configs in the CNN lab: its link trains both optimizers
    # at their best lr with the study's settings.
    (race,) = [b for b in at.get("link_button") if "Race" in b.proto.label]
    query = parse_qs(urlparse(race.proto.url).query)
    best = [o["best"]["hparams"]["lr"] for o in doc["optimizers"]]
    assert [float(o.split("lr=")[1].split(",")[0]) for o in query["opt"]] == pytest.approx(best)
    assert query["steps"] == ["4"] and query["data"] == ["synthetic"]
