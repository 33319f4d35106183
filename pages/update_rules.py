"""Update rules: each optimizer's math as torch implements it."""

import pandas as pd
import streamlit as st

from optlab.optim.builtin import PRESETS
from optlab.optim.registry import class_path, optimizers, plugin_messages, preset_text

st.title("Update rules")
presets = ", ".join(f"**{p.label}** (`{preset_text(p)}`)" for p in PRESETS)
st.markdown(
    "Each rule is written the way `torch.optim` computes it. $\\gamma$ is the learning "
    "rate, $g_t$ the gradient at $\\theta_{t-1}$ (negated with `maximize=True`), "
    f"$\\lambda$ the weight decay; operations are elementwise. Presets: {presets}."
)
st.caption(
    "For the built-in optimizers, **allowed** is exactly what torch's constructor accepts "
    "(a test probes torch at every bound), narrowed only where this server caps the work "
    "of a run or OptLab needs it, which the column then says. Values torch accepts but "
    "that rarely make sense are not refused: the widgets and the CLI say what they do "
    "(**warned about**)."
)

if plugin_messages():
    with st.expander(
        f"Optimizer plugins and packs ({len(plugin_messages())})", icon=":material/extension:"
    ):
        st.caption(
            "Installed by whoever runs this server: plugins from `$OPTLAB_PLUGINS`, "
            "optimizer packs from `$OPTLAB_PACKS`."
        )
        for message in plugin_messages():
            st.markdown(f"- {message}")

chosen = st.pills("Jump to", [spec.label for spec in optimizers()], selection_mode="single")
for spec in optimizers():
    if chosen and spec.label != chosen:
        continue
    st.header(spec.label, anchor=spec.key)
    st.caption(f"`{class_path(spec)}` · CLI key `{spec.key}`")
    st.latex(spec.rule)
    rows = [
        {
            "hyperparameter": hp.name,
            "default": hp.format(hp.default),
            "allowed": hp.allowed_text(),
            "warned about": "; ".join(hp.caution_texts()) or "—",
            "meaning": hp.help,
        }
        for hp in spec.hparams
    ]
    st.table(pd.DataFrame(rows), hide_index=True)
    if spec.on_surface:
        st.markdown(f"**On a 2-D surface**\n\n{spec.on_surface}")
    if spec.notes:
        st.markdown(
            "**Where torch differs from the textbook**\n\n"
            + "\n".join(f"- {note}" for note in spec.notes)
        )
    if spec.paper:
        st.markdown(f"Reference: [{spec.paper.title}]({spec.paper.url})")
    st.divider()
