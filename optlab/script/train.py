"""Export a CNN run as a script: CIFAR-10, the model, the optimizers, the training loop.

The script is assembled from data and OptLab's own code: its settings, the
optimizers' setup functions (two named param groups, as in torch.optim's
per-parameter options example) and their schedulers are written from the
config; the batch reader (`optlab.train.data.batch_file`), the model and its
seeded initialisation (`optlab.train.models`) and the loop
(`optlab.script.runtime.train`) are embedded as they are.
"""

from __future__ import annotations

import os

import torch

from optlab import __version__
from optlab.script.plans import changes_literal, scheduler_source
from optlab.script.runtime import train as runtime
from optlab.script.source import (
    Embedded,
    call_source,
    checked,
    doc,
    literal,
    optimizer_class,
    paragraph,
    sorted_imports,
    string,
)
from optlab.train.data import DATA_DIR_ENV, FOLDER_NAME, default_cache_dir, resolve_data_dir
from optlab.train.data.batch_file import read_batch
from optlab.train.freeze import freeze_features
from optlab.train.models import CLASSIFIER, FEATURES, get_model_spec, init_parameters
from optlab.train.run import TrainRunConfig, TrainSlot

#: Data kinds a training script can reproduce (see `optlab.train.data.LoadedData.kind`).
CIFAR_KINDS = ("folder", "cache", "download")

_DOCSTRING = '''\
"""An OptLab CNN training run on CIFAR-10, exported as a standalone script.

{summary}
{labels}

It repeats the run with the textbook training loop, one optimizer after the
other, each from the same initial weights and on the same batches in the same
order, and prints each one's test loss and accuracy. Its last line is JSON:

    {{"runs": [{{"optimizer": ..., "final": null, "final_loss": <the last test loss>,
               "final_test_acc": ..., "status": "done" or "diverged", ...}}]}}

Run it with:

    python <this file> /path/to/{folder_name}

or set ${data_env} to that folder (or its parent). It needs only torch and the
CIFAR-10 batches in the python format (https://www.cs.toronto.edu/~kriz/cifar.html).
Options: --device auto|cpu|cuda|mps (default: the run's), --save PATH (writes
the trained weights, for torch.load). On the run's device, with torch
{torch_version}, the numbers equal OptLab's.
"""'''


def _setup_source(number: int, slot: TrainSlot, cls: str) -> str:
    """``def setup_N(model, total_steps)``: the slot's optimizer and scheduler."""
    opt = slot.optimizer
    lines = [
        f"def setup_{number}(model: nn.Module, total_steps: int):",
        f'    """{doc(slot.label)}."""',
    ]
    if opt.spec.uses_closure:
        # torch's L-BFGS takes one param group only.
        params = "model.parameters()"
    elif slot.freeze is not None:
        head = f'"name": {string(CLASSIFIER)}, "params": freeze_features(model)'
        lines += [
            f"    # Fine-tuning: {slot.freeze.describe()}, the classifier group alone",
            "    # until then; the loop then calls add_features (add_param_group).",
            "    groups = [",
        ]
        head += _classifier_lr(slot)
        lines += [f"        {{{head}}},", "    ]"]
        params = "groups"
    else:
        head = f'"name": {string(CLASSIFIER)}, "params": list(model.{CLASSIFIER}.parameters())'
        lines += [
            "    # Two param groups, as in torch.optim's per-parameter options example.",
            "    groups = [",
            f'        {{"name": {string(FEATURES)}, '
            f'"params": list(model.{FEATURES}.parameters())}},',
        ]
        if slot.classifier_lr_mult != 1:
            lines.append(
                f"        # The classifier's own lr: {opt.kwargs.get('lr')!r} x "
                f"{slot.classifier_lr_mult!r}."
            )
        head += _classifier_lr(slot)
        lines += [f"        {{{head}}},", "    ]"]
        params = "groups"
    for name in opt.kwargs:
        if not name.isidentifier():
            raise ValueError(f"export as script: {name!r} is not a keyword argument name")
    lines += [
        f"    optimizer = {cls}(",
        f"        {params},",
        *(f"        {k}={literal(v)}," for k, v in opt.kwargs.items()),
        "    )",
        f"    scheduler = {scheduler_source(slot.scheduler)}",
        "    return optimizer, scheduler",
    ]
    return "\n".join(lines) + "\n"


