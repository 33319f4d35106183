"""Every page keeps its settings while the user is on another page and after coming back."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from tests.support.resources import APP

PAGES = {
    "playground": ("pages/playground.py", "slot0_lr", 0.0123),
    "cnn": ("pages/cnn.py", "cnn_slot0_lr", 0.0456),
    "sweep": ("pages/sweep.py", "sw_x_n", 12),
}


def no_problems(at: AppTest) -> None:
    assert not at.exception, [e.message for e in at.exception]


@pytest.mark.parametrize("name", list(PAGES))
def test_a_setting_survives_a_visit_to_every_other_page(name, monkeypatch, tmp_path):
    monkeypatch.setenv("OPTLAB_CACHE_DIR", str(tmp_path))  # no CIFAR-10: the quick synthetic set
    monkeypatch.delenv("OPTLAB_DATA_DIR", raising=False)
    path, key, value = PAGES[name]
    at = AppTest.from_file(APP, default_timeout=180)
    at.switch_page(path).run()
    no_problems(at)
    at.number_input(key=key).set_value(value).run()
    no_problems(at)
    for other, _, _ in PAGES.values():
        if other != path:
            at.switch_page(other).run()
            no_problems(at)
    at.switch_page("pages/update_rules.py").run()
    at.switch_page(path).run()
    no_problems(at)
    assert at.number_input(key=key).value == value
