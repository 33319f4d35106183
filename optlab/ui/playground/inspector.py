"""The playground's step inspector: one optimizer, one step, everything torch.optim holds.

The records come from `optlab.surface.inspector.record_steps` (a replay of that
optimizer with real torch.optim), cached per single-optimizer config like
the trajectories, so scrubbing the step slider costs nothing.
"""

from __future__ import annotations

import unicodedata

import pandas as pd
import streamlit as st

from optlab.charts import chart_config
from optlab.optim.config import OptimizerConfig
from optlab.surface import plots
from optlab.surface.inspector import Plain, StepSnapshot, directions, record_steps
from optlab.surface.run import SurfaceRunConfig
from optlab.surface.trajectory import Trajectory

SLOT_KEY, STEP_KEY = "inspect_slot", "inspect_step"


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
    return str(value)


def _symbol(opt: OptimizerConfig, name: str) -> str:
    """The LaTeX symbol a knob's help names (γ for lr), else its name."""
    help_text = opt.spec.hparam(name).help
    for ch in reversed(help_text):
        if "GREEK" in unicodedata.name(ch, ""):
            word = unicodedata.name(ch).split()[-1].lower()
            return f"\\{word}"
    return f"\\text{{{name}}}".replace("_", r"\_")


def _num(v: float) -> str:
    """A number in LaTeX: 6 significant digits, powers of ten written out."""
    text = f"{v:.6g}"
    if "e" in text:
        mantissa, exponent = text.split("e")
        power = f"10^{{{int(exponent)}}}"
        return power if mantissa == "1" else rf"{mantissa} \times {power}"
    return text


def _vec(v: tuple[float, float]) -> str:
    return rf"\begin{{pmatrix}}{_num(v[0])} \\ {_num(v[1])}\end{{pmatrix}}"


def _numbers(opt: OptimizerConfig, snap: StepSnapshot) -> str:
    """This step's numbers in the rule's own symbols, as one LaTeX line."""
    parts = []
    for hp in opt.spec.hparams:
        value = snap.groups.get(hp.name)
        if isinstance(value, float | int) and not isinstance(value, bool) and value != 0:
            parts.append(f"{_symbol(opt, hp.name)} = {_num(value)}")
    parts.append(f"g_t = {_vec(snap.grad)}")
    parts.append(rf"\theta_t = {_vec(snap.point)}")
    new = (snap.point[0] + snap.update[0], snap.point[1] + snap.update[1])
    parts.append(rf"\theta_{{t+1}} = {_vec(new)}")
    return r"\begin{aligned}" + r" \\ ".join(f"&{part}" for part in parts) + r"\end{aligned}"


def _state_table(snap: StepSnapshot) -> pd.DataFrame:
    keys = list(dict.fromkeys([*snap.state_before, *snap.state_after]))
    return pd.DataFrame(
        {
            "state": keys,
            "before step()": [_text(snap.state_before.get(k, "—")) for k in keys],
            "after step()": [_text(snap.state_after.get(k, "—")) for k in keys],
        }
    )


def inspector_section(cfg: SurfaceRunConfig, trajectories: list[Trajectory]) -> None:
    """Pick a slot and a step; see its gradient, state, update and arrows on the contour."""
    st.subheader("Step inspector")
    labels = [tr.optimizer.label for tr in trajectories]
    state = st.session_state
    if state.get(SLOT_KEY, 0) >= len(labels):
        state[SLOT_KEY] = 0
    c1, c2 = st.columns([1, 2])
    index = c1.selectbox(
        "Optimizer",
        range(len(labels)),
        format_func=labels.__getitem__,
        key=SLOT_KEY,
        persist_state="session",
    )
    opt = cfg.optimizers[index]
    snaps = cached_record(cfg.select(index))
    if not snaps:
        st.info("This optimizer took no step (it diverged at the start).")
        return
    last = len(snaps) - 1
    if state.get(STEP_KEY, 0) > last:
        state[STEP_KEY] = last
    if last == 0:
        c2.caption("One step only (it diverged after it).")
        t = 0
    else:
        t = c2.slider(
            "Step t",
            0,
            last,
            key=STEP_KEY,
            persist_state="session",
            help="The step from θ_t to θ_{t+1}.",
        )
    snap = snaps[t]
    left, right = st.columns([3, 2], gap="medium")
    with left:
        st.plotly_chart(
            plots.inspector_figure(
                cfg.resolved_surface,
                trajectories[index],
                index,
                snap.point,
                directions(snap),
                snap.evaluations,
            ),
            config=chart_config(f"{cfg.problem.surface}-inspector-step{t}"),
            key="inspector_chart",
        )
    with right:
        st.markdown(f"**{opt.label}**, step {t} → {t + 1}")
        if len(snap.evaluations) > 1:
            st.caption(
                f"f was evaluated {len(snap.evaluations)} times in this step() (the rings on "
                "the contour, in order)."
            )
        st.caption("`optimizer.param_groups[0]`")
        groups = pd.DataFrame(
            {"option": list(snap.groups), "value": [_text(v) for v in snap.groups.values()]}
        )
        st.dataframe(groups, hide_index=True, width="stretch")
        st.caption("`optimizer.state[p]`")
        if snap.state_after:
            st.dataframe(_state_table(snap), hide_index=True, width="stretch")
        else:
            st.write("Empty: this optimizer keeps nothing between steps.")
    rule, numbers = st.columns([3, 2], gap="medium")
    with rule:
        st.caption("The update rule, as torch implements it:")
        st.latex(opt.spec.rule)
    with numbers:
        st.caption("This step's numbers:")
        st.latex(_numbers(opt, snap))
