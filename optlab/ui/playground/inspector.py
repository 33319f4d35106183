"""The playground's step inspector: one optimizer, one step, everything torch.optim holds.

The records come from `optlab.surface.inspector.record_steps` (a replay of that
optimizer with real torch.optim), cached per single-optimizer config like
the trajectories, so scrubbing the step slider costs nothing. Every number is
labelled with the symbol its update rule gives it, from the spec's explicit
mapping (`OptimizerSpec.symbols`, `OptimizerSpec.state`); a quantity the rule
has no symbol for is shown by torch's own name, as text.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from optlab.optim.config import OptimizerConfig
from optlab.optim.stability import sgd_threshold_formula
from optlab.surface import inspector_plots
from optlab.surface.curvature import (
    Curvature,
    SharpnessPath,
    curvature_at,
    sgd_threshold,
    sharpness_paths,
)
from optlab.surface.inspector import Plain, StepSnapshot, directions, record_steps
from optlab.surface.run import SurfaceRunConfig
from optlab.surface.sequences import add_sequence_markers, sequence_points, trace_figure
from optlab.surface.trajectory import Trajectory
from optlab.ui.playground.settings import SLOTS
from optlab.ui.view import PRESENTER_SQUARE_PX, columns, show_chart

SLOT_KEY, STEP_KEY, SCALE_KEY = "inspect_slot", "inspect_step", "inspect_scale"
#: Session key of the expander: whether the inspector is open.
OPEN_KEY = "inspector_open"
#: The slot id the picker follows, so that it stays on its slot when the slot's
#: label changes (Streamlit keeps a selectbox's choice by its label).
FOLLOW_KEY = "inspect_follow"
OWN_SCALE, ONE_SCALE = "each its own scale", "one scale"


@st.cache_data(max_entries=32, show_spinner="Recording every step…")
def cached_record(cfg: SurfaceRunConfig) -> list[StepSnapshot]:
    """All snapshots of the only optimizer of ``cfg`` (one per slot config)."""
    return record_steps(cfg, 0)


def _text(value: Plain) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, tuple):
        if len(value) > 6:
            return f"{len(value)} values"
        return "(" + ", ".join(_text(v) for v in value) + ")"
    return "—" if value is None else str(value)


def _num(v: float) -> str:
    """A number in LaTeX: 6 significant digits, powers of ten written out."""
    text = f"{v:.6g}"
    if "e" in text:
        mantissa, exponent = text.split("e")
        power = f"10^{{{int(exponent)}}}"
        return power if mantissa == "1" else rf"{mantissa} \times {power}"
    return text.replace("inf", r"\infty").replace("nan", r"\text{NaN}")


def _vec(v: tuple[float, float]) -> str:
    return rf"\begin{{pmatrix}}{_num(v[0])} \\ {_num(v[1])}\end{{pmatrix}}"


def _name(name: str) -> str:
    """A torch name as LaTeX text (``max_iter`` -> ``\\text{max\\_iter}``)."""
    return r"\text{" + name.replace("_", r"\_") + "}"


def _value(value: Plain) -> str:
    """A state or hyperparameter value in LaTeX."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return _name(str(value).lower() if value is not None else "none")
    if isinstance(value, int | float):
        return _num(float(value)) if isinstance(value, float) else str(value)
    if len(value) == 2 and all(isinstance(v, float | int) for v in value):
        return _vec(value)  # type: ignore[arg-type]
    return _name(f"{len(value)} entries")


def hparam_lines(opt: OptimizerConfig, groups: dict[str, Plain]) -> list[str]:
    """This step's hyperparameters (``param_groups[0]``, a schedule included), each
    as ``symbol = value`` with the rule's own symbol, else torch's name."""
    spec = opt.spec
    lines = []
    for hp in spec.hparams:
        value = groups.get(hp.name, opt.kwargs.get(hp.name))
        if hp.kind == "pair" and isinstance(value, tuple):
            for i, element in enumerate(value):
                name = f"{hp.name}[{i}]"
                lines.append(f"{spec.symbol(name) or _name(name)} = {_value(element)}")
        elif hp.kind in ("int", "float"):
            lines.append(f"{spec.symbol(hp.name) or _name(hp.name)} = {_value(value)}")
        elif value:  # a flag that is on, or a choice that is set
            lines.append(f"{_name(hp.name)} = {_value(value)}")
    return lines


def state_lines(opt: OptimizerConfig, snap: StepSnapshot) -> list[str]:
    """Every entry of ``optimizer.state[p]``: its value before step t and after it, each
    labelled with the rule's symbol (``m_{t-1} = ...``, ``m_t = ...``)."""
    spec = opt.spec
    lines = []
    for key in dict.fromkeys([*snap.state_before, *snap.state_after]):
        symbol = spec.state_symbol(key)
        after = symbol.after if symbol and symbol.after else rf"{_name(key)}_{{\text{{after}}}}"
        before = symbol.before if symbol and symbol.before else rf"{_name(key)}_{{\text{{before}}}}"
        missing = r"\text{(not in the state)}"
        was = (
            f"{before} = {_value(snap.state_before[key])}" if key in snap.state_before else missing
        )
        now = f"{after} = {_value(snap.state_after[key])}" if key in snap.state_after else missing
        lines.append(rf"{was} &\to& {now}")
    return lines


