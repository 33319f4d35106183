"""Lesson 4 on the Lessons page under AppTest: its link, findings, code and the CNN lab
link that carries the classifier's lr multiple and the freeze (with CIFAR-10), and a
room's presenter pushing it to an attendee."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from streamlit.testing.v1 import AppTest

from optlab.lessons import get_lesson, run_lesson
from optlab.lessons.parts import CNN_IMAGES
from optlab.script.lessons import first_images
from tests.lessons.test_lessons import cifar_folder
from tests.pages.test_lessons import push_and_load
from tests.support.resources import APP

pytestmark = pytest.mark.usefixtures("one_thread")


def test_lesson_four_opens_from_its_link_and_links_to_the_cnn_lab(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    folder = cifar_folder()
    monkeypatch.setenv("OPTLAB_DATA_DIR", str(folder))
    # Values no other page test uses: results are cached server-wide by values, and a
    # run without CIFAR-10 cached earlier would be found here.
    query = {"lesson": "per-layer-lr", "at": "3", "clr": "5", "optimizer": "Adam"}
    at = AppTest.from_file(APP, default_timeout=180)
    at.query_params.update(query)
    at.switch_page("pages/lessons_page.py").run()
    assert not at.exception, [e.message for e in at.exception]
    assert at.header[0].value == "4. Per-layer learning rates"
    assert at.slider(key="lessons_per-layer-lr_at").value == 3
    assert at.number_input(key="lessons_per-layer-lr_clr").value == 5.0
    lesson = get_lesson("per-layer-lr")
    run = run_lesson(
        lesson, {"at": 3, "clr": 5.0, "optimizer": "Adam"}, first_images(folder, CNN_IMAGES)
    )
    markdown = " ".join(m.value for m in at.markdown)
    assert run.findings() in markdown and "**2 groups**" in markdown
    assert [c.value.rstrip("\n") for c in at.code] == [s.rstrip("\n") for s in run.scripts()]
    (button,) = [b for b in at.get("link_button") if "CNN lab" in b.proto.label]
    url = urlsplit(button.proto.url)
    assert url.path == "./cnn-lab"
    params = parse_qs(url.query)
    assert params["freeze"] == ["off", "3"] and params["clr"] == ["5.0", "5.0"]
    assert params["opt"] == ["adam:lr=0.0001"] * 2
    # The address bar mirrors the lesson: what a presenter's push sends to a room.
    assert {k: at.query_params[k] for k in query} == {**query, "clr": "5"}


def test_a_presenter_pushes_lesson_four_and_an_attendee_loads_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def set_up(host: AppTest) -> None:
        host.selectbox(key="lessons_chosen").set_value("per-layer-lr").run()
        host.slider(key="lessons_per-layer-lr_at").set_value(2).run()

    query, at = push_and_load(tmp_path, monkeypatch, set_up)
    assert query == {
        "lesson": ["per-layer-lr"],
        "at": ["2"],
        "clr": ["10"],
        "optimizer": ["SGD with momentum 0.9"],
    }
    assert at.header[0].value == "4. Per-layer learning rates"
    assert at.slider(key="lessons_per-layer-lr_at").value == 2
