"""The CNN page's sidebar: data, model, optimizer slots with schedulers, run length.

The optimizer slots are the playground's own widgets (`slots_section`) under
the page's key prefix; each slot adds its classifier lr multiple and its
scheduler, whose knobs are drawn from their `HParam`s like an optimizer's.
"""

from __future__ import annotations

from collections.abc import Mapping

import streamlit as st

from optlab.caps import CIFAR_TEST_IMAGES, CIFAR_TRAIN_IMAGES
from optlab.links.cnn import CLIP_MIN, CLR_RANGE
from optlab.optim.registry import choice_spec
from optlab.train.data import LoadedData
from optlab.train.models import MODELS, get_model_spec
from optlab.train.optimizers import ownership_text
from optlab.train.run import MAX_BATCH, MAX_EPOCHS, MAX_STEPS, TrainSlot
from optlab.ui.cnn import jobs, settings
from optlab.ui.slots import choice_config
from optlab.ui.widgets import hparam_widget, plan_widgets, slots_section

SOURCE_LABELS = {settings.CIFAR: "CIFAR-10", settings.SYNTHETIC: "Synthetic shapes (offline)"}
LENGTH_LABELS = {"epochs": "epochs", "steps": "steps"}


def _download_button() -> None:
    st.caption(f"From {jobs.download_target()} (163 MB, checked against its md5).")
    if not st.button("Download CIFAR-10", icon=":material/download:", width="stretch"):
        return
    bar = st.progress(0.0, text="Connecting…")

    def report(done: int, total: int | None) -> None:
        text = f"Downloading CIFAR-10: {done / 2**20:.1f} MiB"
        if total:
            text += f" of {total / 2**20:.0f} MiB"
        bar.progress(min(done / total, 1.0) if total else 0.0, text=text)

    error = jobs.download_cifar(report)
    if error is None:
        st.rerun()
    bar.empty()
    st.error(f"Download failed: {error}")


def data_choice(state) -> dict[str, str]:
    """The page's data choice, as a run saves it: the source and the CIFAR-10 folder."""
    return {"source": state[settings.DATA], "dir": state[settings.DATA_DIR]}


def load_choice(
    choice: Mapping[str, str], limits: tuple[int | None, int | None]
) -> LoadedData | None:
    """The images of a data choice (a saved run's, say), or None when CIFAR-10 is
    not to be had; ``limits`` are the (train, test) subset sizes to cover."""
    if choice.get("source") == settings.SYNTHETIC:
        return jobs.synthetic_for(*limits)
    return jobs.cifar_data(choice.get("dir", ""))[0]


def chosen_data(state) -> LoadedData | None:
    """The images the page's data settings pick, or None when CIFAR-10 is not to be had."""
    return load_choice(
        data_choice(state), (state[settings.TRAIN_LIMIT], state[settings.TEST_LIMIT])
    )


def data_section() -> LoadedData | None:
    """The data source with its status; the images, or None when there are none."""
    state = st.session_state
    st.header("Data")
    source = st.radio(
        "Images",
        list(SOURCE_LABELS),
        key=settings.DATA,
        persist_state="session",
        format_func=SOURCE_LABELS.__getitem__,
        horizontal=True,
        label_visibility="collapsed",
    )
    if source == settings.SYNTHETIC:
        data = chosen_data(state)
        st.caption(
            "Ten classes of drawn shapes and colour patterns, generated from a seed: "
            "not CIFAR-10, but a small CNN can learn them, with no download."
        )
        return data
    st.text_input(
        "CIFAR-10 folder (optional)",
        key=settings.DATA_DIR,
        persist_state="session",
        max_chars=500,
        placeholder="the cache folder, or $OPTLAB_DATA_DIR",
        help="A folder holding cifar-10-batches-py (the official python version), or that "
        "folder itself. Empty: $OPTLAB_DATA_DIR, else the download cache.",
    )
    data, why = jobs.cifar_data(state[settings.DATA_DIR])
    if data is not None:
        st.success(
            f"{data.source}: {len(data.train.labels):,} train / "
            f"{len(data.test.labels):,} test images",
            icon=":material/check_circle:",
        )
        return data
    st.warning(f"No CIFAR-10 here: {why}", icon=":material/cloud_off:")
    blocked = jobs.no_download_why(state[settings.DATA_DIR])
    if blocked is None:
        _download_button()
    else:
        st.caption(blocked)
    st.caption("Or pick *Synthetic shapes* above to train without CIFAR-10.")
    return None


def model_section() -> None:
    """The model, with what is special about it."""
    st.header("Model")
    labels = {m.key: m.label for m in MODELS}
    key = st.selectbox(
        "Model",
        list(labels),
        key=settings.MODEL,
        persist_state="session",
        format_func=labels.__getitem__,
        label_visibility="collapsed",
    )
    for note in get_model_spec(key).notes:
        st.caption(note)


