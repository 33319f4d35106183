"""Lesson 4 of the Lessons page: per-layer learning rates, and fine-tuning with
``add_param_group``.

The lesson's two runs are two CNN lab slots (`TrainSlot`) built from its
controls: both with the classifier's own lr multiple, the second with the
features frozen until step N. The program that draws the charts
(`optlab.script.runtime.finetune.fine_tune`) takes its optimizer, lr
multiple and freeze from those slots, and "Open in the CNN lab" carries the
same slots (``clr=`` and ``freeze=`` in the link), so the chart, its script
and the lab run one configuration.
"""

from __future__ import annotations

from typing import Any

import plotly.graph_objects as go

from optlab.lessons import plots
from optlab.lessons.lesson import Control, Lesson, OpenLink, Results, Values
from optlab.lessons.parts import CNN_MODEL, cnn_data
from optlab.links import train_to_params
from optlab.optim.config import OptimizerConfig
from optlab.script.lessons import LessonProgram
from optlab.train.config import TrainRunConfig, TrainSlot
from optlab.train.freeze import Freeze

#: Images per step and steps: each step trains on the next batch of the first
#: images (96 of the CNN_IMAGES the page reads); two runs of 12 steps open in
#: about a second on a warm two-core server.
BATCH, STEPS = 8, 12
#: The length of the CNN lab run that "Open in the CNN lab" sets up.
LAB_STEPS = 200
#: The optimizers to choose from: registry key and hyperparameters (lr is the features').
OPTIMIZERS: dict[str, tuple[str, dict[str, Any]]] = {
    "SGD with momentum 0.9": ("sgd", {"lr": 0.005, "momentum": 0.9}),
    "Adam": ("adam", {"lr": 0.0001}),
}
#: Each group's colour and each run's dash in the charts.
_GROUP_COLORS = {"features": "#1f77b4", "classifier": "#d62728"}
_RUN_DASHES = ("solid", "dash")
_OWNER = {"features": "features'", "classifier": "classifier's"}


def slots(v: Values) -> tuple[TrainSlot, TrainSlot]:
    """The lesson's two runs as CNN lab slots: all layers from the start, and the
    features frozen for ``at`` steps, both with the classifier's lr ``clr`` times the
    features'."""
    key, values = OPTIMIZERS[v["optimizer"]]
    optimizer = OptimizerConfig.create(key, **values)
    return (
        TrainSlot(optimizer, classifier_lr_mult=v["clr"]),
        TrainSlot(optimizer, classifier_lr_mult=v["clr"], freeze=Freeze(v["at"])),
    )


def run_of(slot: TrainSlot) -> dict[str, Any]:
    """A slot as `fine_tune` takes a run: label, torch class, arguments, freeze."""
    optimizer = slot.optimizer
    if slot.freeze is None:
        label = "all layers from step 1"
    else:
        label = f"{slot.freeze.describe()}, then add_param_group"
    return {
        "label": label,
        "class": optimizer.spec.factory,
        # The lr always written out (it is the features' lr, the multiple's base).
        "kwargs": {"lr": optimizer.kwargs["lr"], **optimizer.changed()},
        "freeze_at": None if slot.freeze is None else slot.freeze.at,
    }


def _programs(v: Values) -> tuple[LessonProgram, ...]:
    from_start, frozen = slots(v)
    return (
        LessonProgram(
            "Per-layer learning rates on the CIFAR-10 CNN, and fine-tuning: the features "
            f"frozen for {v['at']} steps, then added with add_param_group",
            "fine_tune",
            (
                ("runs", [run_of(from_start), run_of(frozen)]),
                ("steps", STEPS),
                ("batch_size", BATCH),
                ("seed", 0),
                ("classifier_lr_mult", frozen.classifier_lr_mult),
            ),
            cnn_data(),
        ),
    )


def _mark_add(fig: go.Figure, at: int, *, log: bool = False) -> go.Figure:
    """A dotted vertical line between step ``at`` and ``at + 1``, where the features
    join, named in the legend (a label on the plot would cover a curve)."""
    shown = [y for trace in fig.data for y in trace.y if y is not None and (y > 0 or not log)]
    if shown:
        fig.add_scatter(
            x=[at + 0.5, at + 0.5],
            y=[min(shown), max(shown)],
            mode="lines",
            line=dict(color="black", dash="dot", width=2),
            name=f"add_param_group, before step {at + 1}",
            hoverinfo="skip",
        )
    return fig


def _moved_figure(runs: list[dict], group: str, at: int) -> go.Figure:
    fig = plots.curves_figure(
        [(r["label"], r["moved"][group]) for r in runs],
        x_title=f"step (a batch of {BATCH} CIFAR-10 images)",
        y_title="|θ − θ₀|",
        title=f"How far the {_OWNER[group]} weights moved",
        mode="lines+markers",
    )
    for trace, dash in zip(fig.data, _RUN_DASHES, strict=False):
        trace.line.color = trace.marker.color = _GROUP_COLORS[group]
        trace.line.dash = dash
    return _mark_add(fig, at)