def numbers_latex(opt: OptimizerConfig, snap: StepSnapshot) -> str:
    """This step's numbers in the rule's own symbols, as one aligned LaTeX block."""
    lines = [f"{line} &&" for line in hparam_lines(opt, snap.groups)]
    lines.append(rf"\theta_{{t-1}} = {_vec(snap.point)} &\to& \theta_t = {_vec(snap.new_point)}")
    points = sequence_points(snap)
    if points:  # Schedule-Free: θ is x, optimizer.eval()'s point; the gradient is taken at y
        lines.append(rf"x_{{t-1}} = \theta_{{t-1}},\ y_{{t-1}} = {_vec(points['y'])} &&")
    gradient = rf"g_t = {_vec(snap.g_t)}"
    if snap.g_t != snap.grad:
        gradient += r" = -\nabla f(\theta_{t-1})\ (\text{maximize})"
    if snap.groups.get("weight_decay"):
        gradient += r"\ (\text{before the weight-decay term})"
    lines.append(gradient + " &&")
    lines += state_lines(opt, snap)
    return r"\begin{aligned}" + r" \\ ".join(f"&{line}" for line in lines) + r"\end{aligned}"


def _state_table(opt: OptimizerConfig, snap: StepSnapshot) -> pd.DataFrame:
    keys = list(dict.fromkeys([*snap.state_before, *snap.state_after]))
    meaning = [(s.meaning if (s := opt.spec.state_symbol(k)) else "") for k in keys]
    return pd.DataFrame(
        {
            "state": keys,
            "before step()": [_text(snap.state_before.get(k, "—")) for k in keys],
            "after step()": [_text(snap.state_after.get(k, "—")) for k in keys],
            "meaning": meaning,
        }
    )


def curvature_text(opt: OptimizerConfig, snap: StepSnapshot, curvature: Curvature) -> str:
    """The Hessian's eigenvalues at θ_{t−1}, and for torch's SGD where λ_max stands
    against the threshold of this step's own param group."""
    at = f"Hessian at $\\theta_{{{snap.step - 1}}}$"
    if not curvature.finite:
        return f"{at}: not finite here."
    low, high = curvature.eigenvalues
    text = f"{at}: **λ₁ = {low:.4g}**, **λ₂ = λ_max = {high:.4g}**"
    threshold = sgd_threshold(opt, snap.groups)
    if threshold is not None:
        side = "<" if high < threshold else ">" if high > threshold else "="
        text += f" {side} {sgd_threshold_formula(snap.groups)} = {threshold:.4g}"
    return text + " (the arrows u₁, u₂ on the contour)."


def sharpness_caption(paths: list[SharpnessPath]) -> str:
    """What the λ_max chart's lines mean, in two sentences (three with weight decay)."""
    text = (
        "On a quadratic, SGD with learning rate η (γ in torch's rule) multiplies the error "
        "along u₂ by 1 − ηλ_max: it zig-zags once λ_max > 1/η and diverges once "
        "λ_max > 2/η, and heavy-ball momentum μ moves that edge to (2 + 2μ)/η (Cohen et "
        "al., ICLR 2021). Only torch's SGD gets a threshold line (dotted): the other "
        "optimizers step differently, and this rule is not theirs."
    )
    if any(p.weight_decay > 0 for p in paths if p.threshold):
        text += (
            " With weight decay w, SGD descends f + w‖θ‖²/2, whose λ_max is the drawn one plus w."
        )
    return text


def _follow_slot(slot_ids: list[int]) -> None:
    """Points the picker at the slot it follows, by id, before it is drawn: a slot
    whose optimizer or values changed keeps its place in the picker."""
    state = st.session_state
    followed = state.get(FOLLOW_KEY)
    if followed in slot_ids:
        state[SLOT_KEY] = slot_ids.index(followed)
    elif state.get(SLOT_KEY, 0) >= len(slot_ids):
        state[SLOT_KEY] = 0


def _remember_slot(slot_ids: list[int]) -> None:
    state = st.session_state
    state[FOLLOW_KEY] = slot_ids[state[SLOT_KEY]]


def _sequences_and_traces(
    opt: OptimizerConfig, snaps: list[StepSnapshot], snap: StepSnapshot, index: int
) -> None:
    """Schedule-Free's three points at this step, and the spec's traces (Prodigy's d)."""
    points = sequence_points(snap)
    if points:
        rows = {name: f"({_text(v[0])}, {_text(v[1])})" for name, v in points.items()}
        st.markdown(
            f"Three sequences: **x** = {rows['x']} is `optimizer.eval()`'s point, drawn on "
            f"the path; **y** = {rows['y']} (◇) is where the gradient is taken, the "
            f"parameters while training; **z** = {rows.get('z', '—')} (□) is the base "
            "sequence, in the state."
        )
    for key, label in opt.spec.traces:
        show_chart(
            trace_figure(snaps, key, label, index, snap.step),
            f"inspector-{key}",
            key=f"inspector_trace_{key}",
        )


