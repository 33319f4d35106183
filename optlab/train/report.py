"""What a training comparison's records add up to, for the CLI, the page and JSON.

`RunLog` folds one optimizer's records into its history, evaluations and
summary numbers; `results_rows` is the results table both the CLI and the
CNN page show. The rest reads a finished `TrainingSession`: predictions and
confusion matrices on the test images, and what each optimizer's own
``state_dict()`` holds. Nothing here trains or draws.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from optlab.files import finite_or_none
from optlab.numbers import number_text
from optlab.optim.split import SplitOptimizer
from optlab.train.run import (
    DIVERGED,
    IMAGES_PER_S,
    AppliedChange,
    EvalRecord,
    TrainingSession,
    TrainRecord,
    TrainSlot,
)


@dataclass
class RunLog:
    """One optimizer's records, folded as they arrive.

    Attributes:
        slot: The optimizer (with its classifier lr multiple and scheduler).
        status: ``running``, ``done`` or ``diverged``.
        batch_size: Images per step.
        history: One JSON-ready dict per training step.
        evals: One JSON-ready dict per test-set evaluation.
        momenta: ``{"step", "momenta"}`` per training step of an optimizer with a
            momentum or β₁ (`optlab.train.run.momentum_of`), per param group.
        live: The changes made to this optimizer while it trained, as applied.
        features_added_at: The first step (1-based) whose update included the
            features of a slot that froze them (`optlab.train.freeze`); None
            before (or without) the add.
        seconds: This optimizer's own compute time: the sum of its steps' seconds.
        timed: How many of its steps were timed.
    """

    slot: TrainSlot
    status: str
    batch_size: int = 1
    history: list[dict[str, Any]] = field(default_factory=list)
    evals: list[dict[str, Any]] = field(default_factory=list)
    momenta: list[dict[str, Any]] = field(default_factory=list)
    live: list[AppliedChange] = field(default_factory=list)
    smooth_loss: float = math.nan
    train_loss: float = math.nan
    diverged_at: int | None = None
    features_added_at: int | None = None
    seconds: float = 0.0
    timed: int = 0

    def add(self, record: TrainRecord | EvalRecord) -> None:
        """Folds in one of this optimizer's records."""
        if isinstance(record, EvalRecord):
            self.evals.append(
                {
                    "step": record.step,
                    "test_loss": finite_or_none(record.test_loss),
                    "test_acc": record.test_acc,
                }
            )
            return
        self.status = record.status
        if record.status == DIVERGED:
            self.diverged_at = record.step
        else:
            self.smooth_loss = record.smooth_loss
            self.train_loss = record.train_loss
        if math.isfinite(record.step_s) and record.step_s > 0:
            self.timed += 1
            self.seconds += record.step_s
        if record.momenta:
            momenta = [finite_or_none(m) for m in record.momenta]
            self.momenta.append({"step": record.step, "momenta": momenta})
        lrs = [finite_or_none(v) for v in record.lrs]  # None: a group not added yet
        if self.slot.freeze is not None and self.features_added_at is None and lrs[0] is not None:
            self.features_added_at = record.step
        self.history.append(
            {
                "step": record.step,
                "epoch": record.epoch,
                "train_loss": finite_or_none(record.train_loss),
                "smooth_loss": finite_or_none(record.smooth_loss),
                "train_acc": record.train_acc,
                "lr": next((v for v in lrs if v is not None), None),
                "lrs": lrs,
                "grad_norm": finite_or_none(record.grad_norm),
                "update_ratio": finite_or_none(record.update_ratio),
            }
        )

    @property
    def label(self) -> str:
        """The optimizer's name in legends and tables, with the values its live
        changes set (`TrainSlot.label_after`)."""
        return self.slot.label_after(self.live)

    @property
    def final_test_acc(self) -> float | None:
        """Accuracy at the latest evaluation."""
        return self.evals[-1]["test_acc"] if self.evals else None

    @property
    def final_test_loss(self) -> float | None:
        """Test loss at the latest evaluation."""
        return self.evals[-1]["test_loss"] if self.evals else None

    @property
    def best_test_acc(self) -> float | None:
        """Best accuracy of any evaluation."""
        return max(e["test_acc"] for e in self.evals) if self.evals else None

    @property
    def step_ms(self) -> float | None:
        """This optimizer's mean compute time per step, in milliseconds (its forward,
        backward and ``step()`` alone: a cost, not the run's images/s)."""
        return 1000 * self.seconds / self.timed if self.timed else None

    def status_text(self) -> str:
        """The status in words (with the step of a divergence)."""
        if self.status == DIVERGED and self.diverged_at is not None:
            return f"diverged at step {self.diverged_at}"
        return self.status

    def to_dict(self) -> dict[str, Any]:
        """The run's JSON form (``runs[i]`` of ``optlab train --out``)."""
        opt = self.slot.optimizer
        return {
            "optimizer": opt.key,
            "label": self.label,
            "hparams": {k: list(v) if isinstance(v, tuple) else v for k, v in opt.values},
            "classifier_lr_mult": self.slot.classifier_lr_mult,
            "scheduler": self.slot.scheduler.to_text(),
            # The freeze as the CLI takes it and the step the features joined; only
            # for a frozen slot, so the output of runs without one stays as it was.
            **(
                {"freeze": self.slot.freeze.to_text(), "features_added_at": self.features_added_at}
                if self.slot.freeze is not None
                else {}
            ),
            "status": self.status,
            "diverged_at": self.diverged_at,
            "history": self.history,
            "evals": self.evals,
            "final_test_acc": self.final_test_acc,
            "best_test_acc": self.best_test_acc,
            "seconds": self.seconds if self.timed else None,
        }


