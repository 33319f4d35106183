"""Optimizer packs (optlab.optim.packs): the pytorch_optimizer pack and its protocol.

Each of the pack's optimizers is checked against the library's own class stepped by a
hand-written loop that applies the optimizer's protocol by hand (Schedule-Free's
eval()/train(), SophiaH's create_graph, seeded random draws): the engines must give
exactly that path. The library is required under CI (requirements-extra.txt); locally
without it the library tests are skipped.
"""

from __future__ import annotations

import inspect
import os
from dataclasses import replace

import numpy as np
import pytest
import torch

from optlab.optim import protocol
from optlab.optim.config import OptimizerConfig
from optlab.optim.packs import PACKS, load_packs, pack_names
from optlab.optim.plugins import reserved_keys
from optlab.surface.inspector import record_steps
from optlab.surface.problem import Problem
from optlab.surface.run import SurfaceRunConfig, run_surface
from optlab.train.checkpoint import checkpoint_bytes, read_checkpoint, restore
from optlab.train.data.batches import CIFAR10_MEAN, CIFAR10_STD, normalise
from optlab.train.models import build_model, param_groups
from optlab.train.run import EvalRecord, TrainingSession, TrainRecord
from optlab.train.snapshots import flat_weights
from tests.support.training import tiny_data, tiny_train_config

if os.environ.get("CI") == "true":
    import pytorch_optimizer as po  # CI installs requirements-extra.txt: never skip there
else:
    po = pytest.importorskip("pytorch_optimizer")

from optlab.optim.packs import pytorch_optimizer as pack
from optlab.optim.packs.pytorch_optimizer_muon import muon_groups

SPECS = {spec.key: spec for spec in pack.OPTLAB_OPTIMIZERS}
F64 = torch.float64


# --- loading ---------------------------------------------------------------------------


def test_pack_names_are_read_once_each_in_order() -> None:
    assert pack_names(" pytorch-optimizer, ,PYTORCH_OPTIMIZER,other ") == [
        "pytorch_optimizer",
        "other",
    ]
    assert pack_names("") == []


def test_an_unknown_pack_is_skipped_with_the_known_ones() -> None:
    (result,) = load_packs(reserved_keys(), "nope")
    assert not result.loaded
    assert result.message == "pack nope: skipped: unknown pack (known: pytorch_optimizer)"


def test_a_pack_whose_library_is_missing_says_how_to_install_it(monkeypatch) -> None:
    monkeypatch.setitem(PACKS, "ghost", ("optlab_no_such_library_xyz", "ghost-lib"))
    (result,) = load_packs(reserved_keys(), "ghost")
    assert result.message == (
        "pack ghost: skipped: optlab_no_such_library_xyz is not installed "
        "(pip install -r requirements-extra.txt installs ghost-lib)"
    )


def test_the_pack_registers_its_curated_optimizers_under_their_own_keys() -> None:
    reserved = reserved_keys()
    results = load_packs(reserved, "pytorch_optimizer")
    assert [r.reason for r in results if not r.loaded] == []
    keys = [r.spec.key for r in results]
    assert len(keys) >= 8
    for wanted in ("lion", "adopt", "prodigy", "sf_adamw", "soap", "kron", "sophiah", "muon"):
        assert f"po_{wanted}" in keys
    # Never torch's Muon ("muon") nor the example plugin's Lion ("lion").
    assert not {"muon", "lion"} & set(keys)
    assert all(reserved[k] == "pack pytorch_optimizer" for k in keys)


@pytest.mark.parametrize("key", SPECS)
def test_knobs_are_the_library_constructors_arguments_with_its_defaults(key) -> None:
    spec = SPECS[key]
    split = spec.factory.__module__ == muon_groups.__module__  # MuonSplit: the library's parent
    library = spec.factory.__mro__[1] if split else spec.factory
    params = inspect.signature(library.__init__).parameters
    for hp in spec.hparams:
        assert hp.name in params, hp.name
        # Every default is the library's own.
        assert hp.default == params[hp.name].default, hp.name
    assert spec.paper is not None and spec.paper.url.startswith("https://")
    assert spec.notes and spec.rule.strip()


# --- the surface path against the library stepped by hand --------------------------------


def _by_hand(key: str, steps: int, start=(-1.2, 1.0)) -> list[tuple[float, float]]:
    """The library's class on Rosenbrock, the protocol applied by hand: the path recorded
    at the evaluation point (Schedule-Free: x after eval()), gradients taken at the
    training point, random draws seeded as the engines seed them."""
    spec = SPECS[key]
    surface = Problem(surface="rosenbrock").resolved_surface
    p = torch.tensor(start, dtype=F64, requires_grad=True)
    values = {**spec.defaults}
    if "foreach" in inspect.signature(spec.factory).parameters:
        values["foreach"] = False
    opt = spec.factory([p], **values)
    path = []
    for step in range(steps + 1):
        if spec.averaged:
            y = p.detach().clone()
            opt.eval()
            path.append(tuple(p.detach().tolist()))
            opt.train()
            with torch.no_grad():
                p.copy_(y)
        else:
            path.append(tuple(p.detach().tolist()))
        if step == steps:
            break
        loss = surface(p)
        (p.grad,) = torch.autograd.grad(loss, p, create_graph=spec.create_graph)
        if spec.random:
            seed = protocol.step_seed(0, step)
            with torch.random.fork_rng(devices=[]):
                state = np.random.get_state()
                torch.manual_seed(seed)
                np.random.seed(seed % 2**32)
                opt.step()
                np.random.set_state(state)
        else:
            opt.step()
    return path


