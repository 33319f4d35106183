"""Checkpoints of a training comparison: written atomically, loaded safely.

A checkpoint is `TrainingSession.state_dict()` saved with `torch.save`:
weights, optimizer and scheduler ``state_dict()``s, the data order's RNG
state and the config; with snapshots, ``snapshots`` = ``{"steps": [0, K, …],
"weights": [tensor(n_snapshots, n_params) per optimizer], "every": K now}``
(`optlab.train.snapshots`), and with sharpness, ``sharpness`` = per optimizer
a list of `SharpnessRecord` dicts. Loading uses ``torch.load(weights_only=True)`` (no
arbitrary pickled code), refuses files over a size cap, and checks the
contents before anything is restored.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from optlab.caps import CAPS
from optlab.files import write_atomic
from optlab.train.run import DONE, RUNNING, TrainingSession, TrainRunConfig

#: Larger files are refused before they are read (SeedNet with 4 optimizers
#: and Adam state is about 6 MB); a run's weight snapshots may add up to their
#: own budget (``CAPS.snapshot_mb``).
MAX_CHECKPOINT_BYTES = (CAPS.checkpoint_mb + CAPS.snapshot_mb) * 2**20
REQUIRED_KEYS = frozenset(
    {"config", "step", "status", "smooth", "order", "order_gen", "augment_gen", "models"}
    | {"optimizers", "schedulers", "history"}
)


class CheckpointError(ValueError):
    """A checkpoint could not be used; the message says why, in one line."""


def checkpoint_bytes(session: TrainingSession) -> bytes:
    """The session's state as the bytes of a checkpoint file."""
    buffer = io.BytesIO()
    torch.save(session.state_dict(), buffer)
    return buffer.getvalue()


def save_checkpoint(session: TrainingSession, path: str | os.PathLike[str]) -> None:
    """Writes the session's state to ``path`` atomically."""
    write_atomic(path, checkpoint_bytes(session))


def _too_large(size: int) -> CheckpointError:
    cap = MAX_CHECKPOINT_BYTES >> 20
    return CheckpointError(f"checkpoint: {size / 2**20:.0f} MiB is over the {cap} MiB cap")


def read_checkpoint(data: bytes) -> dict:
    """Parses checkpoint bytes (a file's or an upload's) and checks their shape.

    Raises:
        CheckpointError: too large, not a checkpoint, or missing parts.
    """
    if len(data) > MAX_CHECKPOINT_BYTES:
        raise _too_large(len(data))
    try:
        state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as err:
        # torch says "Unsupported global: ..." of an unknown class and "unsupported
        # GLOBAL ... whose module ... is blocked" of a function such as os.system.
        if "unsupported global" in str(err).lower():
            # The file holds Python objects beyond tensors and plain data,
            # which a checkpoint never needs (and which could run code).
            reason = "refused: it holds Python objects, not only tensors and plain data"
        else:
            reason = "not a readable OptLab checkpoint (damaged or another format)"
        raise CheckpointError(f"checkpoint: {reason}") from None
    if not isinstance(state, dict) or not REQUIRED_KEYS.issubset(state):
        raise CheckpointError("checkpoint: the file is not an OptLab training checkpoint")
    return state


@dataclass(frozen=True)
class CheckpointSummary:
    """A checked checkpoint with what a page shows of it before resuming.

    Attributes:
        state: The checkpoint itself (`TrainingSession.state_dict()`).
        config: The comparison it was saved from.
        step: The step it was saved at.
        n_images: The training images the run used.
    """

    state: dict
    config: TrainRunConfig
    step: int
    n_images: int

    @property
    def per_epoch(self) -> int:
        """Steps per epoch (the last partial batch is dropped)."""
        return self.n_images // self.config.batch_size

    @property
    def total_steps(self) -> int:
        """The saved run's own length."""
        cfg = self.config
        return cfg.steps if cfg.steps is not None else cfg.epochs * self.per_epoch