def _slot_extras(slot: int) -> None:
    """Under a slot's learning rate: the classifier's multiple and the scheduler."""
    state = st.session_state
    if choice_spec(state[settings.SLOTS.choice_key(slot)]).uses_closure:
        st.caption(
            "L-BFGS takes a single param group, so no classifier lr multiple and no "
            "freezing of the features."
        )
    else:
        st.number_input(
            "classifier lr ×",
            key=settings.clr_key(slot),
            persist_state="session",
            min_value=CLR_RANGE[0],
            max_value=CLR_RANGE[1],
            format="%g",
            step=0.5,
            help="The classifier (the two Linear layers) trains at lr times this; "
            "the convolutions at lr. Two param groups, as in torch.optim's "
            "per-parameter options.",
        )
        if not settings.takes_matrices_only(state, slot):
            # Not offered beside a companion (TrainSlot's freeze check says why).
            _freeze_widgets(slot)
    if settings.takes_matrices_only(state, slot):
        _rest_widgets(slot)
    plan_widgets(
        settings.SLOTS,
        slot,
        "torch.optim.lr_scheduler, stepped after every optimizer step "
        "(ReduceLROnPlateau: after every test evaluation, with the test loss).",
        "epoch3:classifier.lr*=0.1\n500:momentum=0.5",
        "Before step N (or epochN, at the start of that epoch), set (=) or multiply "
        "(*=) a param_groups option, for both groups or one (features. / classifier.).",
    )


def _freeze_widgets(slot: int) -> None:
    """Fine-tuning first: the features frozen for N steps or epochs, then added."""
    on, at, unit = settings.freeze_keys(slot)
    frozen = st.checkbox(
        "Freeze the features first",
        key=on,
        persist_state="session",
        help="Fine-tuning: the convolutions get requires_grad=False and the optimizer "
        "starts with the classifier group alone; after N steps (or epochs) the features "
        "are unfrozen and added with optimizer.add_param_group. They join the "
        "scheduler's schedule where it is (the classifier's lr ÷ its multiple), with "
        "fresh optimizer state (momentum, Adam's moments).",
    )
    if frozen:
        c1, c2 = st.columns(2)
        c1.number_input(
            "for",
            key=at,
            persist_state="session",
            min_value=1,
            max_value=MAX_STEPS,
            step=1,
            help="Must end before the run does: the features are added before step N + 1.",
        )
        c2.radio(
            "Unit",
            settings.FREEZE_UNITS,
            key=unit,
            persist_state="session",
            horizontal=True,
            label_visibility="hidden",
        )


def _rest_widgets(slot: int) -> None:
    """The companion's knobs (AdamW beside Muon, or the one a link named) and which
    weights each one trains."""
    state = st.session_state
    settings.ensure_rest(state, slot)
    companion = settings.rest_companion(state, slot)
    label = companion.spec.label
    st.markdown(f"**{label} for the other weights**")
    for hp, keys in settings.rest_knobs(slot, companion):
        hparam_widget(hp, keys, label=f"{label} {hp.name}")
    st.caption(ownership_text(state[settings.MODEL], rest=label))


def _add_slot() -> None:
    settings.add_train_slot(st.session_state, TrainSlot(choice_config("adam")))


def training_section() -> None:
    """Batch size, run length, subset sizes, augmentation, clipping, seed, device."""
    state = st.session_state
    st.header("Training")
    c1, c2 = st.columns(2)
    c1.number_input(
        "Batch size",
        key=settings.BATCH,
        persist_state="session",
        min_value=1,
        max_value=MAX_BATCH,
        step=16,
    )
    c2.radio(
        "Length in",
        list(LENGTH_LABELS),
        key=settings.LENGTH,
        persist_state="session",
        horizontal=True,
    )
    if state[settings.LENGTH] == "epochs":
        st.number_input(
            "Epochs",
            key=settings.EPOCHS,
            persist_state="session",
            min_value=1,
            max_value=MAX_EPOCHS,
            step=1,
        )
    else:
        st.number_input(
            "Steps",
            key=settings.STEPS,
            persist_state="session",
            min_value=1,
            max_value=MAX_STEPS,
            step=50,
        )
    c1, c2 = st.columns(2)
    c1.number_input(
        "Train images",
        key=settings.TRAIN_LIMIT,
        persist_state="session",
        min_value=1,
        max_value=CIFAR_TRAIN_IMAGES,
        step=1000,
        help="Use the first N training images (fewer if the data has fewer).",
    )
    c2.number_input(
        "Test images",
        key=settings.TEST_LIMIT,
        persist_state="session",
        min_value=1,
        max_value=CIFAR_TEST_IMAGES,
        step=500,
    )
    c1, c2 = st.columns(2)
    c1.number_input(
        "Test every",
        key=settings.EVAL_EVERY,
        persist_state="session",
        min_value=1,
        max_value=MAX_STEPS,
        step=10,
        help="Steps between test-set evaluations (also at each epoch's end).",
    )
    c2.number_input(
        "Seed",
        key=settings.SEED,
        persist_state="session",
        min_value=0,
        step=1,
        help="Initial weights and data order",
    )
    st.checkbox(
        "Augment (random crop + flip)",
        key=settings.AUGMENT,
        persist_state="session",
        help="Random 32×32 crops of the "
        "image padded by 4 pixels, and horizontal flips, drawn per batch.",
    )
    clip = st.checkbox("Clip the gradient norm", key=settings.CLIP_ON, persist_state="session")
    if clip:
        st.number_input(
            "max ‖g‖",
            key=settings.CLIP,
            persist_state="session",
            min_value=CLIP_MIN,
            format="%g",
            step=0.5,
        )
    st.selectbox(
        "Device",
        settings.devices(),
        key=settings.DEVICE,
        persist_state="session",
        help="auto: CUDA, then Apple MPS, then the CPU.",
    )


def sidebar_settings() -> LoadedData | None:
    """The whole settings sidebar; returns the chosen images (None if unavailable)."""
    data = data_section()
    model_section()
    st.header("Optimizers")
    slots_section(settings.SLOTS, _add_slot, extra=_slot_extras)
    training_section()
    return data
