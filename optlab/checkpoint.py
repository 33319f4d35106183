"""Checkpoints of a training comparison: written atomically, loaded safely.

A checkpoint is `TrainingSession.state_dict()` saved with `torch.save`:
weights, optimizer and scheduler ``state_dict()``s, the data order's RNG
state and the config. Loading uses ``torch.load(weights_only=True)`` (no
arbitrary pickled code), refuses files over a size cap, and checks the
contents before anything is restored.
"""

from __future__ import annotations

import io
import os
import pickle
import zipfile
from pathlib import Path

import torch

from optlab.export import write_atomic
from optlab.train_run import TrainingSession

#: Larger files are refused before they are read (SeedNet with 4 optimizers
#: and Adam state is about 6 MB).
MAX_CHECKPOINT_BYTES = 64 * 2**20
REQUIRED_KEYS = frozenset(
    {"config", "step", "status", "smooth", "order", "order_gen", "augment_gen", "models"}
    | {"optimizers", "schedulers", "history"}
)


class CheckpointError(ValueError):
    """A checkpoint could not be used; the message says why, in one line."""


def save_checkpoint(session: TrainingSession, path: str | os.PathLike[str]) -> None:
    """Writes the session's state to ``path`` atomically."""
    buffer = io.BytesIO()
    torch.save(session.state_dict(), buffer)
    write_atomic(path, buffer.getvalue())


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
    except (pickle.UnpicklingError, zipfile.BadZipFile, RuntimeError, EOFError, ValueError) as err:
        if "Unsupported global" in str(err):
            # The file holds Python objects beyond tensors and plain data,
            # which a checkpoint never needs (and which could run code).
            reason = "refused: it holds Python objects, not only tensors and plain data"
        else:
            reason = "not a readable OptLab checkpoint (damaged or another format)"
        raise CheckpointError(f"checkpoint: {reason}") from None
    if not isinstance(state, dict) or not REQUIRED_KEYS.issubset(state):
        raise CheckpointError("checkpoint: the file is not an OptLab training checkpoint")
    return state


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
        raise CheckpointError(f"checkpoint: {str(err).splitlines()[0][:200]}") from None
