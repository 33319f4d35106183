"""Finished comparisons kept for replay: a bounded store in the runs folder.

A workshop's attendees start the same default comparison again and again.
Once one run of it has finished, its final checkpoint (models, optimizer
states, the whole history, the weight snapshots) is kept here under the
comparison's share key (`optlab.train.sharing.share_key`), so an identical
comparison started later replays at once instead of training again.

The store lives in ``results/`` of the runs folder, so replicas of a server
that share the folder share it too. Its size is bounded in bytes
(``CAPS.result_store_mb``), not in entries: a checkpoint's size grows with
its weight snapshots, from a few hundred KB to tens of MB. Past the budget,
the results replayed least recently are deleted first. Files are written
atomically, so a reader never sees half of one, and a damaged or foreign
file is skipped (and deleted), never loaded into a run.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import threading
from pathlib import Path

from optlab.caps import CAPS
from optlab.files import write_atomic
from optlab.train.checkpoint import CheckpointError, read_checkpoint

log = logging.getLogger(__name__)

#: A share key: hexadecimal, as `share_key` makes it (also a safe file name).
_KEY = re.compile(r"^[0-9a-f]{16,64}$")
SUFFIX = ".pt"


class ResultStore:
    """Finished comparisons' checkpoints, by share key, within a byte budget.

    Args:
        root: The store's folder (``results`` in the runs folder), made when
            the first result is kept.
        budget_bytes: The most the kept checkpoints may take together.
    """

    def __init__(self, root: str | os.PathLike[str], budget_bytes: int | None = None) -> None:
        self.root = Path(root)
        self.budget_bytes = CAPS.result_store_mb << 20 if budget_bytes is None else budget_bytes
        self._lock = threading.Lock()

    def _path(self, key: str) -> Path:
        if not _KEY.match(key):
            raise ValueError(f"result: {key[:40]!r} is not a share key")
        return self.root / f"{key}{SUFFIX}"

    def get(self, key: str) -> dict | None:
        """The checked checkpoint kept under ``key``, or None (none kept, or a damaged
        one, which is deleted)."""
        path = self._path(key)
        try:
            data = path.read_bytes()
        except OSError:
            return None
        try:
            state = read_checkpoint(data)
        except CheckpointError as err:
            log.warning("optlab: deleting the unreadable result %s (%s)", path.name, err)
            path.unlink(missing_ok=True)
            return None
        # Replayed now: the last to be deleted when the store is over budget.
        with contextlib.suppress(OSError):
            os.utime(path)
        return state

    def put(self, key: str, data: bytes) -> bool:
        """Keeps a finished comparison's checkpoint bytes; returns whether it was kept
        (a checkpoint larger than the whole budget is not)."""
        path = self._path(key)
        if len(data) > self.budget_bytes:
            log.info("optlab: result %s (%d bytes) is over the store's budget", key, len(data))
            return False
        with self._lock:
            self.root.mkdir(parents=True, exist_ok=True)
            write_atomic(path, data)
            self._evict(keep=path)
        return True

    def _evict(self, keep: Path) -> None:
        """Deletes the least recently replayed results until the store fits its budget."""
        entries = []
        for path in self.root.glob(f"*{SUFFIX}"):
            try:
                stat = path.stat()
            except OSError:  # deleted meanwhile (another replica)
                continue
            entries.append((stat.st_mtime, stat.st_size, path))
        total = sum(size for _, size, _ in entries)
        for _, size, path in sorted(entries):
            if total <= self.budget_bytes:
                break
            if path == keep:
                continue
            path.unlink(missing_ok=True)
            total -= size

    def size_bytes(self) -> int:
        """What the kept results take now."""
        return sum(p.stat().st_size for p in self.root.glob(f"*{SUFFIX}") if p.is_file())

    def keys(self) -> list[str]:
        """The share keys kept."""
        return sorted(p.name.removesuffix(SUFFIX) for p in self.root.glob(f"*{SUFFIX}"))
