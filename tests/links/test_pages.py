"""Share links of the CNN lab and the sweeps page: every setting round-trips through the URL."""

from __future__ import annotations

from dataclasses import fields, replace

import pytest
from streamlit.testing.v1 import AppTest

from optlab.links import train_from_params, train_to_params
from optlab.optim.config import OptimizerConfig
from optlab.optim.plans import Change
from optlab.optim.schedulers import SchedulerConfig
from optlab.train.freeze import Freeze
from optlab.train.run import TrainRunConfig, TrainSlot
from optlab.ui.cnn import settings
from tests.support.resources import APP


def as_lists(params: dict) -> dict[str, list[str]]:
    return {k: v if isinstance(v, list) else [v] for k, v in params.items()}


CONFIGS = [
    settings.default_config(),
    TrainRunConfig(
        (
            TrainSlot(
                OptimizerConfig.create("sgd", lr=0.05, momentum=0.9),
                classifier_lr_mult=10.0,
                scheduler=SchedulerConfig("cosine", (("eta_min", 1e-4),)),
                changes=(Change(2, "lr", 0.1, True, "classifier", epoch=True),),
                freeze=Freeze(1, epoch=True),
            ),
            TrainSlot(OptimizerConfig.create("adam", lr=3e-4, betas=(0.8, 0.99))),
            TrainSlot(OptimizerConfig.create("adamw", lr=1e-3), freeze=Freeze(200)),
            TrainSlot(
                OptimizerConfig.create("muon", lr=0.02, nesterov=False),
                companion=OptimizerConfig.create("adamw", lr=1e-3, betas=(0.85, 0.98)),
            ),
        ),
        model="seednet-relu",
        batch_size=32,
        steps=700,
        epochs=None,
        train_limit=None,
        test_limit=500,
        augment=True,
        clip_grad_norm=2.0,
        eval_every=25,
        seed=11,
        device="cpu",
    ),
]


#: What a link does not carry: the page's fixed trajectory settings (it has no control
#: for them, and applies them to every run it starts), left at the CLI's defaults.
UNLINKED = {f.name: f.default for f in fields(TrainRunConfig) if f.name in settings.TRAJECTORIES}


@pytest.mark.parametrize("cfg", CONFIGS, ids=["default", "everything"])
def test_training_configs_round_trip_through_links(cfg):
    params = train_to_params(cfg, "synthetic")
    back, data = train_from_params(as_lists(params))
    assert back == replace(cfg, **UNLINKED) and data == "synthetic"
    assert not any(key.startswith(("snapshot", "sharpness")) for key in params)


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"opt": []}, "names no optimizer"),
        ({"clr": ["2"]}, "clr: one per optimizer"),
        ({"batch": ["many"]}, "batch: expected a whole number"),
        ({"data": ["imagenet"]}, "data: cifar10 or synthetic"),
        ({"augment": ["maybe"]}, "augment: true or false"),
        ({"plan": ["cosine", "none|x:lr=1"]}, "expected STEP:NAME=VALUE"),
        ({"seed": ["1", "2"]}, "given 2 times"),
        ({"opt": ["muon", "adam"], "rest": ["adamw"]}, "rest: one per optimizer"),
        ({"opt": ["adam"], "rest": ["adamw"]}, "companion: Adam trains every parameter"),
        ({"opt": ["muon"], "rest": ["lbfgs"]}, "companion: L-BFGS cannot train"),
        ({"model": ["x" * 2000]}, "too long"),
        ({"freeze": ["soon", "off"]}, "expected a step count N, epochN or off"),
        ({"freeze": ["100"]}, "freeze: one per optimizer"),
        ({"opt": ["lbfgs", "adam"], "freeze": ["5", "off"]}, "L-BFGS optimizes one param"),
    ],
)
def test_bad_training_links_are_refused_clearly(change, fragment):
    params = {**as_lists(train_to_params(settings.default_config(), "cifar10")), **change}
    with pytest.raises(ValueError, match=fragment):
        train_from_params(params)


