"""Each lesson's claims, checked against torch.optim and OptLab's own engine.

The lessons run the loops of `optlab.script.runtime.lessons`; here the same
numbers come from hand-written torch loops (the forgotten zero_grad() is a
loop that accumulates, the per-batch StepLR is torch's scheduler stepped per
batch) and from the playground's engine (`run_surface`), which the lessons'
"Open in the playground" links open.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import pytest
import torch

from optlab.examples.adam_no_bias import AdamNoBiasCorrection
from optlab.examples.lion import Lion
from optlab.lessons import LESSONS, get_lesson, run_lesson
from optlab.lessons.parts import BOWL, CNN_BATCH, CNN_IMAGES, ROSENBROCK
from optlab.lessons.parts import cifar_folder as lesson_cifar_folder
from optlab.lessons.plots import step_lengths
from optlab.lessons.rules import RAVINE, TINY
from optlab.links import config_from_params
from optlab.optim.registry import get_spec
from optlab.script.lessons import SurfaceLoss, first_images
from optlab.script.runtime.train import build_model
from optlab.surface.run import run_surface
from optlab.train.data.batches import normalise
from optlab.train.models import get_model_spec
from tests.support.resources import CIFAR_SUBSET, under_ci

pytestmark = pytest.mark.usefixtures("one_thread")


def cifar_folder() -> Path:
    """The CIFAR-10 subset (beside the checkout, or where $OPTLAB_DATA_DIR says)."""
    for folder in (CIFAR_SUBSET, Path(os.environ.get("OPTLAB_DATA_DIR", "/nonexistent"))):
        if (folder / "data_batch_1").is_file():
            return folder
    if under_ci():
        pytest.fail(f"CIFAR-10 subset not found at {CIFAR_SUBSET}")
    pytest.skip(f"CIFAR-10 subset not found at {CIFAR_SUBSET} or $OPTLAB_DATA_DIR")


def engine_path(link_params: dict, index: int = 0) -> list[list[float]]:
    """The playground engine's path for one optimizer of a lesson's link."""
    cfg = config_from_params({k: v if isinstance(v, list) else [v] for k, v in link_params.items()})
    return [[r.x, r.y] for r in run_surface(cfg) if r.index == index]


def surface_link(lesson_key: str, values: dict | None = None) -> dict:
    (link, *_) = get_lesson(lesson_key).links(get_lesson(lesson_key).values(values or {}))
    assert link.params is not None, link.why
    return dict(link.params)


# --- 1. the training loop ------------------------------------------------------------


def test_forgotten_zero_grad_equals_a_loop_that_accumulates() -> None:
    result = run_lesson(get_lesson("training-loop"), {"lr": 0.03})
    right, forgotten = result.results[0]["runs"]
    xy = torch.tensor(BOWL.start, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.SGD([xy], lr=0.03)
    path, total = [xy.tolist()], torch.zeros(2, dtype=torch.float64)
    for _ in range(len(forgotten["losses"])):
        loss = SurfaceLoss(BOWL)(xy)
        loss.backward()  # never zeroed: .grad is the sum of every gradient so far
        here = xy.detach().clone().requires_grad_(True)
        total += torch.autograd.grad(SurfaceLoss(BOWL)(here), here)[0]
        assert torch.equal(xy.grad, total)
        opt.step()
        path.append(xy.tolist())
    assert forgotten["path"] == path
    # With zero_grad() it is the textbook loop, the playground's own run.
    assert right["path"] == engine_path(surface_link("training-loop", {"lr": 0.03}))
    assert forgotten["grad_norms"][-1] > 10 * right["grad_norms"][-1]


def test_forgotten_zero_grad_on_the_cnn_equals_a_loop_that_accumulates() -> None:
    images, labels = first_images(cifar_folder(), CNN_IMAGES)
    result = run_lesson(get_lesson("training-loop"), {"cnn_lr": 0.01}, images=(images, labels))
    right, forgotten = result.results[1]["runs"]
    factory = get_model_spec("seednet").factory
    for zero_grad, expected in ((True, right), (False, forgotten)):
        model = build_model(factory, 0)
        opt = torch.optim.SGD(model.parameters(), lr=0.01)
        losses = []
        for step in range(len(expected["losses"])):
            batch = slice(step * CNN_BATCH, (step + 1) * CNN_BATCH)
            if zero_grad:
                opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(normalise(images[batch])), labels[batch])
            loss.backward()
            losses.append(loss.item())
            opt.step()
        assert losses == expected["losses"]
    assert forgotten["grad_norms"][-1] > 2 * right["grad_norms"][-1]


# --- 2. step(closure) ------------------------------------------------------------------


@pytest.mark.parametrize("line_search", ["strong_wolfe", "none"])
def test_closure_calls_are_counted_and_match_the_engine(line_search: str) -> None:
    values = {"max_iter": 12, "line_search": line_search}
    (r,) = run_lesson(get_lesson("closure"), values).results
    calls = 0
    xy = torch.tensor(ROSENBROCK.start, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS(
        [xy], lr=1.0, max_iter=12, line_search_fn=None if line_search == "none" else line_search
    )

    def closure() -> torch.Tensor:
        nonlocal calls
        calls += 1
        opt.zero_grad()
        loss = SurfaceLoss(ROSENBROCK)(xy)
        loss.backward()
        return loss

    per_step = []
    for _ in range(len(r["counts"])):
        before = calls
        opt.step(closure)
        per_step.append(calls - before)
    assert r["counts"] == per_step
    assert sum(r["counts"]) == len(r["evaluations"]) > len(r["counts"])
    assert max(r["counts"]) <= int(12 * 1.25)
    assert r["path"] == engine_path(surface_link("closure", values))


# --- 3. changing the lr two ways ---------------------------------------------------------


@pytest.mark.parametrize("optimizer", ["Adam", "SGD with momentum 0.9"])
def test_a_new_optimizer_loses_the_state_and_editing_param_groups_keeps_it(optimizer) -> None:
    values = {"optimizer": optimizer, "at": 40, "factor": 0.5}
    new, edited = run_lesson(get_lesson("change-lr"), values).results
    assert new["state_at_change"] == []
    expected = ["exp_avg", "exp_avg_sq", "step"] if optimizer == "Adam" else ["momentum_buffer"]
    assert edited["state_at_change"] == expected
    assert new["path"][:41] == edited["path"][:41]
    assert new["path"][41] != edited["path"][41]
    # Editing param_groups is the playground's planned change, step for step.
    assert edited["path"] == engine_path(surface_link("change-lr", values))


def test_the_new_optimizer_run_equals_a_fresh_optimizer_from_step_t() -> None:
    new, _ = run_lesson(get_lesson("change-lr"), {"at": 30, "factor": 2.0}).results
    xy = torch.tensor(new["path"][30], dtype=torch.float64, requires_grad=True)
    opt = torch.optim.Adam([xy], lr=0.1)
    for point in new["path"][31:]:
        opt.zero_grad()
        SurfaceLoss(ROSENBROCK)(xy).backward()
        opt.step()
        assert xy.tolist() == point


# --- 5. schedulers -----------------------------------------------------------------------


def test_step_lr_per_batch_equals_torch_and_decays_per_batch() -> None:
    per_epoch, per_batch = run_lesson(get_lesson("schedulers"), {"step_size": 2}).results
    for stepped_per_batch, result in ((False, per_epoch), (True, per_batch)):
        opt = torch.optim.SGD([torch.zeros(2, requires_grad=True)], lr=0.05)
        scheduler = torch.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)
        lrs = []
        for _ in range(6):
            for _ in range(100):
                lrs.append(opt.param_groups[0]["lr"])
                opt.step()
                if stepped_per_batch:
                    scheduler.step()
            if not stepped_per_batch:
                scheduler.step()
        assert result["lrs"] == lrs
    assert per_epoch["lrs"][100] == 0.05 and per_epoch["lrs"][200] == 0.025
    assert per_batch["lrs"][2] == 0.025 and per_batch["lrs"][100] == 0.05 * 0.5**50


# --- 6. state_dict ----------------------------------------------------------------------


@pytest.mark.parametrize("optimizer", get_lesson("state-dict").control("optimizer").options)
def test_resuming_from_a_state_dict_is_identical_to_never_stopping(optimizer: str) -> None:
    (r,) = run_lesson(get_lesson("state-dict"), {"optimizer": optimizer, "stop_at": 25}).results
    assert r["resumed"] == r["straight"]
    assert r["straight"] == engine_path(surface_link("state-dict", {"optimizer": optimizer}))
    buffers = r["state"]["0"]
    expected = {
        "Adam": {"exp_avg", "exp_avg_sq", "step"},
        "SGD with momentum 0.9": {"momentum_buffer"},
        "RMSprop": {"square_avg", "step"},
        "Adagrad": {"sum", "step"},
    }[optimizer]
    assert set(buffers) == expected
    if "step" in buffers:
        assert buffers["step"] == 25


# --- 7. momentum ------------------------------------------------------------------------


def test_momentum_runs_equal_the_engine_and_momentum_one_never_converges() -> None:
    (r,) = run_lesson(get_lesson("momentum"), {"momentum": 0.9}).results
    link = surface_link("momentum", {"momentum": 0.9})
    for i, run in enumerate(r["runs"]):
        assert run["path"] == engine_path(link, i)
    plain, heavy, nesterov = (run["losses"][-1] for run in r["runs"])
    assert heavy < plain and nesterov < plain
    (at_one,) = run_lesson(get_lesson("momentum"), {"momentum": 1.0}).results
    losses = at_one["runs"][1]["losses"]
    assert min(losses[-20:]) > 1e-3  # still swinging after 100 steps
    (above,) = run_lesson(get_lesson("momentum"), {"momentum": 1.1}).results
    grown = above["runs"][1]["losses"]
    assert grown[-1] > 1e3 * grown[0]


# --- 8. Adam's bias correction and ε -----------------------------------------------------


def test_adam_without_bias_correction_is_the_uncorrected_rule() -> None:
    first, tiny = run_lesson(get_lesson("adam-bias"), {"lr": 0.1, "eps": 1e-16}).results
    adam, raw = first["runs"]
    # Adam's first step moves each coordinate by lr; the uncorrected one by
    # lr (1 - b1) / sqrt(1 - b2) (ε aside).
    assert step_lengths(adam["path"])[0] == pytest.approx(0.1 * math.sqrt(2), rel=1e-6)
    factor = 0.1 / math.sqrt(0.001)
    assert step_lengths(raw["path"])[0] == pytest.approx(0.1 * factor * math.sqrt(2), rel=1e-6)
    # The plugin is the textbook rule without the correction, written out here.
    xy = torch.tensor(BOWL.start, dtype=torch.float64, requires_grad=True)
    m, v = torch.zeros(2, dtype=torch.float64), torch.zeros(2, dtype=torch.float64)
    for point in raw["path"][1:]:
        g = torch.autograd.grad(SurfaceLoss(BOWL)(xy), xy)[0]
        m = 0.9 * m + 0.1 * g
        v = 0.999 * v + 0.001 * g * g
        with torch.no_grad():
            xy -= 0.1 * m / (v.sqrt() + 1e-8)
        assert xy.tolist() == pytest.approx(point, rel=1e-12, abs=1e-15)
    # Gradients of about 1e-9: the default ε shrinks the first step; ε = 1e-16 does not.
    default, small = (step_lengths(run["path"])[0] for run in tiny["runs"])
    assert small == pytest.approx(0.1 * math.sqrt(2), rel=1e-6)
    assert default < 0.5 * small
    g = torch.tensor([-1.8, 12.0], dtype=torch.float64) * TINY  # the bowl's gradient at the start
    expected = 0.1 * torch.linalg.vector_norm(g.abs() / (g.abs() + 1e-8)).item()
    assert default == pytest.approx(expected, rel=1e-6)


def test_adam_no_bias_is_a_plugin_and_lion_steps_are_lr_root_two() -> None:
    # Both register the plugin way (OPTLAB_PLUGINS loads its own copy of the module),
    # and the playground's runs of the registered classes equal the lessons' runs.
    assert get_spec("adam_no_bias").factory.__name__ == AdamNoBiasCorrection.__name__
    first, _ = run_lesson(get_lesson("adam-bias")).results
    assert first["runs"][1]["path"] == engine_path(surface_link("adam-bias"), 1)
    (r,) = run_lesson(get_lesson("your-own"), {"lr": 0.02, "beta1": 0.9}).results
    lion = r["runs"][0]
    assert all(
        s == pytest.approx(0.02 * math.sqrt(2), rel=1e-12) for s in step_lengths(lion["path"])
    )
    link = surface_link("your-own", {"lr": 0.02, "beta1": 0.9})
    assert lion["path"] == engine_path(link, 0)
    assert get_spec("lion").factory.__name__ == Lion.__name__


# --- the lessons as a whole ----------------------------------------------------------------


def test_lessons_are_numbered_and_validate_their_controls() -> None:
    assert [lesson.number for lesson in LESSONS] == [1, 2, 3, 4, 5, 6, 7, 8, 9]
    assert len({lesson.key for lesson in LESSONS}) == len(LESSONS)
    for lesson in LESSONS:
        assert 1 <= len(lesson.controls) <= 3
        assert lesson.values({}) == lesson.defaults
    lesson = get_lesson("momentum")
    with pytest.raises(ValueError, match=r"momentum: must be between 0 and 1.1, got 2"):
        run_lesson(lesson, {"momentum": 2.0})
    with pytest.raises(ValueError, match="lesson 7 has no such control"):
        run_lesson(lesson, {"lr": 1.0})
    with pytest.raises(ValueError, match="optimizer: must be one of"):
        run_lesson(get_lesson("state-dict"), {"optimizer": "Lion"})
    with pytest.raises(ValueError, match="lesson"):
        get_lesson("nope")
    assert get_lesson("closure").control("max_iter").parse("7") == 7
    with pytest.raises(ValueError, match="expected a whole number"):
        get_lesson("closure").control("max_iter").parse("7.5")


def test_every_link_opens_its_page() -> None:
    for lesson in LESSONS:
        for link in lesson.links(lesson.defaults):
            assert link.params is not None, (lesson.key, link.why)
            if link.page == "":
                config_from_params(
                    {k: v if isinstance(v, list) else [v] for k, v in link.params.items()}
                )
    assert RAVINE.values == (("kappa", 50.0),)


def test_the_cnn_lessons_find_cifar_where_the_server_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = cifar_folder()
    monkeypatch.setenv("OPTLAB_DATA_DIR", str(folder))
    assert lesson_cifar_folder() == (folder, "")
    monkeypatch.setenv("OPTLAB_DATA_DIR", str(tmp_path))
    found, why = lesson_cifar_folder()
    assert found is None and f"no data_batch_1 in {tmp_path}" in why
