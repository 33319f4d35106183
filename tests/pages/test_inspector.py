"""The playground's step inspector under AppTest: real records, the chosen slot and step."""

from __future__ import annotations

import json

import pytest
import torch
from streamlit.testing.v1 import AppTest

from optlab.links import config_from_params
from optlab.optim.config import OptimizerConfig
from optlab.surface.inspector import plain, record_steps
from optlab.surface.problem import Problem
from optlab.surface.run import SurfaceRunConfig
from optlab.surface.trajectory import collect
from optlab.ui.playground.inspector import OPEN_KEY, _value, numbers_latex, state_lines
from tests.support.resources import APP


def page(query: dict[str, list[str]]) -> AppTest:
    """The playground for ``query`` with the step inspector's expander open."""
    at = AppTest.from_file(APP, default_timeout=120)
    at.query_params.update(query)
    at.session_state[OPEN_KEY] = True
    return at.run()


def tables(at: AppTest) -> list[dict]:
    return [df.value.to_dict("records") for df in at.dataframe]


def state_rows(at: AppTest) -> dict[str, dict]:
    rows = next(t for t in tables(at) if t and "before step()" in t[0])
    return {r["state"]: r for r in rows}


def test_inspector_shows_the_chosen_slots_state_at_the_chosen_step():
    at = page({"opt": ["sgd_momentum:lr=0.001", "adam:lr=0.1"], "steps": ["60"]})
    assert not at.exception
    assert at.selectbox(key="inspect_slot").value == 0
    at.selectbox(key="inspect_slot").set_value(1).run()
    at.slider(key="inspect_step").set_value(11).run()
    assert not at.exception
    cfg = SurfaceRunConfig((OptimizerConfig.create("adam", lr=0.1),), problem=Problem(steps=60))
    snap = record_steps(cfg, 0)[10]
    assert snap.step == 11  # step t = 11 takes θ_10 to θ_11: torch's own counter
    by_name = state_rows(at)
    assert set(by_name) == {"step", "exp_avg", "exp_avg_sq"}
    assert by_name["step"]["before step()"] == "10" and by_name["step"]["after step()"] == "11"
    exp_avg = snap.state_after["exp_avg"]
    assert by_name["exp_avg"]["after step()"] == f"({exp_avg[0]:.6g}, {exp_avg[1]:.6g})"
    latex = " ".join(e.value for e in at.latex)
    assert f"{snap.grad[0]:.6g}" in latex  # this step's gradient, substituted
    assert r"m_t = \begin{pmatrix}" in latex and r"\beta_1 = 0.9" in latex
    assert r"\theta_{t-1}" in latex and "lamda" not in latex
    assert any("Step t" in s.label for s in at.slider)


def test_lbfgs_steps_count_their_evaluations():
    at = page({"opt": ["lbfgs:line_search_fn=strong_wolfe"], "steps": ["20"]})
    assert not at.exception
    captions = " ".join(c.value for c in at.caption)
    cfg = SurfaceRunConfig(
        (OptimizerConfig.from_text("lbfgs:line_search_fn=strong_wolfe"),), problem=Problem(steps=20)
    )
    first = record_steps(cfg, 0)[0]
    assert f"f was evaluated {len(first.evaluations)} times in this step()" in captions


def test_the_picker_follows_its_slot_when_the_slot_is_renamed_or_moves():
    at = page({"opt": ["sgd_momentum:lr=0.001", "adam:lr=0.1", "rmsprop"], "steps": ["30"]})
    at.selectbox(key="inspect_slot").set_value(1).run()
    assert "Adam (lr=0.1)" in " ".join(m.value for m in at.markdown)
    # A new lr renames the slot's label: the picker stays on it.
    at.number_input(key="slot1_lr").set_value(0.05).run()
    assert not at.exception
    assert at.selectbox(key="inspect_slot").value == 1
    assert "Adam (lr=0.05)" in " ".join(m.value for m in at.markdown)
    # Another optimizer in that slot: still the same slot.
    at.selectbox(key="slot1_choice").set_value("nadam").run()
    assert at.selectbox(key="inspect_slot").value == 1
    assert any(m.value.startswith("**NAdam") for m in at.markdown)
    # The slot before it goes away: the picker moves with its slot to place 0.
    at.button(key="slot0_remove").click().run()
    assert not at.exception
    assert at.selectbox(key="inspect_slot").value == 0
    assert any(m.value.startswith("**NAdam") for m in at.markdown)


STATE_CASES = [
    "sgd:lr=0.001,momentum=0.9",
    "adam:lr=0.01,amsgrad=true",
    "rmsprop:lr=0.001,centered=true,momentum=0.5",
    "nadam",
    "asgd",
    "rprop",
    "adadelta",
    "adagrad",
    "adamax",
    "radam",
    "muon:lr=0.05",
]


@pytest.mark.parametrize("text", STATE_CASES)
def test_every_state_value_is_shown_with_its_symbol_and_equals_torchs(text):
    cfg = SurfaceRunConfig((OptimizerConfig.from_text(text),), problem=Problem(steps=4))
    opt = cfg.optimizers[0]
    snaps = record_steps(cfg, 0)
    # torch's own optimizer, stepped by hand to the same step.
    start = torch.tensor(cfg.problem.start, dtype=torch.float64)
    p = opt.spec.as_param(start).requires_grad_(True)  # Muon: a (1, 2) matrix
    torch_opt = opt.build([p])
    surface = cfg.resolved_surface
    for snap in snaps:
        torch_opt.zero_grad()
        surface(p).backward()
        torch_opt.step()
        lines = state_lines(opt, snap)
        assert len(lines) == len(torch_opt.state[p])
        for key, value in torch_opt.state[p].items():
            symbol = opt.spec.state_symbol(key)
            assert symbol is not None, key
            shown = f"{symbol.after} = {_value(plain(value))}"
            assert any(shown in line for line in lines), (shown, lines)
        assert r"\lamda" not in numbers_latex(opt, snap)