def _lr_figure(run: dict, at: int) -> go.Figure:
    names = [group["name"] for group in run["groups"][-1]]
    curves = [
        (
            f"param group '{name}'",
            [next((g["lr"] for g in step if g["name"] == name), None) for step in run["groups"]],
        )
        for name in sorted(names, key=list(_GROUP_COLORS).index)
    ]
    fig = plots.curves_figure(
        curves,
        x_title="step",
        y_title="lr in optimizer.param_groups",
        log=True,
        title="The fine-tuning run's param groups: one, then two",
        mode="lines+markers",
    )
    for trace, name in zip(fig.data, sorted(names, key=list(_GROUP_COLORS).index), strict=True):
        trace.line.color = trace.marker.color = _GROUP_COLORS[name]
        trace.line.dash = _RUN_DASHES[1]  # the fine-tuning run's
    return _mark_add(fig, at, log=True)


def _figures(results: Results, v: Values) -> list[tuple[str, Any]]:
    (r,) = results
    if r is None:
        return []
    runs = r["runs"]
    return [
        ("per-layer-features", _moved_figure(runs, "features", v["at"])),
        ("per-layer-classifier", _moved_figure(runs, "classifier", v["at"])),
        ("per-layer-lrs", _lr_figure(runs[1], v["at"])),
    ]


def _steps(n: int) -> str:
    return f"{n} step{'s' if n != 1 else ''}"


def _findings(results: Results, v: Values) -> str:
    (r,) = results
    if r is None:
        return (
            f"This lesson trains the CNN on the first {STEPS * BATCH} CIFAR-10 images, "
            "which this server does not have."
        )
    from_start, frozen = r["runs"]
    at, done = v["at"], len(frozen["losses"])
    if done <= at:
        return (
            f"The fine-tuning run diverged at step {done}, before the features were "
            "added: the classifier's lr is too large."
        )
    before, after = frozen["groups"][at - 1], frozen["groups"][at]
    lrs = ", ".join(f"{g['name']} lr={g['lr']:.3g}" for g in after)
    text = (
        f"For its first {_steps(at)} the fine-tuning run's optimizer had "
        f"**{len(before)} param group** (classifier lr={before[0]['lr']:.3g}) and its "
        f"features moved **{frozen['moved']['features'][at - 1]:g}**: frozen parameters "
        "get no gradient, so `step()` leaves them exactly as they were. "
        f"`add_param_group` before step {at + 1} made **{len(after)} groups** ({lrs}): "
        "the new group took the lr the optimizer was built with. The features joined "
        f"with optimizer state for {frozen['added_state']} of their parameters: their "
        "momentum (or Adam's moments and step count) starts from zero there."
    )
    if done < STEPS or len(from_start["losses"]) < STEPS:
        stopped = [r["label"] for r in (from_start, frozen) if len(r["losses"]) < STEPS]
        return text + f" Diverged (the classifier's lr is too large): {', '.join(stopped)}."
    return text + (
        f" After {_steps(STEPS)} the features moved {frozen['moved']['features'][-1]:.3g} "
        f"fine-tuned and {from_start['moved']['features'][-1]:.3g} trained from the start; "
        f"the classifier, at {v['clr']:g}× their lr, moved "
        f"{frozen['moved']['classifier'][-1]:.3g} and "
        f"{from_start['moved']['classifier'][-1]:.3g}."
    )


def _links(v: Values) -> tuple[OpenLink, ...]:
    label = "Open both runs in the CNN lab (clr and freeze in the link)"
    try:
        cfg = TrainRunConfig(
            slots=slots(v), model=CNN_MODEL, batch_size=BATCH, steps=LAB_STEPS, epochs=None
        )
    except ValueError as err:
        return (OpenLink(label, "cnn-lab", None, str(err)),)
    return (OpenLink(label, "cnn-lab", train_to_params(cfg, "cifar10")),)


PER_LAYER_LR = Lesson(
    key="per-layer-lr",
    number=4,
    title="Per-layer learning rates",
    text=(
        "An optimizer holds its parameters in **param groups**, each with its own "
        "options: `SGD([{'params': features}, {'params': classifier, 'lr': 10 * lr}], "
        "lr=lr)` trains the classifier ten times faster than the features (a group "
        "without an `lr` takes the optimizer's). Fine-tuning goes further: the "
        "features are **frozen** (`requires_grad_(False)`) and left out of the "
        "optimizer while the classifier learns alone, then unfrozen and handed to the "
        "running optimizer with `optimizer.add_param_group({'params': features})`. "
        f"Below, both on the CNN, {STEPS} batches of {BATCH} images: all layers from "
        "the start, and the features frozen until step N. Solid: all layers; dashed: "
        "fine-tuning."
    ),
    controls=(
        Control(
            "at",
            "Add the features after step N",
            6,
            1,
            STEPS - 1,
            integer=True,
            help="the features are frozen for N steps, then added with add_param_group",
        ),
        Control(
            "clr",
            "Classifier lr = features' lr x",
            10.0,
            0.1,
            100.0,
            log=True,
            help="the classifier group's own lr, as a multiple of the optimizer's lr",
        ),
        Control("optimizer", "Optimizer", "SGD with momentum 0.9", options=tuple(OPTIMIZERS)),
    ),
    programs=_programs,
    figures=_figures,
    findings=_findings,
    links=_links,
)
