"""Pieces the lessons share: losses, optimizer runs, and links to the other pages."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from optlab.lessons.lesson import OpenLink
from optlab.links import config_to_params, train_to_params
from optlab.optim.config import OptimizerConfig
from optlab.optim.plans import Plan
from optlab.script.lessons import FIRST_FILE, CnnData, LessonProgram, SurfaceLoss
from optlab.surface.problem import Problem, resolve_surface
from optlab.surface.run import SurfaceRunConfig
from optlab.train.config import TrainRunConfig, TrainSlot
from optlab.train.data import DATA_DIR_ENV, FOLDER_NAME, default_cache_dir, resolve_data_dir

#: The CNN lessons' images: the first this many of data_batch_1, in batches of BATCH.
CNN_IMAGES, CNN_BATCH = 128, 16
#: The model the CNN lessons train.
CNN_MODEL = "seednet"
#: The ill-conditioned bowl as the lessons use it: κ = 10, from (-1.8, 1.2).
BOWL = resolve_surface("quadratic", (("kappa", 10.0),))
ROSENBROCK = resolve_surface("rosenbrock")


def loss(surface: Any, scale: float = 1.0) -> SurfaceLoss:
    """A surface as a lesson's loss."""
    return SurfaceLoss(surface, scale)


def cnn_data(folder: str | None = None) -> CnnData:
    """The CNN lessons' model and images."""
    return CnnData(CNN_MODEL, CNN_IMAGES, folder)


def run(
    label: str, cls: type[torch.optim.Optimizer], zero_grad: bool = True, **kwargs: Any
) -> dict[str, Any]:
    """One optimizer run of a lesson loop: its label, class, arguments and zero_grad."""
    return {"label": label, "class": cls, "kwargs": kwargs, "zero_grad": zero_grad}


def start_of(surface: Any) -> list[float]:
    """The surface's default start, as the loops take it."""
    return [float(v) for v in surface.start]


def compare(
    title: str, surface: Any, runs: list[dict[str, Any]], steps: int, scale: float = 1.0
) -> LessonProgram:
    """The ``compare`` loop: each of ``runs`` (see `run`) for ``steps`` steps from the
    surface's default start, on the surface times ``scale``."""
    return LessonProgram(
        title,
        "compare",
        (("start", start_of(surface)), ("runs", runs), ("steps", steps)),
        loss(surface, scale),
    )


def playground(
    label: str,
    surface: Any,
    steps: int,
    optimizers: Sequence[tuple[str, Mapping[str, Any]]],
    plans: Sequence[str] = (),
) -> OpenLink:
    """ "Open in the playground": these optimizers (registry keys and values) on the surface.

    A link the playground cannot open (an optimizer this server has not
    registered, a step count past its cap) comes back without params, saying why.
    """
    try:
        cfg = SurfaceRunConfig(
            optimizers=tuple(OptimizerConfig.create(key, **dict(v)) for key, v in optimizers),
            problem=Problem(
                surface=surface.key,
                surface_values=surface.values,
                start=tuple(surface.start),
                steps=steps,
            ),
            plans=tuple(Plan.from_text(text) for text in plans),
        )
    except ValueError as err:
        return OpenLink(label, "", None, str(err))
    return OpenLink(label, "", config_to_params(cfg))


def cnn_lab(
    label: str, optimizers: Sequence[tuple[str, Mapping[str, Any]]], steps: int, batch: int
) -> OpenLink:
    """ "Open in the CNN lab": these optimizers on CIFAR-10 for ``steps`` steps."""
    try:
        cfg = TrainRunConfig(
            slots=tuple(TrainSlot(OptimizerConfig.create(key, **dict(v))) for key, v in optimizers),
            model=CNN_MODEL,
            batch_size=batch,
            steps=steps,
            epochs=None,
        )
    except ValueError as err:
        return OpenLink(label, "cnn-lab", None, str(err))
    return OpenLink(label, "cnn-lab", train_to_params(cfg, "cifar10"))


def cifar_folder() -> tuple[Path | None, str]:
    """The CIFAR-10 folder the CNN lessons read (``$OPTLAB_DATA_DIR``, else the cache),
    or None and why; only its ``data_batch_1`` is read, never downloaded."""
    named = os.environ.get(DATA_DIR_ENV)
    try:
        folder = resolve_data_dir(named) if named else default_cache_dir() / FOLDER_NAME
    except ValueError as err:  # DataError: a path the system cannot look at
        return None, str(err)
    if (folder / FIRST_FILE).is_file():
        return folder, ""
    return None, f"no {FIRST_FILE} in {folder} (set ${DATA_DIR_ENV} to a {FOLDER_NAME} folder)"