def inspector_section(cfg: SurfaceRunConfig, trajectories: list[Trajectory]) -> None:
    """The inspector under its heading, built only while its expander is open: its
    contour, tables and typeset rule cost a first visit over a second of drawing,
    for a section below the fold. Streamlit's own lazy expander keeps it open across
    reruns once opened."""
    st.subheader("Step inspector")
    box = st.expander(
        "Inspect one step: its gradient, torch.optim's state, the update and the "
        "Hessian, with arrows on the contour",
        key=OPEN_KEY,
        on_change="rerun",
        icon=":material/search:",
    )
    if box.open:
        with box:
            _inspector(cfg, trajectories)


def _inspector(cfg: SurfaceRunConfig, trajectories: list[Trajectory]) -> None:
    """Pick a slot and a step; see its gradient, state, update and arrows on the contour."""
    labels = [tr.optimizer.label for tr in trajectories]
    state = st.session_state
    slot_ids = SLOTS.ids(state)
    if len(slot_ids) != len(labels):  # a config that did not come from the slots
        slot_ids = list(range(len(labels)))
    _follow_slot(slot_ids)
    c1, c2 = st.columns([1, 2])
    index = c1.selectbox(
        "Optimizer",
        range(len(labels)),
        format_func=labels.__getitem__,
        key=SLOT_KEY,
        persist_state="session",
        on_change=_remember_slot,
        args=(slot_ids,),
    )
    state[FOLLOW_KEY] = slot_ids[index]
    opt = cfg.optimizers[index]
    snaps = cached_record(cfg.select(index))
    if not snaps:
        st.info("This optimizer took no step (it diverged at the start).")
        return
    last = len(snaps)
    if not 1 <= state.get(STEP_KEY, 1) <= last:
        state[STEP_KEY] = min(max(state.get(STEP_KEY, 1), 1), last)
    if last == 1:
        c2.caption("One step only (it diverged after it).")
        t = 1
    else:
        t = c2.slider(
            "Step t",
            1,
            last,
            key=STEP_KEY,
            persist_state="session",
            help="Step t takes θ_{t−1} to θ_t; t is torch's own step counter, from 1.",
        )
    snap = snaps[t - 1]
    curvature = curvature_at(cfg.resolved_surface, snap.point)
    left, right = columns([3, 2], gap="medium")
    with left:
        scale = st.segmented_control(
            "Arrow lengths",
            (OWN_SCALE, ONE_SCALE),
            default=OWN_SCALE,
            key=SCALE_KEY,
            help="Each its own scale: every arrow is stretched to a visible length (its "
            "factor is in the legend), so a tiny step still shows its direction. One "
            "scale: lengths compare, and a short arrow may vanish.",
        )
        figure = inspector_plots.inspector_figure(
            cfg.resolved_surface,
            trajectories[index],
            index,
            snap.point,
            directions(snap),
            snap.evaluations,
            common_scale=scale == ONE_SCALE,
            curvature=curvature,
        )
        add_sequence_markers(figure, snap, index)
        show_chart(
            figure,
            f"{cfg.problem.surface}-inspector-step{t}",
            key="inspector_chart",
            presenter_height=PRESENTER_SQUARE_PX,
        )
    with right:
        st.markdown(f"**{opt.label}**, step t = {t}: $\\theta_{{{t - 1}}} \\to \\theta_{{{t}}}$")
        st.markdown(curvature_text(opt, snap, curvature))
        if len(snap.evaluations) > 1:
            st.caption(
                f"f was evaluated {len(snap.evaluations)} times in this step() (the rings on "
                "the contour, in order)."
            )
        _sequences_and_traces(opt, snaps, snap, index)
        st.caption("`optimizer.param_groups[0]`")
        groups = pd.DataFrame(
            {"option": list(snap.groups), "value": [_text(v) for v in snap.groups.values()]}
        )
        st.dataframe(groups, hide_index=True, width="stretch")
        st.caption("`optimizer.state[p]`")
        if snap.state_after:
            st.dataframe(_state_table(opt, snap), hide_index=True, width="stretch")
        else:
            st.write("Empty: this optimizer keeps nothing between steps.")
    paths = sharpness_paths(
        cfg.resolved_surface, trajectories, [cfg.plan(i) for i in range(len(trajectories))]
    )
    st.markdown("**λ_max along each path**, against SGD's stability threshold")
    show_chart(
        inspector_plots.sharpness_figure(paths, mark=(index, snap.step - 1)),
        f"{cfg.problem.surface}-sharpness",
        key="sharpness_chart",
    )
    st.caption(sharpness_caption(paths))
    rule, numbers = columns([3, 2], gap="medium")
    with rule:
        st.caption("The update rule, as torch implements it:")
        st.latex(opt.spec.rule)
    with numbers:
        st.caption("This step's numbers, in the rule's symbols (before → after step t):")
        st.latex(numbers_latex(opt, snap))
