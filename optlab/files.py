"""Files and the numbers in them: atomic writes, and JSON-safe floats."""

from __future__ import annotations

import math
import os
import tempfile
from pathlib import Path


def finite_or_none(value: float) -> float | None:
    """``value``, or None (JSON null) when it is NaN or infinite."""
    return value if math.isfinite(value) else None


def write_atomic(path: str | os.PathLike[str], text: str | bytes) -> None:
    """Writes ``text`` (or bytes) to ``path`` via a temporary file and a rename.

    A reader never sees a half-written file, and a failed write leaves the
    old file in place.
    """
    target = Path(path)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        if isinstance(text, bytes):
            with os.fdopen(fd, "wb") as f:
                f.write(text)
        else:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(text)
        # mkstemp creates the file private (0600); give it the mode the file
        # had, or the usual one for a new file.
        mode = target.stat().st_mode & 0o777 if target.exists() else 0o644
        os.chmod(tmp, mode)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
