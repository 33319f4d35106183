"""A study's folder: its config, one JSON per finished trial, and the summary.

::

    DIR/study.json          the study's settings and its data's source
    DIR/trials/<id>.json    one finished trial each, written atomically
    DIR/summary.json        the study's JSON (rewritten as trials finish)

A trial's file appears only once it has finished, in one rename, so an
interrupted study (Ctrl-C, a killed process, a server restart) loses at most
the trials that were running; ``--resume`` reruns exactly those.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from optlab.files import write_atomic
from optlab.study.config import StudyConfig

CONFIG, TRIALS, SUMMARY = "study.json", "trials", "summary.json"


class StudyFolderError(ValueError):
    """The folder cannot hold or resume this study (the message says why)."""


class StudyFolder:
    """The folder at ``path`` (created when a study starts in it)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    @property
    def exists(self) -> bool:
        """Whether a study was started here."""
        return (self.path / CONFIG).is_file()

    def start(self, cfg: StudyConfig, data: dict[str, Any]) -> None:
        """Writes the study's settings into a new (or empty) folder.

        Raises:
            StudyFolderError: if the folder already holds a study or other files.
        """
        if self.exists:
            raise StudyFolderError(
                f"--dir {self.path}: it holds a study already; add --resume to continue it, "
                "or choose another folder"
            )
        if self.path.exists() and (not self.path.is_dir() or any(self.path.iterdir())):
            raise StudyFolderError(f"--dir {self.path}: not an empty folder")
        (self.path / TRIALS).mkdir(parents=True, exist_ok=True)
        doc = {"study": cfg.to_dict(), "data": data}
        write_atomic(self.path / CONFIG, json.dumps(doc, indent=1, allow_nan=False))

    def read(self) -> tuple[StudyConfig, dict[str, Any]]:
        """The study's settings and data description, for ``--resume``.

        Raises:
            StudyFolderError: if there is no readable study here.
        """
        if not self.exists:
            raise StudyFolderError(f"--resume: {self.path} holds no study ({CONFIG} is missing)")
        try:
            doc = json.loads((self.path / CONFIG).read_text())
            return StudyConfig.from_dict(doc["study"]), dict(doc["data"])
        except (OSError, KeyError, TypeError, ValueError) as err:
            raise StudyFolderError(
                f"--resume: {self.path / CONFIG} is not a study: {err}"
            ) from None

    def finished(self) -> dict[str, dict[str, Any]]:
        """The finished trials' results by trial id (files that cannot be read are
        left out, so those trials run again)."""
        out = {}
        for f in sorted((self.path / TRIALS).glob("*.json")):
            try:
                result = json.loads(f.read_text())
            except (OSError, ValueError):
                continue
            if isinstance(result, dict) and result.get("id") == f.stem:
                out[f.stem] = result
        return out

    def save_trial(self, result: dict[str, Any]) -> None:
        """Writes one finished trial (atomically)."""
        text = json.dumps(result, allow_nan=False)
        write_atomic(self.path / TRIALS / f"{result['id']}.json", text)

    def save_summary(self, doc: dict[str, Any]) -> None:
        """Writes the study's JSON (atomically)."""
        write_atomic(self.path / SUMMARY, json.dumps(doc, indent=1, allow_nan=False))
