"""Pages under `streamlit.testing.v1.AppTest`: real scripts, real engine, no browser."""

from __future__ import annotations

import math
import threading
import time

import pytest
import torch
from streamlit.testing.v1 import AppTest

from optlab import turns
from optlab.links import config_to_params
from optlab.optim import registry
from optlab.optim.config import OptimizerConfig
from optlab.surface.problem import Problem
from optlab.surface.run import SurfaceRunConfig
from optlab.surface.surfaces import SURFACES
from optlab.ui.playground import cache as runs
from optlab.ui.playground import settings
from tests.support.resources import APP

TIMEOUT = 120


def app(query: dict[str, str | list[str]] | None = None) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    if query:
        at.query_params.update(query)
    return at.run()


def qp(at: AppTest, key: str) -> list[str]:
    """A query parameter's values as a list (AppTest gives a bare string for one)."""
    value = at.query_params[key]
    return value if isinstance(value, list) else [value]


def summary(at: AppTest) -> list[dict]:
    """The summary table's rows, by column heading, as the page writes them."""
    return at.table[0].value.to_dict("records")


def no_problems(at: AppTest) -> None:
    assert not at.exception, [e.message for e in at.exception]
    assert not at.error, [e.value for e in at.error]


def test_default_page_shows_the_default_comparison():
    at = app()
    no_problems(at)
    assert at.title[0].value == "Surface Playground"
    rows = summary(at)
    assert [r["optimizer"] for r in rows] == ["SGD (momentum=0.9)", "Adam (lr=0.1)", "RMSprop"]
    assert all(r["status"] == "done" for r in rows)
    assert at.selectbox(key="surface").value == "rosenbrock"
    # The URL mirrors the state from the first run.
    assert qp(at, "opt") == ["sgd:momentum=0.9", "adam:lr=0.1", "rmsprop"]
    assert qp(at, "surface") == ["rosenbrock"]


def test_changing_a_learning_rate_changes_that_result_only():
    at = app()
    before = summary(at)
    at.number_input(key="slot1_lr").set_value(0.01).run()
    no_problems(at)
    after = summary(at)
    assert after[1]["optimizer"] == "Adam (lr=0.01)"
    assert after[1]["final loss"] != before[1]["final loss"]
    assert after[0] == before[0] and after[2] == before[2]
    assert "adam:lr=0.01" in qp(at, "opt")


def test_changing_the_surface_moves_the_start_and_reruns():
    at = app()
    at.selectbox(key="surface").set_value("himmelblau").run()
    no_problems(at)
    assert (at.number_input(key="start_x").value, at.number_input(key="start_y").value) == (
        -0.3,
        -0.9,
    )
    assert qp(at, "surface") == ["himmelblau"]
    assert "x^2+y-11" in at.latex[0].value


@pytest.mark.parametrize("surface", [s.key for s in SURFACES])
def test_every_surface_renders(surface):
    at = app()
    at.selectbox(key="surface").set_value(surface).run()
    no_problems(at)
    assert len(summary(at)) == 3


def test_slots_can_be_added_duplicated_and_removed():
    at = app()
    at.button(key="slot1_dup").click().run()
    no_problems(at)
    names = [r["optimizer"] for r in summary(at)]
    assert names == ["SGD (momentum=0.9)", "Adam (lr=0.1)", "RMSprop", "Adam (lr=0.1)"]
    at.button(key="slot0_remove").click().run()
    no_problems(at)
    assert [r["optimizer"] for r in summary(at)] == names[1:]
    add = next(b for b in at.button if b.label == "Add optimizer")
    add.click().run()
    no_problems(at)
    assert [r["optimizer"] for r in summary(at)][-1] == "Adam"


def test_choosing_another_optimizer_resets_its_settings_to_torch_defaults():
    at = app()
    at.selectbox(key="slot2_choice").set_value("nesterov").run()
    no_problems(at)
    assert summary(at)[2]["optimizer"] == "SGD (momentum=0.9, nesterov)"
    assert at.number_input(key="slot2_lr").value == pytest.approx(1e-3)


