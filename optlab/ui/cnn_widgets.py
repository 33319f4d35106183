"""The CNN page's sidebar: data, model, optimizer slots with schedulers, run length.

The optimizer slots are the playground's own widgets (`slots_section`) under
the page's key prefix; each slot adds its classifier lr multiple and its
scheduler, whose knobs are drawn from their `HParam`s like an optimizer's.
"""

from __future__ import annotations

from collections.abc import Mapping

import streamlit as st

from optlab.data import LoadedData
from optlab.models import MODELS, get_model_spec
from optlab.train_run import MAX_BATCH, MAX_EPOCHS, MAX_STEPS, TrainSlot
from optlab.ui import cnn_state as C
from optlab.ui import training
from optlab.ui.slots import choice_config
from optlab.ui.widgets import scheduler_widgets, slots_section

SOURCE_LABELS = {C.CIFAR: "CIFAR-10", C.SYNTHETIC: "Synthetic shapes (offline)"}
LENGTH_LABELS = {"epochs": "epochs", "steps": "steps"}


def _download_button() -> None:
    st.caption(f"From {training.download_target()} (163 MB, checked against its md5).")
    if not st.button("Download CIFAR-10", icon=":material/download:", width="stretch"):
        return
    bar = st.progress(0.0, text="Connecting…")

    def report(done: int, total: int | None) -> None:
        text = f"Downloading CIFAR-10: {done / 2**20:.1f} MiB"
        if total:
            text += f" of {total / 2**20:.0f} MiB"
        bar.progress(min(done / total, 1.0) if total else 0.0, text=text)

    error = training.download_cifar(report)
    if error is None:
        st.rerun()
    bar.empty()
    st.error(f"Download failed: {error}")


def data_choice(state) -> dict[str, str]:
    """The page's data choice, as a run saves it: the source and the CIFAR-10 folder."""
    return {"source": state[C.DATA], "dir": state[C.DATA_DIR]}


def load_choice(
    choice: Mapping[str, str], limits: tuple[int | None, int | None]
) -> LoadedData | None:
    """The images of a data choice (a saved run's, say), or None when CIFAR-10 is
    not to be had; ``limits`` are the (train, test) subset sizes to cover."""
    if choice.get("source") == C.SYNTHETIC:
        return training.synthetic_for(*limits)
    return training.cifar_data(choice.get("dir", ""))[0]


def chosen_data(state) -> LoadedData | None:
    """The images the page's data settings pick, or None when CIFAR-10 is not to be had."""
    return load_choice(data_choice(state), (state[C.TRAIN_LIMIT], state[C.TEST_LIMIT]))


def data_section() -> LoadedData | None:
    """The data source with its status; the images, or None when there are none."""
    state = st.session_state
    st.header("Data")
    source = st.radio(
        "Images",
        list(SOURCE_LABELS),
        key=C.DATA,
        persist_state="session",
        format_func=SOURCE_LABELS.__getitem__,
        horizontal=True,
        label_visibility="collapsed",
    )
    if source == C.SYNTHETIC:
        data = chosen_data(state)
        st.caption(
            "Ten classes of drawn shapes and colour patterns, generated from a seed: "
            "not CIFAR-10, but a small CNN can learn them, with no download."
        )
        return data
    st.text_input(
        "CIFAR-10 folder (optional)",
        key=C.DATA_DIR,
        persist_state="session",
        max_chars=500,
        placeholder="the cache folder, or $OPTLAB_DATA_DIR",
        help="A folder holding cifar-10-batches-py (the official python version), or that "
        "folder itself. Empty: $OPTLAB_DATA_DIR, else the download cache.",
    )
    data, why = training.cifar_data(state[C.DATA_DIR])
    if data is not None:
        st.success(
            f"{data.source}: {len(data.train.labels):,} train / "
            f"{len(data.test.labels):,} test images",
            icon=":material/check_circle:",
        )
        return data
    st.warning(f"No CIFAR-10 here: {why}", icon=":material/cloud_off:")
    if training.can_download(state[C.DATA_DIR]):
        _download_button()
    st.caption("Or pick *Synthetic shapes* above to train without CIFAR-10.")
    return None


def model_section() -> None:
    """The model, with what is special about it."""
    st.header("Model")
    labels = {m.key: m.label for m in MODELS}
    key = st.selectbox(
        "Model",
        list(labels),
        key=C.MODEL,
        persist_state="session",
        format_func=labels.__getitem__,
        label_visibility="collapsed",
    )
    for note in get_model_spec(key).notes:
        st.caption(note)