def new_logs(session: TrainingSession) -> list[RunLog]:
    """One empty log per optimizer of ``session``, with its current status."""
    cfg = session.cfg
    return [
        RunLog(slot, status, cfg.batch_size)
        for slot, status in zip(cfg.slots, session.status, strict=True)
    ]


def fold(logs: Sequence[RunLog], records: Iterable[TrainRecord | EvalRecord]) -> None:
    """Adds each record to its optimizer's log."""
    for record in records:
        logs[record.index].add(record)


def note_live_changes(logs: Sequence[RunLog], session: TrainingSession) -> None:
    """Gives each log the changes made to its optimizer while it trained (so far)."""
    applied = list(session.applied)
    for i, log in enumerate(logs):
        log.live = [a for a in applied if a.index == i]


def run_document(
    session: TrainingSession,
    logs: Sequence[RunLog],
    data_source: str,
    data_kind: str,
    resumed_from: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The run as JSON-ready data (the CLI's ``--out`` and the page's download)."""
    return {
        "config": session.cfg.to_dict(),
        "torch_version": torch.__version__,
        "device": str(session.device),
        "data_source": data_source,
        "data_kind": data_kind,
        "resumed_from": resumed_from,
        "images_per_s": finite_or_none(session.images_per_s),
        "images_per_s_means": IMAGES_PER_S,
        "live_changes": [
            {
                "before_step": a.step + 1,
                "optimizer": a.index,
                "change": a.change.describe().split(", ", 1)[1],
                "groups": list(a.groups),
                "values": list(a.values),
            }
            for a in session.applied
        ],
        "runs": [
            {
                **log.to_dict(),
                **(
                    {"sharpness": [r.to_dict() for r in records]}
                    if session.cfg.sharpness_every is not None
                    else {}
                ),
            }
            for log, records in zip(logs, session.sharpness, strict=True)
        ],
    }


def short_names(slots: Sequence[TrainSlot]) -> list[str]:
    """Optimizer names for narrow places, numbered where two are alike."""
    names = [slot.optimizer.spec.label for slot in slots]
    return [f"{n} #{i + 1}" if names.count(n) > 1 else n for i, n in enumerate(names)]


def results_rows(logs: Sequence[RunLog]) -> list[dict[str, Any]]:
    """The results table's numbers: one row per optimizer (None where nothing is known
    yet; `results_cells` writes them for people)."""
    return [
        {
            "optimizer": log.label,
            "final_test_acc": log.final_test_acc,
            "best_test_acc": log.best_test_acc,
            "test_loss": log.final_test_loss,
            "train_loss": finite_or_none(log.smooth_loss) if log.history else None,
            "step_ms": log.step_ms,
            "status": log.status_text(),
        }
        for log in logs
    ]


#: The results table's columns, as both the page and the CLI head them.
RESULT_HEADERS = {
    "optimizer": "optimizer",
    "final_test_acc": "final test acc",
    "best_test_acc": "best test acc",
    "test_loss": "test loss",
    "train_loss": "train loss (EMA)",
    "step_ms": "ms/step",
    "status": "status",
}
#: What each column means, for the page's column help and the README.
RESULT_HELP = {
    "final_test_acc": "Accuracy on the test images at the latest evaluation. After "
    "Stop the run is evaluated once more, and the confusion matrix shows that same "
    "evaluation.",
    "best_test_acc": "The best accuracy of any evaluation so far.",
    "test_loss": "Mean cross-entropy on the test images at the latest evaluation.",
    "train_loss": "The training loss smoothed over steps (exponential moving "
    "average, weight 0.1 on the newest batch).",
    "step_ms": "This optimizer's own compute time per step, in milliseconds "
    "(forward, backward and step(), averaged): what it costs next to the others. "
    "The run's speed is its images/s, shown with the progress.",
}


def percent_text(value: float | None, missing: str) -> str:
    """An accuracy as a table writes it (``54.3%``), or what its absence means."""
    return missing if value is None else f"{value:.1%}"


def _ms_text(ms: float | None) -> str:
    if ms is None:
        return "—"
    return number_text(round(ms)) if ms >= 10 else number_text(ms, digits=2)


def results_cells(logs: Sequence[RunLog]) -> list[dict[str, str]]:
    """`results_rows` written for people, as the page and the CLI show them.

    Numbers go through `optlab.numbers.number_text` (a diverged loss reads
    ``2.105e+11``), and a missing one says why (``not tested yet``, ``not finite``).
    """
    cells = []
    for log, row in zip(logs, results_rows(logs), strict=True):
        final = percent_text(row["final_test_acc"], "not tested yet")
        if row["test_loss"] is None:
            test_loss = "not finite" if log.evals else "not tested yet"
        else:
            test_loss = number_text(row["test_loss"])
        cells.append(
            {
                "optimizer": row["optimizer"],
                "final_test_acc": final,
                "best_test_acc": percent_text(row["best_test_acc"], "not tested yet"),
                "test_loss": test_loss,
                "train_loss": number_text(row["train_loss"]),
                "step_ms": _ms_text(row["step_ms"]),
                "status": row["status"],
            }
        )
    return cells


def speed_text(images_per_s: float | None) -> str:
    """The run's images/s (`optlab.train.run.IMAGES_PER_S`) as every place writes it."""
    if images_per_s is None:
        return "— images/s"
    return f"{number_text(round(images_per_s))} images/s"