def _classifier_lr(slot: TrainSlot) -> str:
    """The classifier group's ``"lr"`` entry when it has its own lr, else ""."""
    if slot.classifier_lr_mult == 1:
        return ""
    lr = slot.optimizer.kwargs.get("lr")
    if isinstance(lr, bool) or not isinstance(lr, int | float):
        raise ValueError(f"export as script: {slot.optimizer.spec.label} has no lr to multiply")
    return f', "lr": {literal(lr * slot.classifier_lr_mult)}'


def _freeze_literal(slot: TrainSlot) -> str:
    """``(at, in_epochs)`` of the slot's freeze, or None."""
    return "None" if slot.freeze is None else literal((slot.freeze.at, slot.freeze.epoch))


def data_folder_hint(kind: str, data_dir: str | os.PathLike[str] | None = None) -> str | None:
    """The CIFAR-10 folder a run's data came from, as a script's default.

    Args:
        kind: The data's `optlab.train.data.LoadedData.kind`.
        data_dir: The folder (or its parent) the data was loaded from, if one
            was named; None falls back to ``$OPTLAB_DATA_DIR`` for ``folder``.

    Returns:
        An absolute ``cifar-10-batches-py`` path, or None when unknown.
    """
    if kind == "folder":
        named = data_dir or os.environ.get(DATA_DIR_ENV)
        return str(resolve_data_dir(named)) if named else None
    if kind in ("cache", "download"):
        return str(default_cache_dir() / FOLDER_NAME)
    return None


def _settings(cfg: TrainRunConfig, data_dir_hint: str | None) -> str:
    rows = [
        ("batch_size", cfg.batch_size, "images per step"),
        ("steps", cfg.steps, "optimizer steps in all (None: epochs passes over the images)"),
        ("epochs", cfg.epochs, ""),
        ("train_limit", cfg.train_limit, "train on the first N training images (None: all)"),
        ("test_limit", cfg.test_limit, "test on the first N test images (None: all)"),
        ("augment", cfg.augment, "random crop (padding 4) and horizontal flip per batch"),
        ("clip_grad_norm", cfg.clip_grad_norm, "clip the gradient norm to this (None: off)"),
        ("eval_every", cfg.eval_every, "test every this many steps, each epoch's end, the end"),
        ("seed", cfg.seed, "initial weights and data order (augmentation: seed + 1)"),
        ("device", cfg.device, "auto: CUDA, then MPS, then CPU"),
        ("channels_last", cfg.channels_last, "the channels-last memory format on the CPU"),
    ]
    lines = ["SETTINGS = {"]
    for name, value, note in rows:
        lines.append(f"    {string(name)}: {literal(value)},{f'  # {note}' if note else ''}")
    lines += [
        f"    # The run's {FOLDER_NAME} folder (an argument or ${DATA_DIR_ENV} comes first).",
        f'    "data_dir": {literal(data_dir_hint)},',
        f'    "data_env": {string(DATA_DIR_ENV)},',
        f'    "folder_name": {string(FOLDER_NAME)},',
        f'    "torch": {string(torch.__version__)},  # the torch that made this script',
        '    "description": "An OptLab CNN training run on CIFAR-10, exported as a script.",',
        "}",
    ]
    return "\n".join(lines)