def _slot_extras(slot: int) -> None:
    """Under a slot's learning rate: the classifier's multiple and the scheduler."""
    state = st.session_state
    if choice_config(state[C.SLOTS.choice_key(slot)]).spec.uses_closure:
        st.caption("L-BFGS takes a single param group, so no classifier lr multiple.")
    else:
        st.number_input(
            "classifier lr ×",
            key=C.clr_key(slot),
            persist_state="session",
            min_value=C.CLR_RANGE[0],
            max_value=C.CLR_RANGE[1],
            format="%g",
            step=0.5,
            help="The classifier (the two Linear layers) trains at lr times this; "
            "the convolutions at lr. Two param groups, as in torch.optim's "
            "per-parameter options.",
        )
    scheduler_widgets(
        C.SLOTS,
        slot,
        "torch.optim.lr_scheduler, stepped after every optimizer step "
        "(ReduceLROnPlateau: after every test evaluation, with the test loss).",
    )
    st.text_area(
        "Changes, one per line",
        key=C.SLOTS.changes_key(slot),
        persist_state="session",
        placeholder="epoch3:classifier.lr*=0.1\n500:momentum=0.5",
        height=80,
        help="Before step N (or epochN, at the start of that epoch), set (=) or multiply "
        "(*=) a param_groups option, for both groups or one (features. / classifier.).",
    )


def _add_slot() -> None:
    C.add_train_slot(st.session_state, TrainSlot(choice_config("adam")))


def training_section() -> None:
    """Batch size, run length, subset sizes, augmentation, clipping, seed, device."""
    state = st.session_state
    st.header("Training")
    c1, c2 = st.columns(2)
    c1.number_input(
        "Batch size",
        key=C.BATCH,
        persist_state="session",
        min_value=1,
        max_value=MAX_BATCH,
        step=16,
    )
    c2.radio(
        "Length in", list(LENGTH_LABELS), key=C.LENGTH, persist_state="session", horizontal=True
    )
    if state[C.LENGTH] == "epochs":
        st.number_input(
            "Epochs",
            key=C.EPOCHS,
            persist_state="session",
            min_value=1,
            max_value=MAX_EPOCHS,
            step=1,
        )
    else:
        st.number_input(
            "Steps", key=C.STEPS, persist_state="session", min_value=1, max_value=MAX_STEPS, step=50
        )
    c1, c2 = st.columns(2)
    c1.number_input(
        "Train images",
        key=C.TRAIN_LIMIT,
        persist_state="session",
        min_value=1,
        max_value=50_000,
        step=1000,
        help="Use the first N training images (fewer if the data has fewer).",
    )
    c2.number_input(
        "Test images",
        key=C.TEST_LIMIT,
        persist_state="session",
        min_value=1,
        max_value=10_000,
        step=500,
    )
    c1, c2 = st.columns(2)
    c1.number_input(
        "Test every",
        key=C.EVAL_EVERY,
        persist_state="session",
        min_value=1,
        max_value=MAX_STEPS,
        step=10,
        help="Steps between test-set evaluations (also at each epoch's end).",
    )
    c2.number_input(
        "Seed",
        key=C.SEED,
        persist_state="session",
        min_value=0,
        step=1,
        help="Initial weights and data order",
    )
    st.checkbox(
        "Augment (random crop + flip)",
        key=C.AUGMENT,
        persist_state="session",
        help="Random 32×32 crops of the "
        "image padded by 4 pixels, and horizontal flips, drawn per batch.",
    )
    clip = st.checkbox("Clip the gradient norm", key=C.CLIP_ON, persist_state="session")
    if clip:
        st.number_input(
            "max ‖g‖",
            key=C.CLIP,
            persist_state="session",
            min_value=C.CLIP_MIN,
            format="%g",
            step=0.5,
        )
    st.selectbox(
        "Device",
        C.devices(),
        key=C.DEVICE,
        persist_state="session",
        help="auto: CUDA, then Apple MPS, then the CPU.",
    )


def sidebar_settings() -> LoadedData | None:
    """The whole settings sidebar; returns the chosen images (None if unavailable)."""
    data = data_section()
    model_section()
    st.header("Optimizers")
    slots_section(C.SLOTS, _add_slot, extra=_slot_extras)
    training_section()
    return data