# --- a finished (or paused) session's models ---------------------------------------------


def confusion_matrix(labels: torch.Tensor, predictions: torch.Tensor, n_classes: int) -> np.ndarray:
    """Counts ``[true, predicted]`` (rows: the true class)."""
    flat = labels.to(torch.int64) * n_classes + predictions.to(torch.int64)
    counts = torch.bincount(flat, minlength=n_classes * n_classes)
    return counts.reshape(n_classes, n_classes).numpy()


def prediction_examples(
    images: torch.Tensor,
    labels: torch.Tensor,
    predictions: torch.Tensor,
    classes: Sequence[str],
    count: int = 24,
    scale: int = 3,
) -> list[tuple[np.ndarray, str, bool]]:
    """The first ``count`` test images, enlarged, with ``true → predicted`` captions.

    Returns:
        ``(HWC uint8 image, caption, correct)`` per image; the image is
        ``scale`` times larger (nearest neighbour, so pixels stay crisp).
    """
    out = []
    shown = zip(images[:count], labels[:count], predictions[:count], strict=True)
    for image, label, pred in shown:
        pixels = image.permute(1, 2, 0).numpy()
        big = pixels.repeat(scale, axis=0).repeat(scale, axis=1)
        true, guess = classes[int(label)], classes[int(pred)]
        ok = int(label) == int(pred)
        out.append((big, f"{'✓' if ok else '✗'} {true}" + ("" if ok else f" → {guess}"), ok))
    return out


def _param_names(model: nn.Module) -> dict[int, str]:
    return {id(p): name for name, p in model.named_parameters()}


def _value_text(value: Any) -> str:
    if isinstance(value, tuple | list):
        return "(" + ", ".join(_value_text(v) for v in value) + ")"
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def param_group_rows(optimizer: torch.optim.Optimizer) -> list[dict[str, Any]]:
    """``optimizer.param_groups`` as rows: each group's options, its parameters counted.

    For Muon with AdamW (`SplitOptimizer`) each row also names the optimizer
    that owns the group.
    """
    rows = []
    for i, group in enumerate(optimizer.param_groups):
        row: dict[str, Any] = {"group": str(group.get("name", i))}
        if isinstance(optimizer, SplitOptimizer):
            row["optimizer"] = type(optimizer.owner(group)).__name__
        row["params"] = f"{len(group['params'])} tensors"
        for key, value in group.items():
            if key not in ("params", "name"):
                row[key] = _value_text(value)
        rows.append(row)
    return rows


def state_rows(optimizer: torch.optim.Optimizer, model: nn.Module) -> list[dict[str, Any]]:
    """What ``optimizer.state`` holds: per parameter and state key, shape and norm.

    Tensors get their shape and L2 norm; a one-element tensor (``step``) or a
    plain number its value.
    """
    names = _param_names(model)
    rows = []
    for group in optimizer.param_groups:
        for p in group["params"]:
            for key, value in optimizer.state.get(p, {}).items():
                row = {"parameter": names.get(id(p), "?"), "state": key}
                if isinstance(value, torch.Tensor) and value.numel() > 1:
                    row["shape"] = "×".join(map(str, value.shape))
                    row["value"] = f"‖·‖ = {torch.linalg.vector_norm(value.float()).item():.4g}"
                elif isinstance(value, torch.Tensor):
                    row["shape"] = "scalar"
                    row["value"] = _value_text(value.item())
                else:
                    row["shape"] = type(value).__name__
                    row["value"] = _value_text(value)
                rows.append(row)
    return rows