def summarize_checkpoint(data: bytes) -> CheckpointSummary:
    """Reads checkpoint bytes (an upload's) and the comparison they hold.

    Raises:
        CheckpointError: not a checkpoint, or damaged (bad step or data order).
        ValueError: the settings it holds are not valid (naming the first bad one).
    """
    state = read_checkpoint(data)
    config = TrainRunConfig.from_dict(state["config"])
    step, order = state["step"], state["order"]
    n_images = len(order) if hasattr(order, "__len__") else 0
    if not isinstance(step, int) or isinstance(step, bool) or n_images < config.batch_size:
        raise CheckpointError("checkpoint: damaged (bad step or data order)")
    return CheckpointSummary(state, config, step, n_images)


def load_checkpoint(path: str | os.PathLike[str]) -> dict:
    """Reads and checks a checkpoint file (the size is checked before reading).

    Raises:
        CheckpointError: missing, too large, unreadable or not a checkpoint.
    """
    target = Path(path)
    try:
        size = target.stat().st_size
        if size > MAX_CHECKPOINT_BYTES:
            raise _too_large(size)
        data = target.read_bytes()
    except OSError as err:
        raise CheckpointError(f"checkpoint: cannot read {str(target)!r} ({err.strerror})") from None
    return read_checkpoint(data)


def restore(session: TrainingSession, state: dict) -> None:
    """Loads a checked state into a session built from the same config.

    Raises:
        CheckpointError: the checkpoint belongs to another configuration or
            its tensors do not fit the model.
    """
    try:
        session.load_state_dict(state)
    except (ValueError, RuntimeError, KeyError, TypeError) as err:
        # One line, but with what torch lists under its first ("Error(s) in loading
        # state_dict for SeedNet:" alone would not say what does not fit).
        text = " ".join(str(err).split())
        raise CheckpointError(f"checkpoint: {text[:300]}") from None


def _length_text(session: TrainingSession) -> str:
    cfg = session.cfg
    if cfg.steps is not None:
        return f"steps {cfg.steps}"
    return f"epochs {cfg.epochs} ({session.total_steps} steps)"


def resume(session: TrainingSession, state: dict) -> None:
    """Restores a checked ``state`` into ``session``, which may run longer.

    The session's config must equal the checkpoint's except for its length
    (``steps``/``epochs``, counted from the start of the original run) and
    its device. The steps done so far and the history stay; optimizers that
    finished the original run go on to the new end.

    Raises:
        CheckpointError: the checkpoint is damaged or was trained on other data.
        ValueError: the new length is not longer, or a schedule laid out over
            the original run's length would have to change.
    """
    saved = state["config"]
    try:
        step, order = state["step"], state["order"]
        if isinstance(step, bool) or not isinstance(step, int) or step < 0:
            raise TypeError(f"step {step!r}")
        status = [RUNNING if s == DONE else s for s in state["status"]]
        n_saved = len(order)
        saved_steps, per_epoch = saved.get("steps"), session.per_epoch
        saved_total = saved_steps if saved_steps is not None else saved["epochs"] * per_epoch
        if isinstance(saved_total, bool) or not isinstance(saved_total, int):
            raise TypeError(f"length {saved_total!r}")
    except (KeyError, TypeError, ValueError, AttributeError) as err:
        raise CheckpointError(f"checkpoint: damaged ({err})") from None
    n_train = len(session.train_labels)
    if n_saved != n_train:
        raise CheckpointError(
            f"checkpoint: it was trained on {n_saved} images, this data has {n_train}"
        )
    digest = state.get("data_digest")
    if digest is not None and digest != session.data_digest():
        raise CheckpointError(
            "checkpoint: it was trained on other images than these (another data set, "
            "or another subset); pick the data it was trained on"
        )
    total = session.total_steps
    if total <= step:
        raise ValueError(
            f"{_length_text(session)}: the checkpoint is at step {step} already "
            "(steps and epochs count from the start of the original run)"
        )
    if total != saved_total:
        for slot in session.cfg.slots:
            if slot.scheduler.spec.spans_run:
                hint = f"; resume with {saved_total} steps" if step < saved_total else ""
                raise ValueError(
                    f"scheduler {slot.scheduler.key}: the checkpoint's schedule spans its "
                    f"{saved_total} steps, so the run cannot change length{hint}"
                )
    if RUNNING not in status:
        raise ValueError("checkpoint: every optimizer in it diverged; nothing to train")
    # The caller checked the config, with the length and device left free.
    restore(session, {**state, "config": session.cfg.to_dict(), "status": status})
