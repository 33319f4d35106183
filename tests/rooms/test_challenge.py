"""Challenges and the server's verification of submitted playground links."""

from __future__ import annotations

import pytest

from optlab.links.playground import config_to_params
from optlab.optim.config import OptimizerConfig
from optlab.rooms.challenge import (
    Challenge,
    _first_steps_once,
    config_for,
    first_steps,
    reached_in,
    verify,
)
from optlab.surface.problem import Problem
from optlab.surface.run import SurfaceRunConfig
from optlab.surface.trajectory import collect

ADAM, SGD = "adam:lr=0.05", "sgd:lr=0.001"


def link(*opts: str, steps: int = 2000, **extra: str) -> dict[str, list[str]]:
    """A playground share link on Rosenbrock from its default start."""
    return {"surface": ["rosenbrock"], "steps": [str(steps)], "opt": list(opts)} | {
        k: [v] for k, v in extra.items()
    }


def brute_force_first_step(opt: str, target: float, steps: int = 2000) -> int | None:
    """The first step below ``target`` read off a whole run (the engine's own run)."""
    cfg = SurfaceRunConfig((OptimizerConfig.from_text(opt),), Problem("rosenbrock", steps=steps))
    (traj,) = collect(cfg)
    return next((s for s, f in zip(traj.step, traj.loss, strict=True) if f < target), None)


def test_a_challenge_takes_the_surfaces_start_and_refuses_bad_fields():
    challenge = Challenge("rosenbrock")
    assert challenge.start == (-1.2, 1.0) and challenge.target == 1e-3
    assert "Rosenbrock" in challenge.text and "1e-3" in challenge.text.replace("0.001", "1e-3")
    with pytest.raises(ValueError, match="registered surface"):
        Challenge("custom")
    with pytest.raises(ValueError, match="unknown surface"):
        Challenge("nope")
    with pytest.raises(ValueError, match="cannot be reached"):
        Challenge("rosenbrock", target=0.0)
    with pytest.raises(ValueError, match="finite"):
        Challenge("rosenbrock", target=float("nan"))
    with pytest.raises(ValueError, match="expected a number"):
        Challenge("rosenbrock", target="1e-3")
    with pytest.raises(ValueError, match="start"):
        Challenge("rosenbrock", start=(1e9, 0.0))


def test_verification_runs_the_link_and_keeps_only_optimizers_that_got_there():
    results = verify(Challenge("rosenbrock"), link(ADAM, SGD))
    assert [(r.settings, r.optimizer) for r in results] == [(ADAM, "Adam (lr=0.05)")]
    assert results[0].steps == brute_force_first_step(ADAM, 1e-3)


def test_first_steps_stops_early_and_matches_a_whole_run():
    cfg = config_for(Challenge("rosenbrock", target=0.1), link(ADAM, SGD))
    assert first_steps(cfg, 0.1) == [
        brute_force_first_step(ADAM, 0.1),
        brute_force_first_step(SGD, 0.1),
    ]


def test_a_claim_the_server_cannot_confirm_is_refused():
    challenge = Challenge("rosenbrock")
    true_steps = verify(challenge, link(ADAM))[0].steps
    assert verify(challenge, link(ADAM), {ADAM: true_steps})[0].steps == true_steps
    with pytest.raises(
        ValueError, match=f"at step 3, but the server's run gets there at step {true_steps}"
    ):
        verify(challenge, link(ADAM), {ADAM: 3})
    with pytest.raises(ValueError, match="never gets there"):
        verify(challenge, link(ADAM, SGD), {SGD: 10})


@pytest.mark.parametrize(
    ("params", "message"),
    [
        (link(ADAM, start="0.99,0.98"), "starts at"),
        ({"surface": ["beale"], "opt": [ADAM]}, "this run is on Beale"),
        ({"surface": ["quadratic"], "opt": [ADAM]}, "on Rosenbrock"),
        (link(ADAM, steps=10), "no optimizer reached"),
        (link("adam:lr=banana"), "could not be read"),
        (link(ADAM, steps=10**9), "could not be read"),
        ({"opt": ["adam"] * 50}, "could not be read"),
    ],
)
def test_links_that_are_not_the_challenges_problem_are_refused(params, message):
    with pytest.raises(ValueError, match=message):
        verify(Challenge("rosenbrock"), params)


def test_changed_surface_parameters_are_refused():
    with pytest.raises(ValueError, match="default parameters"):
        verify(Challenge("quadratic"), {"surface": ["quadratic"], "sp": ["kappa=1"], "opt": [ADAM]})


def test_what_the_page_shows_is_what_the_server_confirms():
    challenge = Challenge("rosenbrock")
    cfg = config_for(challenge, link(ADAM, SGD, "adam:lr=50"))
    claims = reached_in(collect(cfg), challenge.target)
    assert set(claims) == {ADAM}
    params = {k: v if isinstance(v, list) else [v] for k, v in config_to_params(cfg).items()}
    assert {r.settings: r.steps for r in verify(challenge, params, claims)} == claims


def test_a_link_the_class_submits_again_is_run_once():
    challenge = Challenge("rosenbrock", target=0.5)
    params = link(ADAM, steps=800)
    first = verify(challenge, params)
    hits = _first_steps_once.cache_info().hits
    assert verify(challenge, {**params, "utm_source": ["mail"]}) == first
    assert _first_steps_once.cache_info().hits == hits + 1