@pytest.mark.parametrize("spec", registry.optimizers(), ids=lambda s: s.key)
def test_every_optimizer_has_generated_widgets_and_runs(spec):
    at = app()
    at.selectbox(key="slot0_choice").set_value(spec.key).run()
    no_problems(at)
    assert summary(at)[0]["optimizer"].startswith(spec.label)
    widget_keys = {w.key for w in (*at.number_input, *at.checkbox, *at.selectbox)}
    for hp in spec.hparams:
        keys = (
            (f"slot0_{hp.name}_0", f"slot0_{hp.name}_1")
            if hp.kind == "pair"
            else (f"slot0_{hp.name}",)
        )
        assert set(keys) <= widget_keys, hp.name


def test_bad_setting_shows_a_message_and_keeps_the_input():
    at = app()
    # lr = 0 is torch's to take (it runs, with a warning); a negative lr is refused.
    at.number_input(key="slot0_lr").set_value(-0.5).run()
    assert not at.exception
    assert "Invalid lr value: -0.5" in at.error[0].value
    assert at.number_input(key="slot0_lr").value == -0.5  # nothing the user typed is lost
    at.number_input(key="slot0_lr").set_value(0.002).run()
    no_problems(at)


def test_custom_formula_runs_and_bad_formula_is_explained():
    at = app()
    at.selectbox(key="surface").set_value("custom").run()
    no_problems(at)
    at.text_input(key="expr").set_value("x**2 + 3*y**2").run()
    no_problems(at)
    assert qp(at, "expr") == ["x**2 + 3*y**2"]
    good = summary(at)
    at.text_input(key="expr").set_value("__import__('os').system('ls')").run()
    assert not at.exception
    assert "expr:" in at.error[0].value
    assert at.text_input(key="expr").value == "__import__('os').system('ls')"
    # The last comparison that ran stays on screen, its link in the address bar.
    assert "last comparison that ran" in at.error[0].value
    assert summary(at) == good
    assert qp(at, "expr") == ["x**2 + 3*y**2"]


def test_a_typo_keeps_the_charts_of_the_last_good_comparison():
    at = app()
    at.selectbox(key="surface").set_value("custom").run()  # its default formula runs
    charts = len(at.get("plotly_chart"))
    rows = summary(at)
    at.text_input(key="expr").set_value("x**2 +* y").run()
    assert not at.exception
    assert len(at.error) == 1 and "last comparison that ran" in at.error[0].value
    # The default formula's comparison, still drawn: the same table, as many charts.
    assert summary(at) == rows and len(at.get("plotly_chart")) == charts


@pytest.mark.parametrize(
    ("line", "quoted"),
    [("lr=0.001", "e.g. 200:lr=0.001 or 300:momentum=0.5"), ("epoch3:lr=0.1", "give the step")],
)
def test_a_bad_change_line_quotes_the_playgrounds_own_syntax(line, quoted):
    at = app()
    at.session_state["slot0_changes"] = line
    at.run()
    assert not at.exception
    (error,) = at.error
    assert quoted in error.value and "classifier" not in error.value


def test_noise_seeds_draw_medians_with_bands_and_keep_the_link():
    at = app({"surface": "rosenbrock", "noise": "1.0", "seeds": "3", "steps": "80"})
    no_problems(at)
    assert at.number_input(key="seeds").value == 3
    assert any("median over seeds 0 to 2" in c.value for c in at.caption)
    loss = at.get("plotly_chart")[1].proto.spec
    assert '"fill":"tonexty"' in loss.replace(" ", "") and "median of 3 seeds" in loss
    assert qp(at, "seeds") == ["3"]
    at.number_input(key="noise").set_value(0.0).run()  # no noise: one run, no band
    assert "seeds" not in at.query_params
    assert '"fill":"tonexty"' not in at.get("plotly_chart")[1].proto.spec.replace(" ", "")


