"""The playground's step inspector under AppTest: real records, the chosen slot and step."""

from __future__ import annotations

from streamlit.testing.v1 import AppTest

from optlab.optim.config import OptimizerConfig
from optlab.surface.inspector import record_steps
from optlab.surface.problem import Problem
from optlab.surface.run import SurfaceRunConfig
from tests.support.resources import APP


def page(query: dict[str, list[str]]) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=120)
    at.query_params.update(query)
    return at.run()


def tables(at: AppTest) -> list[dict]:
    return [df.value.to_dict("records") for df in at.dataframe]


def test_inspector_shows_the_chosen_slots_state_at_the_chosen_step():
    at = page({"opt": ["sgd_momentum:lr=0.001", "adam:lr=0.1"], "steps": ["60"]})
    assert not at.exception
    assert at.selectbox(key="inspect_slot").value == 0
    at.selectbox(key="inspect_slot").set_value(1).run()
    at.slider(key="inspect_step").set_value(10).run()
    assert not at.exception
    cfg = SurfaceRunConfig((OptimizerConfig.create("adam", lr=0.1),), problem=Problem(steps=60))
    snap = record_steps(cfg, 0)[10]
    state_rows = next(t for t in tables(at) if t and "before step()" in t[0])
    by_name = {r["state"]: r for r in state_rows}
    assert set(by_name) == {"step", "exp_avg", "exp_avg_sq"}
    assert by_name["step"]["before step()"] == "10" and by_name["step"]["after step()"] == "11"
    exp_avg = snap.state_after["exp_avg"]
    assert by_name["exp_avg"]["after step()"] == f"({exp_avg[0]:.6g}, {exp_avg[1]:.6g})"
    latex = " ".join(e.value for e in at.latex)
    assert f"{snap.grad[0]:.6g}" in latex  # this step's gradient, substituted
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