def _surface_config(*keys: str, steps: int = 25) -> SurfaceRunConfig:
    problem = Problem(surface="rosenbrock", steps=steps, seed=0)
    return SurfaceRunConfig(tuple(OptimizerConfig.from_text(k) for k in keys), problem)


@pytest.mark.parametrize("key", SPECS)
def test_the_surface_engine_and_the_inspector_follow_the_library_stepped_by_hand(key) -> None:
    cfg = _surface_config(key)
    run = [(r.x, r.y) for r in run_surface(cfg)]
    want = _by_hand(key, cfg.problem.steps)
    assert run == want
    snaps = record_steps(cfg, 0)
    assert [s.point for s in snaps] + [snaps[-1].new_point] == want


def test_a_pack_optimizer_beside_others_follows_the_same_path_as_alone() -> None:
    keys = ("po_sf_adamw", "po_sophiah", "po_kron", "po_lion")
    together = list(run_surface(_surface_config(*keys)))
    for i, key in enumerate(keys):
        alone = [(r.x, r.y) for r in run_surface(_surface_config(key))]
        assert [(r.x, r.y) for r in together if r.index == i] == alone


def test_random_steps_repeat_and_leave_the_global_generators_as_they_were() -> None:
    cfg = _surface_config("po_sophiah", "po_kron")
    torch.manual_seed(123)
    np.random.seed(5)
    before, np_before = torch.get_rng_state(), np.random.get_state()[1].copy()
    first = list(run_surface(cfg))
    assert torch.equal(torch.get_rng_state(), before)
    assert (np.random.get_state()[1] == np_before).all()
    torch.rand(100)  # what else the server draws does not change a run
    assert list(run_surface(cfg)) == first


def test_sophiah_needs_the_gradient_graph_that_the_engines_give_it() -> None:
    p = torch.tensor([1.0, -2.0], dtype=F64, requires_grad=True)
    opt = po.SophiaH([p])
    (p.grad,) = torch.autograd.grad((p * p).sum(), p)  # no create_graph
    with pytest.raises(RuntimeError):
        opt.step()
    # The engine's path moved: its first step used a Hessian estimate.
    run = [(r.x, r.y) for r in run_surface(_surface_config("po_sophiah", steps=3))]
    assert run[0] != run[-1]


def test_schedule_free_records_x_trains_at_y_and_shows_z() -> None:
    cfg = _surface_config("po_sf_adamw", steps=12)
    snaps = record_steps(cfg, 0)
    beta1 = SPECS["po_sf_adamw"].defaults["betas"][0]
    # After step 1 the three points coincide (c₁ = 1 puts y on z); they part from step 2.
    for snap in snaps[2:]:
        y, z = snap.train_point, snap.state_before["z"]
        # x = (y − (1 − β₁) z) / β₁: eval()'s interpolation, undone by hand.
        x = tuple((yi - (1 - beta1) * zi) / beta1 for yi, zi in zip(y, z, strict=True))
        assert snap.point == pytest.approx(x, abs=1e-12)
        assert snap.point != y
    assert all(s.train_point is None for s in record_steps(_surface_config("po_lion"), 0))


def test_evaluation_point_puts_the_training_point_back_bit_for_bit() -> None:
    p = torch.tensor([0.3, -0.7], dtype=F64, requires_grad=True)
    opt = po.ScheduleFreeAdamW([p], lr=0.1)
    for _ in range(5):
        p.grad = torch.tensor([0.11, -0.37], dtype=F64)
        opt.step()
    y = p.detach().clone()
    with protocol.evaluation_point(opt, [p], SPECS["po_sf_adamw"]):
        assert not torch.equal(p.detach(), y)
    assert torch.equal(p.detach(), y)
    assert opt.param_groups[0]["train_mode"] is True


def test_prodigy_d_is_recorded_every_step_and_grows_from_d0() -> None:
    snaps = record_steps(_surface_config("po_prodigy", steps=30), 0)
    ds = [s.groups["d"] for s in snaps]
    assert ds[0] == SPECS["po_prodigy"].defaults["d0"]
    assert ds == sorted(ds) and ds[-1] > 100 * ds[0]
    assert dict(SPECS["po_prodigy"].traces)["d"].startswith("d,")


# --- Muon's groups and the CNN ------------------------------------------------------------