def test_share_link_round_trip():
    cfg = SurfaceRunConfig(
        optimizers=(
            OptimizerConfig.create("nesterov", lr=0.002),
            OptimizerConfig.create("lbfgs", line_search_fn="strong_wolfe"),
        ),
        problem=Problem(
            surface="quadratic",
            surface_values=(("kappa", 50.0),),
            start=(1.5, -1.0),
            steps=120,
            noise=0.1,
            seed=7,
        ),
    )
    at = app(config_to_params(cfg))
    no_problems(at)
    assert not at.warning
    assert at.selectbox(key="slot0_choice").value == "nesterov"
    assert at.number_input(key="sp_kappa").value == 50.0
    assert at.number_input(key="steps").value == 120
    names = [r["optimizer"] for r in summary(at)]
    assert names == [o.label for o in cfg.optimizers]
    # The page writes back exactly the link it was opened with.
    expected = {k: v if isinstance(v, list) else [v] for k, v in config_to_params(cfg).items()}
    assert {k: qp(at, k) for k in expected} == expected


@pytest.mark.parametrize(
    "query",
    [
        {"opt": "adam:lr=-1"},
        {"opt": "nope"},
        {"surface": "custom", "expr": "__import__('os')", "opt": "adam"},
        {"opt": "adam", "steps": "99999999"},
        {"opt": "adam", "start": "nan,nan"},
        {"opt": ["adam"] * 20},
        {"opt": "adam", "steps": "1", "seed": "x" * 5000},
        {"opt": "lbfgs:max_iter=" + "9" * 400},
        {"opt": "lbfgs:max_iter=200", "steps": "5000"},
    ],
)
def test_hostile_share_link_warns_and_falls_back_to_defaults(query):
    at = app(query)
    assert not at.exception
    assert "This link could not be used" in at.warning[0].value
    assert [r["optimizer"] for r in summary(at)] == [
        "SGD (momentum=0.9)",
        "Adam (lr=0.1)",
        "RMSprop",
    ]


def test_update_rules_page_lists_every_optimizer():
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    at.switch_page("pages/update_rules.py").run()
    no_problems(at)
    headers = [h.value for h in at.header]
    assert headers == [spec.label for spec in registry.optimizers()]
    assert len(at.latex) == len(registry.optimizers())


def test_one_slot_change_recomputes_only_that_slot(monkeypatch):
    at = app()
    ran: list[tuple[str, ...]] = []
    real = runs.run_or_fallback

    def recording(engine, keys, kind, cfg, *how):
        # What is computed, on the engine process or (without it) in this thread.
        ran.append(tuple(o.to_text() for o in cfg.optimizers))
        return real(engine, keys, kind, cfg, *how)

    monkeypatch.setattr(runs, "run_or_fallback", recording)
    at.number_input(key="slot2_lr").set_value(0.004).run()
    no_problems(at)
    assert ran == [("rmsprop:lr=0.004",)]


def test_with_the_engine_process_a_slot_change_computes_there(on_engine_process):
    at = app()
    submitted = on_engine_process.submitted
    at.number_input(key="slot2_lr").set_value(0.0041).run()
    no_problems(at)
    assert on_engine_process.submitted == submitted + 1  # that slot alone, over there


