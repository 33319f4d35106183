"""Trains K copies of a CNN side by side, fairly: a config in, records out.

Every optimizer trains its own copy of the model; all copies start from the
same weights (built from the config's seed), see the same batches in the same
order (one batch tensor per step, shared) and get the same step budget. Each
step is the textbook ``zero_grad(); loss = f(model(x)); loss.backward();
optimizer.step(); scheduler.step()`` (``step(closure)`` for L-BFGS), done for
every copy before the next batch is drawn.

`TrainingSession.run` is the generator the CLI and pages consume;
`TrainingSession.state_dict` captures everything needed to resume (weights,
optimizer and scheduler state, the data order's RNG state, history), so that
N steps, a save, a load in a new process and N more steps equal 2N straight.

A slot may train its classifier alone for its first steps and then add the
features with ``optimizer.add_param_group`` (`optlab.train.freeze`); its
records keep the (features, classifier) order, NaN for a group not added yet.

Snapshots and sharpness (`optlab.train.observers`) are taken between steps,
outside the clock of `images_per_s`, and kept in the state dict.
The configs it runs live in `optlab.train.config` (and are importable from here).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, replace

import torch
from torch import nn

from optlab.optim.plans import Change
from optlab.optim.protocol import backward, evaluation_point, seeded_step
from optlab.train.config import (
    DEVICES,
    MAX_BATCH,
    MAX_EPOCHS,
    MAX_SLOTS,
    MAX_STEPS,
    AppliedChange,
    TrainRunConfig,
    TrainSlot,
)
from optlab.train.data import LoadedData
from optlab.train.data.batches import CIFAR10_MEAN, CIFAR10_STD, augment, normalise
from optlab.train.freeze import add_features
from optlab.train.models import FEATURES, build_model
from optlab.train.observers import RunObservers
from optlab.train.optimizers import slot_optimizer
from optlab.train.records import EvalRecord, TrainRecord, by_group, data_digest, momentum_of
from optlab.train.sharpness import SharpnessRecord
from optlab.train.snapshots import Snapshots

__all__ = [
    "DEVICES",
    "DIVERGED",
    "DONE",
    "EVAL_CHUNK",
    "IMAGES_PER_S",
    "MAX_BATCH",
    "MAX_EPOCHS",
    "MAX_SLOTS",
    "MAX_STEPS",
    "RUNNING",
    "AppliedChange",
    "EvalRecord",
    "TrainRecord",
    "TrainRunConfig",
    "TrainSlot",
    "TrainingSession",
    "momentum_of",
    "resolve_device",
    "run_training",
    "steps_per_epoch",
]

EVAL_CHUNK = 500
#: Weight of the newest loss in the smoothed training loss.
SMOOTHING = 0.1
RUNNING, DONE, DIVERGED = "running", "done", "diverged"
#: What "images/s" means on every page, table, report and CLI line of the CNN lab.
IMAGES_PER_S = (
    "training images per second of training: steps × batch size ÷ the wall-clock "
    "seconds of those steps (every optimizer's forward, backward and step, and the "
    "test evaluations), counted from this run's start or resume"
)


def resolve_device(name: str) -> torch.device:
    """``auto`` picks CUDA, then MPS, then CPU; a named device must exist.

    Raises:
        ValueError: a named accelerator that this machine does not have.
    """
    cuda, mps = torch.cuda.is_available(), torch.backends.mps.is_available()
    if name == "auto":
        return torch.device("cuda" if cuda else "mps" if mps else "cpu")
    if (name == "cuda" and not cuda) or (name == "mps" and not mps):
        raise ValueError(f"device: {name} is not available on this machine")
    return torch.device(name)


def steps_per_epoch(cfg: TrainRunConfig, n_train: int) -> int:
    """Full batches per pass over the training images."""
    per_epoch = n_train // cfg.batch_size
    if per_epoch < 1:
        raise ValueError(f"batch_size: {cfg.batch_size} is larger than the {n_train} images")
    return per_epoch


class TrainingSession:
    """The state of one comparison; `run` trains it and yields records.

    Args:
        cfg: The comparison.
        data: The images (read only: batches are copies).
    """

    def __init__(self, cfg: TrainRunConfig, data: LoadedData) -> None:
        self.cfg = cfg
        self.device = resolve_device(cfg.device)
        self.train_images = data.train.images[: cfg.train_limit]
        self.train_labels = data.train.labels[: cfg.train_limit]
        self.test_images = data.test.images[: cfg.test_limit]
        self.test_labels = data.test.labels[: cfg.test_limit]
        self.per_epoch = steps_per_epoch(cfg, len(self.train_labels))
        self.total_steps = cfg.steps if cfg.steps is not None else cfg.epochs * self.per_epoch
        self.channels_last = cfg.channels_last and self.device.type == "cpu"
        cfg.check_freezes(self.per_epoch, self.total_steps)
        self.models: list[nn.Module] = [
            build_model(cfg.model, cfg.seed).to(self.device, memory_format=self._format(slot))
            for slot in cfg.slots
        ]
        self.optimizers = [
            self._optimizer(slot, m) for slot, m in zip(cfg.slots, self.models, strict=True)
        ]
        self.schedulers = [
            slot.scheduler.build(opt, self.total_steps)
            for slot, opt in zip(cfg.slots, self.optimizers, strict=True)
        ]
        self.order_gen = torch.Generator().manual_seed(cfg.seed)
        self.augment_gen = torch.Generator().manual_seed(cfg.seed + 1)
        self.step = 0
        self.status = [RUNNING] * len(cfg.slots)
        self.smooth = [0.0] * len(cfg.slots)
        self.order = torch.randperm(len(self.train_labels), generator=self.order_gen)
        self.loss_fn = nn.CrossEntropyLoss()
        #: Every record so far: checkpoints carry it, so a resumed run's
        #: history starts at step 1.
        self.history: list[TrainRecord | EvalRecord] = []
        self._digest: str | None = None
        self._requests: list[tuple[int, Change]] = []
        self._requests_lock = threading.Lock()
        #: Changes asked for while running, as applied, in order.
        self.applied: list[AppliedChange] = []
        #: Each model's test-set predictions at its latest evaluation: (step, classes).
        self._predictions: dict[int, tuple[int, torch.Tensor]] = {}
        #: Steps this session ran and their wall-clock seconds (`images_per_s`).
        self.timed_steps = 0
        self.timed_s = 0.0
        #: Weight snapshots and sharpness, between steps (`optlab.train.observers`).
        self.observers = RunObservers(
            cfg,
            self.models,
            self.train_images,
            self.train_labels,
            self.device,
            self.channels_last,
            self.total_steps,
        )

    @property
    def snapshots(self) -> Snapshots | None:
        """Every optimizer's flattened weights along its path (None: not kept)."""
        return self.observers.snapshots

    @property
    def sharpness(self) -> list[list[SharpnessRecord]]:
        """Per optimizer, its sharpness records so far (empty when not measured)."""
        return self.observers.sharpness

    @property
    def sharpness_s(self) -> float:
        """Seconds this session spent measuring sharpness (snapshots: ``observers.snapshot_s``)."""
        return self.observers.sharpness_s

    @property
    def train_s(self) -> float:
        """Wall-clock seconds of this session's training (steps and test evaluations),
        the time `images_per_s` divides by; snapshots and sharpness are not in it."""
        return self.timed_s

    @property
    def live_changes(self) -> list[tuple[int, int, Change]]:
        """Changes asked for while running: (steps done when applied, optimizer, change)."""
        return [(a.step, a.index, a.change) for a in self.applied]

    @property
    def images_per_s(self) -> float | None:
        """The run's speed, as every page, table and CLI line reports it (`IMAGES_PER_S`):
        steps × batch size ÷ the wall-clock seconds of those steps in this session;
        None before its first step."""
        if self.timed_steps == 0 or self.timed_s <= 0:
            return None
        return self.timed_steps * self.cfg.batch_size / self.timed_s

    def _format(self, slot: TrainSlot) -> torch.memory_format:
        # torch's L-BFGS flattens gradients with .view(-1), which channels-last
        # conv weights do not allow; its model keeps the default layout.
        if self.channels_last and not slot.optimizer.spec.uses_closure:
            return torch.channels_last
        return torch.contiguous_format

    def _optimizer(self, slot: TrainSlot, model: nn.Module) -> torch.optim.Optimizer:
        return slot_optimizer(slot, model)

    def _batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        position = self.step % self.per_epoch
        if position == 0 and self.step > 0:
            self.order = torch.randperm(len(self.train_labels), generator=self.order_gen)
        idx = self.order[position * self.cfg.batch_size : (position + 1) * self.cfg.batch_size]
        images = self.train_images[idx]
        if self.cfg.augment:
            images = augment(images, self.augment_gen)
        x = normalise(images.to(self.device), CIFAR10_MEAN, CIFAR10_STD)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x, self.train_labels[idx].to(self.device)

    def _train_one(self, i: int, x: torch.Tensor, y: torch.Tensor) -> TrainRecord:
        model, opt, sched = self.models[i], self.optimizers[i], self.schedulers[i]
        params = [p for p in model.parameters() if p.requires_grad]
        before = [p.detach().clone() for p in params]
        started = time.perf_counter()
        first: dict[str, torch.Tensor] = {}
        spec = self.cfg.slots[i].optimizer.spec

        def closure() -> torch.Tensor:
            opt.zero_grad()
            logits = model(x)
            loss = self.loss_fn(logits, y)
            backward(loss, params, spec)  # create_graph=True where asked (SophiaH)
            grad_norm = self._clip(params)
            if not first:  # the batch's loss and accuracy before any update
                first.update(loss=loss.detach(), logits=logits.detach(), grad_norm=grad_norm)
            return loss

        with seeded_step(spec, self.cfg.seed, i, self.step, device=self.device):
            if spec.uses_closure:
                opt.step(closure)
            else:
                closure()
                opt.step()
        # What this step used, before a scheduler moves it for the next one.
        lrs = by_group(opt, lambda g: float(g["lr"]))
        momenta = by_group(opt, momentum_of)
        if sched is not None and not self.cfg.slots[i].scheduler.spec.on_plateau:
            sched.step()
        elapsed = time.perf_counter() - started
        with torch.no_grad():
            delta = torch.linalg.vector_norm(
                torch.stack(
                    [torch.linalg.vector_norm(p - b) for p, b in zip(params, before, strict=True)]
                )
            )
            norm = torch.linalg.vector_norm(
                torch.stack([torch.linalg.vector_norm(b) for b in before])
            )
            correct = (first["logits"].argmax(1) == y).sum()
        loss = first["loss"].item()
        if math.isfinite(loss):
            beta = SMOOTHING
            self.smooth[i] = loss if self.step == 0 else (1 - beta) * self.smooth[i] + beta * loss
        return TrainRecord(
            step=self.step + 1,
            index=i,
            epoch=self.step // self.per_epoch,
            train_loss=loss,
            smooth_loss=self.smooth[i],
            train_acc=correct.item() / len(y),
            lrs=lrs,
            grad_norm=float(first["grad_norm"]),
            update_ratio=float(delta / norm) if norm > 0 else math.nan,
            step_s=elapsed,
            status=RUNNING,
            momenta=() if None in momenta else momenta,
        )

    def _clip(self, params: list[torch.Tensor]) -> torch.Tensor:
        """The gradient norm; gradients are clipped to it only when configured."""
        grads = [p.grad for p in params if p.grad is not None]
        norm = torch.nn.utils.get_total_norm(grads)
        if self.cfg.clip_grad_norm is not None:
            torch.nn.utils.clip_grads_with_norm_(params, self.cfg.clip_grad_norm, norm)
        return norm

    @torch.no_grad()
    def _test_logits(self, i: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Model ``i``'s test logits chunk by chunk, with the labels (Schedule-Free: at x)."""
        model, spec = self.models[i], self.cfg.slots[i].optimizer.spec
        model.eval()
        try:
            with evaluation_point(self.optimizers[i], list(model.parameters()), spec):
                for start in range(0, len(self.test_labels), EVAL_CHUNK):
                    images = self.test_images[start : start + EVAL_CHUNK].to(self.device)
                    x = normalise(images, CIFAR10_MEAN, CIFAR10_STD)
                    if self.channels_last:
                        x = x.contiguous(memory_format=torch.channels_last)
                    yield model(x), self.test_labels[start : start + EVAL_CHUNK].to(self.device)
        finally:
            model.train()

    def evaluate(self, i: int) -> EvalRecord:
        """Test loss and accuracy of model ``i`` on the test images.

        The predictions of the same pass are kept, so `predict` (the confusion
        matrix, the example images) shows exactly the evaluated weights.
        """
        total_loss, correct, predicted = 0.0, 0, []
        for logits, y in self._test_logits(i):
            total_loss += nn.functional.cross_entropy(logits, y, reduction="sum").item()
            classes = logits.argmax(1)
            correct += int((classes == y).sum())
            predicted.append(classes.cpu())
        self._predictions[i] = (self.step, torch.cat(predicted))
        n = len(self.test_labels)
        return EvalRecord(self.step, i, total_loss / n, correct / n)

    def predict(self, i: int) -> torch.Tensor:
        """Model ``i``'s predicted class for every test image (int64, on the CPU).

        Those of its evaluation at the current step when there was one (so they
        agree with that `EvalRecord` to the image), else a fresh pass.
        """
        step, predicted = self._predictions.get(i, (-1, None))
        if step == self.step and predicted is not None:
            return predicted
        return torch.cat([logits.argmax(1).cpu() for logits, _ in self._test_logits(i)])

    def evaluate_at_stop(self) -> list[EvalRecord]:
        """Evaluates, at the current step, every model that has not diverged and was
        not evaluated at this step yet; the records join the history.

        For a run stopped between evaluations: its final test accuracy and its
        confusion matrix then come from one pass over the same weights. It only
        measures: no scheduler steps on it (ReduceLROnPlateau steps on the
        scheduled evaluations only), so a resumed run trains as an unbroken one.
        """
        if self.step == 0:
            return []
        started = time.perf_counter()
        done = set()
        for record in reversed(self.history):
            if record.step < self.step:
                break
            if isinstance(record, EvalRecord):
                done.add(record.index)
        records = [
            self.evaluate(i)
            for i, status in enumerate(self.status)
            if status != DIVERGED and i not in done
        ]
        if records:
            self.history.extend(records)
            self.timed_s += time.perf_counter() - started
        return records

    @property
    def finished(self) -> bool:
        """Whether there is nothing left to train (the step budget is spent or
        every optimizer has diverged)."""
        return self.step >= self.total_steps or RUNNING not in self.status

    def run(self) -> Iterator[TrainRecord | EvalRecord]:
        """Trains every optimizer to the step budget, yielding records.

        The records of `run_step`, one step after another. The consumer may
        stop iterating and resume later; the session is whole (fit for a
        checkpoint) between two steps, which `run_step` gives a consumer
        that must stop or save only there.
        """
        while not self.finished:
            yield from self.run_step()

    def run_step(self) -> list[TrainRecord | EvalRecord]:
        """Trains one step, evaluating after it where due; returns its records.

        One `TrainRecord` per running optimizer; at evaluation points, one
        `EvalRecord` each. A non-finite training loss stops that optimizer
        with a ``diverged`` record; the others go on.
        """
        started = time.perf_counter()
        self._apply_changes()
        x, y = self._batch()
        records: list[TrainRecord | EvalRecord] = []
        for i, status in enumerate(self.status):
            if status != RUNNING:
                continue
            record = self._train_one(i, x, y)
            if not math.isfinite(record.train_loss):
                self.status[i] = DIVERGED
                record = replace(record, status=DIVERGED)
            records.append(record)
        self.step += 1
        if self.step == self.total_steps:
            self.status = [DONE if s == RUNNING else s for s in self.status]
            records = [replace(r, status=DONE) if r.status == RUNNING else r for r in records]
        if self.evaluates_after(self.step):
            for i, status in enumerate(self.status):
                if status == DIVERGED:
                    continue
                evaluation = self.evaluate(i)
                sched = self.schedulers[i]
                if sched is not None and self.cfg.slots[i].scheduler.spec.on_plateau:
                    sched.step(evaluation.test_loss)
                records.append(evaluation)
        self.history.extend(records)
        self.timed_steps += 1
        self.timed_s += time.perf_counter() - started
        self.observers.after_step(self.step, self.status, self.models, self.optimizers)
        return records

    def _apply_changes(self) -> None:
        """Edits ``param_groups`` before this step: the planned changes, then the
        ones asked for while running (`request_change`)."""
        with self._requests_lock:
            requested, self._requests = self._requests, []
        for i, slot in enumerate(self.cfg.slots):
            if self.status[i] != RUNNING:
                continue
            if slot.freeze is not None and self.freeze_step(i) == self.step:
                # Before the changes due now, so that they may edit the features group.
                add_features(
                    self.models[i], self.optimizers[i], self.schedulers[i], slot.classifier_lr_mult
                )
            for change in slot.changes:
                if change.step_of(self.per_epoch) == self.step:
                    change.apply(self.optimizers[i])
        for i, change in requested:
            if self.status[i] == RUNNING:
                optimizer = self.optimizers[i]
                change.apply(optimizer)
                # The groups that have the option (Muon's, not AdamW's, for momentum).
                groups = [g for g in optimizer.param_groups if change.name in g]
                self.applied.append(
                    AppliedChange(
                        self.step,
                        i,
                        change,
                        tuple(str(g.get("name", "all")) for g in groups),
                        tuple(float(g[change.name]) for g in groups),
                    )
                )

    def request_change(self, index: int, change: Change) -> None:
        """Asks for a change to optimizer ``index`` at the next step (thread-safe).

        The page's "change the lr of a running job": it takes effect before the
        next step, and `live_changes` records when it did.

        Raises:
            ValueError: as `check_change`.
        """
        self.check_change(index, change)
        with self._requests_lock:
            self._requests.append((index, change))

    def check_change(self, index: int, change: Change) -> None:
        """Checks that `request_change` can take ``change`` for optimizer ``index`` now.

        Raises:
            ValueError: no such optimizer, a value its optimizer rejects, or a change
                of its features group while they are frozen.
        """
        if not 0 <= index < len(self.cfg.slots):
            raise ValueError(f"optimizer: index {index} is not one of the {len(self.cfg.slots)}")
        optimizer = self.cfg.slots[index].optimizer
        change.check(optimizer.spec, grouped=not optimizer.spec.uses_closure)
        added = self.freeze_step(index)
        if change.group == FEATURES and added is not None and self.step < added:
            raise ValueError(
                f"change {change.to_text()}: the features are frozen until step {added:,} "
                "(they have no param group yet); change them once they are added"
            )

    def freeze_step(self, index: int) -> int | None:
        """The step (0-based) before which optimizer ``index`` gets the features, None
        when it trains them from the start."""
        freeze = self.cfg.slots[index].freeze
        return None if freeze is None else freeze.step_of(self.per_epoch)

    def evaluates_after(self, step: int) -> bool:
        """Whether the test set is evaluated after ``step`` (every ``eval_every``
        steps, at each epoch's end and at the last step)."""
        return (
            step == self.total_steps
            or step % self.cfg.eval_every == 0
            or step % self.per_epoch == 0
        )

    def data_digest(self) -> str:
        """A fingerprint of the training and test images this session uses.

        A checkpoint carries it, so resuming on other images (the synthetic
        set instead of CIFAR-10, say) is refused instead of silently mixed.
        """
        if self._digest is None:
            self._digest = data_digest(
                self.train_images, self.train_labels, self.test_images, self.test_labels
            )
        return self._digest

    def state_dict(self) -> dict:
        """Everything needed to continue this run exactly (for checkpoints)."""
        return {
            "config": self.cfg.to_dict(),
            "data_digest": self.data_digest(),
            "step": self.step,
            "status": list(self.status),
            "smooth": list(self.smooth),
            "order": self.order.clone(),
            "order_gen": self.order_gen.get_state(),
            "augment_gen": self.augment_gen.get_state(),
            "models": [m.state_dict() for m in self.models],
            "optimizers": [o.state_dict() for o in self.optimizers],
            "schedulers": [s.state_dict() if s is not None else None for s in self.schedulers],
            # Plain dicts: a weights-only load accepts them, not dataclasses.
            "history": [{"kind": type(r).__name__, **asdict(r)} for r in self.history],
            **self.observers.state(),
        }

    def load_state_dict(self, state: dict) -> None:
        """Restores a `state_dict` taken from a run with the same config.

        Raises:
            ValueError: the state belongs to a different comparison.
        """
        if state.get("config") != self.cfg.to_dict():
            raise ValueError("checkpoint: it was made for a different configuration")
        self.step = int(state["step"])
        self.status = list(state["status"])
        self.smooth = [float(v) for v in state["smooth"]]
        self.order = state["order"]
        self.order_gen.set_state(state["order_gen"])
        self.augment_gen.set_state(state["augment_gen"])
        for model, sd in zip(self.models, state["models"], strict=True):
            model.load_state_dict(sd)
        for i, (opt, sd) in enumerate(zip(self.optimizers, state["optimizers"], strict=True)):
            slot = self.cfg.slots[i]
            if slot.freeze is not None and len(sd["param_groups"]) > len(opt.param_groups):
                # Saved after the features were added: torch loads a state dict into
                # an optimizer with as many groups only (values and state come from sd).
                add_features(self.models[i], opt, self.schedulers[i], slot.classifier_lr_mult)
            opt.load_state_dict(sd)
        for sched, sd in zip(self.schedulers, state["schedulers"], strict=True):
            if sched is not None:
                sched.load_state_dict(sd)
        self.history = [_record(r, self.cfg.batch_size) for r in state["history"]]
        self.observers.load_state(state, self.step)


def _record(saved: dict, batch_size: int) -> TrainRecord | EvalRecord:
    """A history record from its checkpoint dict (older checkpoints stored each step's
    speed as ``images_per_s``, the batch over the step's seconds)."""
    kind, values = saved["kind"], {k: v for k, v in saved.items() if k != "kind"}
    if kind == "EvalRecord":
        return EvalRecord(**values)
    if kind != "TrainRecord":
        raise KeyError(f"history: unknown record kind {kind!r}")
    if "images_per_s" in values:
        speed = values.pop("images_per_s")
        values["step_s"] = batch_size / speed if speed > 0 else math.nan
    return TrainRecord(**values)


def run_training(cfg: TrainRunConfig, data: LoadedData) -> Iterator[TrainRecord | EvalRecord]:
    """Trains ``cfg``'s optimizers side by side on ``data``; yields records."""
    return TrainingSession(cfg, data).run()