def test_the_inspector_is_built_only_once_opened():
    at = AppTest.from_file(APP, default_timeout=120).run()
    assert not at.exception
    assert [e for e in at.expander if e.label.startswith("Inspect one step")]
    assert not any("Step t" in s.label for s in at.slider)
    at.session_state[OPEN_KEY] = True
    at.run()
    assert any("Step t" in s.label for s in at.slider)


def chart(at: AppTest, key: str) -> dict:
    (found,) = [e for e in at.get("plotly_chart") if e.proto.id.endswith(f"-{key}")]
    return json.loads(found.proto.spec)


BOWL_QUERY = {
    "surface": ["custom"],
    "expr": ["x**2 + 10*y**2"],
    "opt": ["sgd:lr=0.095", "sgd:lr=0.11", "adam:lr=0.1"],
    "steps": ["40"],
}


def test_the_hessian_and_lambda_max_against_2_over_eta_at_the_inspected_step():
    """lr 0.095 zig-zags in and lr 0.11 diverges on x² + 10y²: λ_max = 20 against
    2/η = 21.05 and 18.18, written beside the contour, drawn as the Hessian's axes on it
    and as one λ_max curve and one threshold line per SGD path."""
    at = page(BOWL_QUERY)
    assert not at.exception
    at.slider(key="inspect_step").set_value(5).run()
    assert not at.exception
    cfg = config_from_params(BOWL_QUERY)
    trajectories = collect(cfg)
    assert [tr.status for tr in trajectories] == ["done", "diverged", "done"]
    markdown = " ".join(m.value for m in at.markdown)
    assert "**λ₁ = 2**, **λ₂ = λ_max = 20** < 2/η = 21.05" in markdown

    # The contour: the Hessian's two axes through θ_4, labelled with their values.
    snap = record_steps(cfg, 0)[4]
    contour = chart(at, "inspector_chart")
    notes = contour["layout"]["annotations"]
    axes = {n["name"]: n for n in notes if n.get("name", "").endswith(" axis")}
    assert set(axes) == {"λ₁ = 2 axis", "λ₂ = 20 axis"}
    for (name, note), (ux, uy) in zip(sorted(axes.items()), [(1, 0), (0, 1)], strict=True):
        assert ((note["x"] + note["ax"]) / 2, (note["y"] + note["ay"]) / 2) == pytest.approx(
            snap.point
        ), name
        dx, dy = note["x"] - note["ax"], note["y"] - note["ay"]
        assert dx * uy == pytest.approx(dy * ux) and dx * ux + dy * uy > 0
    labels = [n["text"] for n in notes if n.get("name", "").endswith(" label")]
    assert labels == ["<b>λ₁ = 2</b>", "<b>λ₂ = 20</b>"]

    # The λ_max chart: every path's curve, SGD's lines at 2/η, the inspected point.
    sharp = {t["name"]: t for t in chart(at, "sharpness_chart")["data"]}
    assert set(sharp) == {
        "SGD (lr=0.095): λ_max",
        "SGD (lr=0.095): 2/η = 21.05",
        "SGD (lr=0.11): λ_max",
        "SGD (lr=0.11): 2/η = 18.18",
        "Adam (lr=0.1): λ_max",
        "θ<sub>t−1</sub> (step 4): λ_max = 20",
    }
    for tr in trajectories:
        curve = sharp[f"{tr.optimizer.label}: λ_max"]
        assert curve["x"] == list(tr.step) and curve["y"] == [20.0] * len(tr.step)
    assert sharp["SGD (lr=0.095): 2/η = 21.05"]["y"] == pytest.approx([2 / 0.095] * 41)
    fast = sharp["SGD (lr=0.11): 2/η = 18.18"]
    assert fast["y"] == pytest.approx([2 / 0.11] * len(trajectories[1].step))
    mark = sharp["θ<sub>t−1</sub> (step 4): λ_max = 20"]
    assert (mark["x"], mark["y"]) == ([4], [20.0])
    captions = " ".join(c.value for c in at.caption)
    assert "(2 + 2μ)/η (Cohen et al., ICLR 2021)" in captions

    # The diverging slot: its own step is above its line.
    at.selectbox(key="inspect_slot").set_value(1).run()
    markdown = " ".join(m.value for m in at.markdown)
    assert "**λ₂ = λ_max = 20** > 2/η = 18.18" in markdown


def test_momentum_gives_the_heavy_ball_threshold_and_adam_none():
    query = {**BOWL_QUERY, "opt": ["sgd:lr=0.01,momentum=0.9", "adam:lr=0.1"]}
    at = page(query)
    assert not at.exception
    names = [t["name"] for t in chart(at, "sharpness_chart")["data"]]
    assert "SGD (lr=0.01, momentum=0.9): (2+2μ)/η = 380" in names
    assert not [n for n in names if n.startswith("Adam") and "λ_max" not in n]
    markdown = " ".join(m.value for m in at.markdown)
    assert "< (2+2μ)/η = 380" in markdown
    at.selectbox(key="inspect_slot").set_value(1).run()
    markdown = " ".join(m.value for m in at.markdown)
    assert "**λ₂ = λ_max = 20** (the arrows" in markdown  # Adam: no threshold written