def test_with_one_turn_a_page_waiting_for_its_run_lets_another_page_run(on_engine_process):
    """A page waiting for its run's records from the engine process sets its turn at
    the interpreter aside (`optlab.turns`): with a single turn per server, a short
    run opened while a long one computes finishes first, and nobody runs out of
    patience waiting for a turn."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(turns, "TURNS", turns.PythonTurns(1, patience_s=60))
        done: dict[str, float] = {}

        def open_page(name: str, cfg: SurfaceRunConfig) -> None:
            no_problems(app(config_to_params(cfg)))
            done[name] = time.monotonic()

        long_cfg = SurfaceRunConfig(
            tuple(OptimizerConfig.create("adam", lr=0.01234 + k * 1e-5) for k in range(4)),
            Problem("rosenbrock", steps=5000),
        )
        short_cfg = SurfaceRunConfig(
            (OptimizerConfig.create("adam", lr=0.04321),), Problem("rosenbrock", steps=50)
        )
        submitted = on_engine_process.submitted
        long = threading.Thread(target=open_page, args=("long", long_cfg))
        long.start()
        deadline = time.monotonic() + 60
        while on_engine_process.submitted == submitted and time.monotonic() < deadline:
            time.sleep(0.01)  # the long run is computing over there
        open_page("short", short_cfg)
        long.join(TIMEOUT)
        assert set(done) == {"long", "short"}
        assert done["short"] < done["long"], done
        assert turns.TURNS.overdue == 0 and turns.TURNS.waiting() == 0


def test_zoomed_bounds_of_a_built_in_surface_survive_a_share_link():
    at = app({"surface": "rosenbrock", "bounds": "0.5,1.5,0.5,1.5", "start": "0.6,1.4"})
    no_problems(at)
    assert [at.number_input(key=k).value for k in settings.BOUNDS] == [0.5, 1.5, 0.5, 1.5]
    assert qp(at, "bounds") == ["0.5,1.5,0.5,1.5"]
    # Choosing another surface resets the view to that surface's own bounds.
    at.selectbox(key="surface").set_value("booth").run()
    no_problems(at)
    assert [at.number_input(key=k).value for k in settings.BOUNDS] == [-10.0, 10.0, -10.0, 10.0]
    assert "bounds" not in at.query_params


def test_link_without_optimizers_shows_the_default_comparison_there():
    at = app({"surface": "beale"})
    no_problems(at)
    assert not at.warning
    assert at.selectbox(key="surface").value == "beale"
    assert len(summary(at)) == 3


def test_typed_formula_starts_where_it_is_defined():
    at = app()
    at.selectbox(key="surface").set_value("custom").run()
    at.text_input(key="expr").set_value("sqrt(x) + y**2").run()
    no_problems(at)
    assert at.number_input(key="start_x").value >= 0
    # Every optimizer starts on finite ground (some may later walk into x < 0).
    for row in summary(at):
        assert row["status"] != "diverged at step 0"
        assert math.isfinite(float(row["best loss"]))


def test_a_rerun_validates_and_builds_each_slot_once(monkeypatch):
    """Drawing a slot finds its spec by key; only reading the slot validates its values,
    with one torch construction (torch's own checks). Nothing else builds an optimizer."""
    at = app()
    no_problems(at)
    validations, constructions = [], []
    real_post_init = OptimizerConfig.__post_init__
    real_init = torch.optim.Optimizer.__init__

    def counting_post_init(self: OptimizerConfig) -> None:
        validations.append(self.key)
        real_post_init(self)

    def counting_init(self, *args, **kwargs) -> None:
        constructions.append(type(self).__name__)
        real_init(self, *args, **kwargs)

    monkeypatch.setattr(OptimizerConfig, "__post_init__", counting_post_init)
    monkeypatch.setattr(torch.optim.Optimizer, "__init__", counting_init)
    at.radio(key="x_axis").set_value("evals").run()  # a rerun that changes no optimizer
    no_problems(at)
    assert validations == ["sgd", "adam", "rmsprop"]
    assert constructions == ["SGD", "Adam", "RMSprop"]


def test_reset_to_defaults_restores_the_first_visit():
    at = app()
    first = summary(at), dict(at.query_params)
    at.selectbox(key="surface").set_value("himmelblau").run()
    at.number_input(key="slot1_lr").set_value(0.01).run()
    at.number_input(key="steps").set_value(50).run()
    assert summary(at) != first[0]
    at.button(key=None) if False else next(
        b for b in at.button if b.label == "Reset to defaults"
    ).click().run()
    no_problems(at)
    assert summary(at) == first[0] and dict(at.query_params) == first[1]
    assert at.selectbox(key="surface").value == "rosenbrock"