def test_muon_gets_seednets_matrices_and_kernels_and_adamw_its_vectors() -> None:
    model = build_model("seednet", 0)
    groups = muon_groups(model.parameters())
    muon = [p for g in groups if g["use_muon"] for p in g["params"]]
    adamw = [p for g in groups if not g["use_muon"] for p in g["params"]]
    assert all(p.ndim >= 2 for p in muon) and all(p.ndim == 1 for p in adamw)
    assert len(muon) + len(adamw) == len(list(model.parameters()))
    # A lone vector (the 2-D point) is Muon's: there is no matrix to give it.
    point = torch.zeros(2, requires_grad=True)
    assert muon_groups([point]) == [{"params": [point], "use_muon": True}]


def test_muon_keeps_the_callers_groups_first_and_their_adamw_parts_after() -> None:
    groups = muon_groups(param_groups(build_model("seednet", 0)))
    names = ["features", "classifier", "features (AdamW)", "classifier (AdamW)"]
    assert [g["name"] for g in groups] == names
    assert [g["use_muon"] for g in groups] == [True, True, False, False]


def test_muon_keeps_a_groups_name_and_lr_for_its_muon_part_only() -> None:
    weight, bias = torch.zeros(3, 4), torch.zeros(3)
    (muon, adamw) = muon_groups([{"params": [weight, bias], "name": "classifier", "lr": 0.5}])
    assert muon == {"params": [weight], "name": "classifier", "lr": 0.5, "use_muon": True}
    assert adamw == {"params": [bias], "name": "classifier (AdamW)", "use_muon": False}


def _timeless(records: list) -> list:
    """Records without their wall-clock seconds (the one field that may differ)."""
    return [replace(r, step_s=0.0) if isinstance(r, TrainRecord) else r for r in records]


@pytest.mark.parametrize("key", ["po_sf_adamw", "po_sophiah", "po_kron", "po_muon"])
def test_the_cnn_trains_each_protocol_and_repeats_itself(key) -> None:
    data = tiny_data()
    cfg = tiny_train_config(key, steps=4, eval_every=2)
    first = list(TrainingSession(cfg, data).run())
    assert [r.status for r in first if isinstance(r, TrainRecord)][-1] == "done"
    assert _timeless(list(TrainingSession(cfg, data).run())) == _timeless(first)


def test_schedule_free_on_the_cnn_is_tested_at_x_and_trains_as_if_never_tested() -> None:
    data = tiny_data()
    tested = TrainingSession(tiny_train_config("po_sf_adamw", steps=4, eval_every=1), data)
    untested = TrainingSession(tiny_train_config("po_sf_adamw", steps=4, eval_every=4), data)
    records = list(tested.run())
    list(untested.run())
    for a, b in zip(tested.models[0].parameters(), untested.models[0].parameters(), strict=True):
        assert torch.equal(a, b)
    # The last test loss is the model's at x: eval() by hand gives the same number.
    last = [r for r in records if isinstance(r, EvalRecord)][-1]
    at_y = _test_loss(tested)
    tested.optimizers[0].eval()
    assert last.test_loss == pytest.approx(_test_loss(tested), rel=1e-5)
    assert last.test_loss != pytest.approx(at_y, rel=1e-5)


def _test_loss(session: TrainingSession) -> float:
    """Model 0's test loss at whatever point its parameters hold, in one pass."""
    model = session.models[0].eval()
    with torch.no_grad():
        x = normalise(session.test_images, CIFAR10_MEAN, CIFAR10_STD)
        return float(torch.nn.functional.cross_entropy(model(x), session.test_labels))


@pytest.mark.parametrize("key", SPECS)
def test_a_checkpoint_mid_run_resumes_exactly_as_never_stopped(key) -> None:
    """Saved with the CNN lab's checkpoint (loaded weights-only), resumed in a fresh
    session: the rest of the run equals the uninterrupted one (SOAP's and Kron's state
    hold lists, strings and dtypes; Muon's groups are split)."""
    data = tiny_data()
    cfg = tiny_train_config(key, steps=4, eval_every=2)
    whole = TrainingSession(cfg, data)
    expected = _timeless(list(whole.run()))
    first = TrainingSession(cfg, data)
    while first.step < 2:
        first.run_step()
    resumed = TrainingSession(cfg, data)
    restore(resumed, read_checkpoint(checkpoint_bytes(first)))
    assert _timeless(list(resumed.run())) == expected[len(_timeless(first.history)) :]


def test_schedule_free_weight_snapshots_are_taken_at_x() -> None:
    data = tiny_data()
    session = TrainingSession(tiny_train_config("po_sf_adamw", steps=3, snapshot_every=1), data)
    list(session.run())
    (model,), (optimizer,) = session.models, session.optimizers
    at_y = flat_weights(list(model.parameters()))
    optimizer.eval()
    at_x = flat_weights(list(model.parameters()))
    optimizer.train()
    latest = session.snapshots.weights()[0][-1]
    assert torch.equal(latest, at_x) and not torch.equal(latest, at_y)
