"""The Update rules page under AppTest: each optimizer's table says what the app accepts."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from optlab.optim import registry
from tests.support.resources import APP


@pytest.fixture(scope="module")
def rules_page() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=180)
    at.switch_page("pages/update_rules.py").run()
    assert not at.exception, [e.message for e in at.exception]
    return at


def test_every_allowed_cell_is_the_range_the_app_checks(rules_page: AppTest) -> None:
    specs = registry.optimizers()
    tables = [t.value for t in rules_page.table]
    assert len(tables) == len(specs)
    for spec, table in zip(specs, tables, strict=True):
        rows = {row["hyperparameter"]: row for row in table.to_dict("records")}
        for hp in spec.hparams:
            assert rows[hp.name]["allowed"] == hp.allowed_text()
            warned = rows[hp.name]["warned about"]
            assert all(text in warned for text in hp.caution_texts())


def test_the_ranges_the_issue_names_are_torchs(rules_page: AppTest) -> None:
    tables = {
        spec.key: {r["hyperparameter"]: r for r in t.value.to_dict("records")}
        for spec, t in zip(registry.optimizers(), rules_page.table, strict=True)
    }
    assert tables["sgd"]["momentum"]["allowed"] == "[0, inf)"  # momentum ≥ 1 is allowed
    assert "μ ≥ 1" in tables["sgd"]["momentum"]["warned about"]
    assert tables["sgd"]["lr"]["allowed"] == "[0, inf)"  # lr = 0 too
    assert tables["rprop"]["etas"]["allowed"] == "(0, 1) × (1, inf)"  # 0 < η⁻ < 1 < η⁺
    assert "this server's cap: at most 200" in tables["lbfgs"]["max_iter"]["allowed"]
    assert tables["lbfgs"]["max_eval"]["allowed"].startswith("(-inf, inf) or none")


def test_the_notes_say_what_torch_does(rules_page: AppTest) -> None:
    text = " ".join(m.value for m in rules_page.markdown)
    assert "torch's momentum differs from Sutskever et al." in text
    assert "10γ·sign(g) at α = 0.99" in text
    assert "u_t = max(β₂u_{t−1}, |g_t| + ε)" in text
    assert "√(u_{t−1} + ε) / √(v_t + ε)" in text
    assert "max_eval + 1 times" in text


def test_muon_says_what_its_rule_is_on_one_row(rules_page: AppTest) -> None:
    text = " ".join(m.value for m in rules_page.markdown)
    assert "**On a 2-D surface**" in text
    assert "normalised (Nesterov) momentum" in text and "bfloat16" in text
    assert "0.69γ" in text and "0.680γ to 0.719γ" in text
    assert "buf.lerp_(grad, 1 − μ)" in text  # the code's average, not the docstring's sum
    tables = {
        spec.key: {r["hyperparameter"]: r for r in t.value.to_dict("records")}
        for spec, t in zip(registry.optimizers(), rules_page.table, strict=True)
    }
    muon = tables["muon"]
    assert muon["momentum"]["default"] == "0.95" and muon["weight_decay"]["default"] == "0.1"
    assert "OptLab's limit: at most 99" in muon["ns_steps"]["allowed"]
    assert muon["adjust_lr_fn"]["allowed"] == "none, original, match_rms_adamw"