def open_page(path: str, query: dict[str, list[str]], monkeypatch, tmp_path) -> AppTest:
    monkeypatch.setenv("OPTLAB_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv("OPTLAB_DATA_DIR", raising=False)
    at = AppTest.from_file(APP, default_timeout=120)
    at.query_params.update(query)
    at.switch_page(path).run()
    assert not at.exception, [e.message for e in at.exception]
    return at


def test_the_cnn_page_opens_a_link_and_mirrors_its_settings(monkeypatch, tmp_path):
    cfg = replace(CONFIGS[1], train_limit=8000)  # the page's input has no "all"
    at = open_page(
        "pages/cnn.py", as_lists(train_to_params(cfg, "synthetic")), monkeypatch, tmp_path
    )
    assert not at.warning
    # The page runs the link's settings with its own trajectory settings.
    assert settings.config_from_state(at.session_state) == replace(cfg, **settings.TRAJECTORIES)
    assert at.session_state[settings.DATA] == settings.SYNTHETIC
    assert at.text_area(key="cnn_slot0_changes").value == "epoch2:classifier.lr*=0.1"
    # The freezes show as the sidebar's widgets: on, for how long, in which unit.
    assert at.checkbox(key="cnn_slot0_freeze_on").value
    assert at.number_input(key="cnn_slot0_freeze_at").value == 1
    assert at.radio(key="cnn_slot0_freeze_unit").value == "epochs"
    assert not at.checkbox(key="cnn_slot1_freeze_on").value
    assert at.number_input(key="cnn_slot2_freeze_at").value == 200
    assert dict(at.query_params)["freeze"] == ["epoch1", "off", "200", "off"]
    # The address bar is the link again.
    assert dict(at.query_params)["steps"] == "700"
    bad = open_page("pages/cnn.py", {"page": ["cnn"], "opt": ["nope"]}, monkeypatch, tmp_path)
    assert "This link could not be used" in bad.warning[0].value
    assert settings.config_from_state(bad.session_state) == settings.default_config()


def test_the_sweep_page_round_trips_its_link_in_every_mode(monkeypatch, tmp_path):
    links = [
        {
            "page": ["sweep"],
            "mode": ["sweep"],
            "surface": ["beale"],
            "opt": ["adam"],
            "x": ["lr=0.001:0.3:log:12"],
            "y": ["betas.0=0:0.95:lin:8"],
            "steps": ["120"],
            "metric": ["best_loss"],
        },
        {
            "page": ["sweep"],
            "mode": ["basins"],
            "surface": ["himmelblau"],
            "opt": ["sgd:lr=0.01,momentum=0.5"],
            "starts": ["10"],
            "steps": ["150"],
        },
        {
            "page": ["sweep"],
            "mode": ["fair"],
            "surface": ["rosenbrock"],
            "fair": ["sgd_momentum", "adam"],
            "lr": ["lr=1e-05:1:log:9"],
            "steps": ["80"],
        },
    ]
    for link in links:
        at = open_page("pages/sweep.py", link, monkeypatch, tmp_path)
        # A sweep whose best cell is an end of its range says so; that is not about the link.
        problems = [w.value for w in at.warning if "best cell is on the edge" not in w.value]
        assert not problems, problems
        shown = {k: v if isinstance(v, list) else [v] for k, v in at.query_params.items()}
        for key, value in link.items():
            assert shown[key] == value, key
    bad = open_page(
        "pages/sweep.py", {"page": ["sweep"], "mode": ["nowhere"]}, monkeypatch, tmp_path
    )
    assert "This link could not be used" in bad.warning[0].value


def test_a_muon_link_with_another_companion_than_adamw_shows_that_companions_knobs(
    monkeypatch, tmp_path
):
    # A link may name any companion the engine takes; the sidebar once wrote AdamW's
    # knobs (betas) from it and failed with a KeyError on SGD's values.
    slot = TrainSlot(
        OptimizerConfig.create("muon", lr=0.02),
        companion=OptimizerConfig.create("sgd", lr=0.1, momentum=0.9, weight_decay=0.001),
    )
    cfg = replace(settings.default_config(), slots=(slot,))
    query = as_lists(train_to_params(cfg, "synthetic"))
    assert query["rest"] == ["sgd:lr=0.1,momentum=0.9,weight_decay=0.001"]
    at = open_page("pages/cnn.py", query, monkeypatch, tmp_path)
    assert not at.warning and not at.error, [w.value for w in at.warning]
    assert any(m.value == "**SGD for the other weights**" for m in at.sidebar.markdown)
    assert any("SGD trains the other 8 tensors" in c.value for c in at.sidebar.caption)
    assert at.number_input(key="cnn_slot0_rest_lr").value == 0.1
    assert at.number_input(key="cnn_slot0_rest_weight_decay").value == 0.001
    assert not [w for w in at.number_input if "rest_betas" in (w.key or "")]
    assert settings.config_from_state(at.session_state) == replace(cfg, **settings.TRAJECTORIES)
    # Edited in the sidebar, the SGD companion keeps its momentum (a knob not shown).
    at.number_input(key="cnn_slot0_rest_lr").set_value(0.05).run()
    got = settings.config_from_state(at.session_state).slots[0].companion
    assert got == OptimizerConfig.create("sgd", lr=0.05, momentum=0.9, weight_decay=0.001)
    assert as_lists(dict(at.query_params))["rest"] == [
        "sgd:lr=0.05,momentum=0.9,weight_decay=0.001"
    ]