def train_script(cfg: TrainRunConfig, data_dir_hint: str | None, *, data_kind: str) -> str:
    """A standalone script that repeats a CNN run and prints each optimizer's final test scores.

    Args:
        cfg: The run.
        data_dir_hint: The ``cifar-10-batches-py`` folder the run used (see
            `data_folder_hint`), the script's default; None for none (the
            script then needs the folder as an argument or in
            ``$OPTLAB_DATA_DIR``).
        data_kind: The data's `optlab.train.data.LoadedData.kind`: a script can
            only reproduce runs on CIFAR-10, not on the synthetic set.

    Returns:
        The script's source: it needs only torch and the CIFAR-10 python
        batches, and its last printed line is ``{"runs": [{"optimizer",
        "label", "status", "steps", "final": null, "final_loss" (the last
        test loss), "final_test_acc"}, ...]}``.

    Raises:
        ValueError: the run used the synthetic set, or something a script
            cannot rebuild (an optimizer that is not a ``torch.optim.Optimizer``
            class, a model whose source is not self-contained).
    """
    if data_kind == "synthetic":
        raise ValueError(
            "export as script: this run trained on the synthetic shapes set, which only "
            "OptLab can generate; a script can reproduce runs on CIFAR-10 only"
        )
    if data_kind not in CIFAR_KINDS:
        raise ValueError(f"export as script: unknown data kind {data_kind!r}")
    embedded = Embedded()
    embedded.add(read_batch)
    data_code = embedded.take()
    model_spec = get_model_spec(cfg.model)
    model_class, model_call = call_source(model_spec.factory)
    embedded.add(model_class, init_parameters)
    model_code = embedded.take(
        "def make_model() -> nn.Module:\n"
        f'    """{doc(model_spec.label)}, as the run built it (build_model seeds its weights)."""\n'
        f"    return {model_call}\n"
    )
    classes = [optimizer_class(slot.optimizer, embedded) for slot in cfg.slots]
    if any(slot.freeze is not None for slot in cfg.slots):
        embedded.add(freeze_features)
    setups = [
        _setup_source(i, slot, cls)
        for i, (slot, cls) in enumerate(zip(cfg.slots, classes, strict=True), 1)
    ]
    optimizer_code = embedded.take(*setups)
    runs = "\n".join(
        "    {\n"
        f'        "optimizer": {string(slot.optimizer.key)},\n'
        f'        "label": {string(slot.label)},\n'
        f'        "setup": setup_{i},\n'
        f'        "closure": {slot.optimizer.spec.uses_closure!r},  # step(closure), as L-BFGS\n'
        f'        "changes": {changes_literal(slot.changes)},  # see apply_changes\n'
        f'        "freeze": {_freeze_literal(slot)},  # (N, in epochs): see add_features\n'
        f'        "classifier_lr_mult": {literal(slot.classifier_lr_mult)},\n'
        "    },"
        for i, slot in enumerate(cfg.slots, 1)
    )
    embedded.add(runtime.main)
    loop = embedded.take()
    length = f"{cfg.steps} steps" if cfg.steps is not None else f"{cfg.epochs} epoch(s)"
    train_images = "all" if cfg.train_limit is None else f"the first {cfg.train_limit}"
    test_images = "all" if cfg.test_limit is None else f"the first {cfg.test_limit}"
    imports = embedded.imports | {"import torch", "from torch import nn"}
    imports |= {"from torch.optim import lr_scheduler"}
    header = _DOCSTRING.format(
        summary=paragraph(
            f'Made by OptLab {__version__} ("Export as script") with torch '
            f"{torch.__version__} from a run training {doc(model_spec.label)} for {length} "
            f"of {cfg.batch_size} images ({train_images} training and {test_images} test "
            "images) with these optimizers:"
        ),
        labels="\n".join(f"    - {doc(slot.label)}" for slot in cfg.slots),
        folder_name=FOLDER_NAME,
        data_env=DATA_DIR_ENV,
        torch_version=torch.__version__,
    )
    head = f"{header}\n\nfrom __future__ import annotations\n\n{sorted_imports(imports)}\n\n"
    parts = [
        head + _settings(cfg, data_dir_hint),
        "# --- CIFAR-10: the official python batches, read without numpy (OptLab's own code)",
        data_code,
        "# --- The model and its seeded initial weights (OptLab's own code)",
        model_code,
        "# --- The optimizers, each with its learning-rate scheduler\n#\n"
        "# A scheduler steps once per optimizer step (so T_max, step_size and total_iters\n"
        "# count steps), except ReduceLROnPlateau: it steps with each test loss.",
        optimizer_code,
        "RUNS = [\n" + runs + "\n]",
        "# --- Training: the textbook loop (OptLab's own code, from optlab.script.runtime)",
        loop,
        'if __name__ == "__main__":\n    main(RUNS, make_model, SETTINGS)',
    ]
    return checked("\n\n\n".join(part.strip("\n") for part in parts) + "\n")
