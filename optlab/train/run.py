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
"""

from __future__ import annotations

import hashlib
import math
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field, fields, replace

import torch
from torch import nn

from optlab.caps import CAPS, MAX_EXACT_INT
from optlab.optim.config import OptimizerConfig
from optlab.optim.plans import Change, Plan
from optlab.optim.schedulers import SchedulerConfig
from optlab.train.data import LoadedData
from optlab.train.data.batches import CIFAR10_MEAN, CIFAR10_STD, augment, normalise
from optlab.train.models import build_model, get_model_spec, param_groups

MAX_SLOTS = CAPS.train_optimizers
MAX_STEPS = CAPS.train_steps
MAX_EPOCHS = CAPS.train_epochs
MAX_BATCH = CAPS.train_batch
EVAL_CHUNK = 500
#: Weight of the newest loss in the smoothed training loss.
SMOOTHING = 0.1
DEVICES = ("auto", "cpu", "cuda", "mps")
RUNNING, DONE, DIVERGED = "running", "done", "diverged"


@dataclass(frozen=True)
class TrainSlot:
    """One optimizer of a comparison, with its classifier lr multiple and scheduler."""

    optimizer: OptimizerConfig
    classifier_lr_mult: float = 1.0
    scheduler: SchedulerConfig = field(default_factory=SchedulerConfig)
    changes: tuple[Change, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.changes, tuple):
            object.__setattr__(self, "changes", tuple(self.changes))
        # Checked (and put in order of step) as a plan.
        object.__setattr__(self, "changes", Plan(self.scheduler, self.changes).changes)
        for change in self.changes:
            change.check(self.optimizer.spec, grouped=not self.optimizer.spec.uses_closure)
        # Before any data loads: "OneCycleLR cannot drive Adagrad: ...", not torch's words.
        self.scheduler.check(self.optimizer.spec)
        mult = self.classifier_lr_mult
        if not (isinstance(mult, int | float) and 0 < mult <= 1000 and math.isfinite(mult)):
            raise ValueError(f"classifier_lr_mult: must be in (0, 1000], got {mult!r}")
        if self.optimizer.spec.uses_closure and mult != 1:
            # torch's LBFGS refuses more than one param group.
            raise ValueError(f"classifier_lr_mult: {self.optimizer.spec.label} takes one lr only")

    @property
    def label(self) -> str:
        """Legend label: the optimizer plus what differs from plain training."""
        extra = []
        if self.classifier_lr_mult != 1:
            extra.append(f"classifier lr ×{self.classifier_lr_mult:g}")
        if self.scheduler.key != "none":
            extra.append(self.scheduler.spec.label)
        if self.changes:
            extra.append(f"{len(self.changes)} change{'s' if len(self.changes) > 1 else ''}")
        return self.optimizer.label + (f" + {', '.join(extra)}" if extra else "")


@dataclass(frozen=True)
class TrainRunConfig:
    """Everything that determines a training comparison.

    Attributes:
        slots: The optimizers compared (1 to `MAX_SLOTS`).
        model: A registered model key.
        batch_size: Images per step (the last partial batch of an epoch is
            dropped, so every step sees the same number of images).
        steps: Total optimizer steps; exactly one of ``steps``/``epochs``.
        epochs: Passes over the (limited) training set.
        train_limit: Use the first N training images (None: all).
        test_limit: Evaluate on the first M test images (None: all).
        augment: Random crop with padding 4 and horizontal flip per batch.
        clip_grad_norm: Clip each model's gradient norm to this (None: off).
        eval_every: Evaluate on the test images every this many steps (and
            at each epoch end and the last step).
        seed: Initial weights, data order and augmentation.
        device: ``auto`` (CUDA, then MPS, then CPU) or a named device.
        channels_last: Use the channels-last memory format on CPU.
    """

    slots: tuple[TrainSlot, ...]
    model: str = "seednet"
    batch_size: int = 64
    steps: int | None = None
    epochs: int | None = 1
    train_limit: int | None = 4000
    test_limit: int | None = 1000
    augment: bool = False
    clip_grad_norm: float | None = None
    eval_every: int = 50
    seed: int = 0
    device: str = "auto"
    channels_last: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.slots, tuple):
            object.__setattr__(self, "slots", tuple(self.slots))
        if not 1 <= len(self.slots) <= MAX_SLOTS:
            raise ValueError(f"slots: between 1 and {MAX_SLOTS} optimizers, got {len(self.slots)}")
        get_model_spec(self.model)
        _check_int("batch_size", self.batch_size, 1, MAX_BATCH)
        if (self.steps is None) == (self.epochs is None):
            raise ValueError("steps/epochs: give exactly one of them")
        if self.steps is not None:
            _check_int("steps", self.steps, 1, MAX_STEPS)
        if self.epochs is not None:
            _check_int("epochs", self.epochs, 1, MAX_EPOCHS)
        for name in ("train_limit", "test_limit"):
            if getattr(self, name) is not None:
                _check_int(name, getattr(self, name), 1, 10**7)
        _check_int("eval_every", self.eval_every, 1, MAX_STEPS)
        _check_int("seed", self.seed, 0, MAX_EXACT_INT)
        if self.clip_grad_norm is not None and not (
            isinstance(self.clip_grad_norm, int | float) and 0 < self.clip_grad_norm < math.inf
        ):
            raise ValueError(
                f"clip_grad_norm: must be a positive number, got {self.clip_grad_norm}"
            )
        if self.device not in DEVICES:
            raise ValueError(f"device: one of {', '.join(DEVICES)}, got {self.device!r}")

    def to_dict(self) -> dict:
        """A JSON-ready dict (optimizer and scheduler values as SPEC texts)."""
        out = asdict(self)
        out["slots"] = [
            {
                "optimizer": s.optimizer.to_text(),
                "classifier_lr_mult": s.classifier_lr_mult,
                "scheduler": s.scheduler.to_text(),
                **({"changes": [c.to_text() for c in s.changes]} if s.changes else {}),
            }
            for s in self.slots
        ]
        return out

    @classmethod
    def from_dict(cls, data: object) -> TrainRunConfig:
        """The inverse of `to_dict` (for checkpoints), validated like any config.

        Raises:
            ValueError: naming the first setting that is missing or bad.
        """
        if not isinstance(data, Mapping):
            raise ValueError("config: expected a mapping of settings")
        known = {f.name for f in fields(cls)}
        if unknown := sorted(str(k) for k in data if k not in known):
            raise ValueError(f"config: unknown setting {unknown[0]!r}")
        raw_slots = data.get("slots")
        if not isinstance(raw_slots, list | tuple) or not all(
            isinstance(s, Mapping) for s in raw_slots
        ):
            raise ValueError("slots: expected a list of optimizer settings")
        try:
            slots = tuple(
                TrainSlot(
                    OptimizerConfig.from_text(str(s.get("optimizer", ""))),
                    s.get("classifier_lr_mult", 1.0),
                    SchedulerConfig.from_text(str(s.get("scheduler", "none"))),
                    tuple(Change.from_text(str(c)) for c in s.get("changes", ())),
                )
                for s in raw_slots
            )
            return cls(slots=slots, **{k: v for k, v in data.items() if k != "slots"})
        except (TypeError, AttributeError) as err:
            raise ValueError(f"config: {err}") from None


def _check_int(name: str, value: object, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"{name}: expected a whole number in [{low}, {high}], got {value!r}")


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


@dataclass(frozen=True, slots=True)
class TrainRecord:
    """One optimizer's training step.

    ``train_loss`` and ``train_acc`` are measured on the step's batch before
    the update, ``lrs`` are the learning rates that update used (one per param
    group), and ``update_ratio`` is ‖Δθ‖ / ‖θ‖ of the update.
    """

    step: int
    index: int
    epoch: int
    train_loss: float
    smooth_loss: float
    train_acc: float
    lrs: tuple[float, ...]
    grad_norm: float
    update_ratio: float
    images_per_s: float
    status: str


@dataclass(frozen=True, slots=True)
class EvalRecord:
    """One optimizer's test-set evaluation after ``step`` steps."""

    step: int
    index: int
    test_loss: float
    test_acc: float


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
        #: Changes asked for while running: (step, optimizer index, change).
        self.live_changes: list[tuple[int, int, Change]] = []

    def _format(self, slot: TrainSlot) -> torch.memory_format:
        # torch's L-BFGS flattens gradients with .view(-1), which channels-last
        # conv weights do not allow; its model keeps the default layout.
        if self.channels_last and not slot.optimizer.spec.uses_closure:
            return torch.channels_last
        return torch.contiguous_format

    def _optimizer(self, slot: TrainSlot, model: nn.Module) -> torch.optim.Optimizer:
        if slot.optimizer.spec.uses_closure:
            return slot.optimizer.build(model.parameters())
        lr = slot.optimizer.kwargs.get("lr")
        return slot.optimizer.build(param_groups(model, lr, slot.classifier_lr_mult))

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

        def closure() -> torch.Tensor:
            opt.zero_grad()
            logits = model(x)
            loss = self.loss_fn(logits, y)
            loss.backward()
            grad_norm = self._clip(params)
            if not first:  # the batch's loss and accuracy before any update
                first.update(loss=loss.detach(), logits=logits.detach(), grad_norm=grad_norm)
            return loss

        if self.cfg.slots[i].optimizer.spec.uses_closure:
            opt.step(closure)
        else:
            closure()
            opt.step()
        lrs = tuple(float(g["lr"]) for g in opt.param_groups)  # the lr this step used
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
            images_per_s=len(y) / elapsed if elapsed > 0 else math.nan,
            status=RUNNING,
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
        """Model ``i``'s logits on the test images, chunk by chunk, with the labels."""
        model = self.models[i]
        model.eval()
        try:
            for start in range(0, len(self.test_labels), EVAL_CHUNK):
                images = self.test_images[start : start + EVAL_CHUNK].to(self.device)
                x = normalise(images, CIFAR10_MEAN, CIFAR10_STD)
                if self.channels_last:
                    x = x.contiguous(memory_format=torch.channels_last)
                yield model(x), self.test_labels[start : start + EVAL_CHUNK].to(self.device)
        finally:
            model.train()

    def evaluate(self, i: int) -> EvalRecord:
        """Test loss and accuracy of model ``i`` on the test images."""
        total_loss, correct = 0.0, 0
        for logits, y in self._test_logits(i):
            total_loss += nn.functional.cross_entropy(logits, y, reduction="sum").item()
            correct += int((logits.argmax(1) == y).sum())
        n = len(self.test_labels)
        return EvalRecord(self.step, i, total_loss / n, correct / n)

    def predict(self, i: int) -> torch.Tensor:
        """Model ``i``'s predicted class for every test image (int64, on the CPU)."""
        return torch.cat([logits.argmax(1).cpu() for logits, _ in self._test_logits(i)])

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
        return records

    def _apply_changes(self) -> None:
        """Edits ``param_groups`` before this step: the planned changes, then the
        ones asked for while running (`request_change`)."""
        with self._requests_lock:
            requested, self._requests = self._requests, []
        for i, slot in enumerate(self.cfg.slots):
            if self.status[i] != RUNNING:
                continue
            for change in slot.changes:
                if change.step_of(self.per_epoch) == self.step:
                    change.apply(self.optimizers[i])
        for i, change in requested:
            if self.status[i] == RUNNING:
                change.apply(self.optimizers[i])
                self.live_changes.append((self.step, i, change))

    def request_change(self, index: int, change: Change) -> None:
        """Asks for a change to optimizer ``index`` at the next step (thread-safe).

        The page's "change the lr of a running job": it takes effect before the
        next step, and `live_changes` records when it did.

        Raises:
            ValueError: no such optimizer, or a value its optimizer rejects.
        """
        if not 0 <= index < len(self.cfg.slots):
            raise ValueError(f"optimizer: index {index} is not one of the {len(self.cfg.slots)}")
        optimizer = self.cfg.slots[index].optimizer
        change.check(optimizer.spec, grouped=not optimizer.spec.uses_closure)
        with self._requests_lock:
            self._requests.append((index, change))

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
            digest = hashlib.sha256()
            for t in (self.train_images, self.train_labels, self.test_images, self.test_labels):
                digest.update(t.contiguous().numpy().tobytes())
            self._digest = digest.hexdigest()[:32]
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
        for opt, sd in zip(self.optimizers, state["optimizers"], strict=True):
            opt.load_state_dict(sd)
        for sched, sd in zip(self.schedulers, state["schedulers"], strict=True):
            if sched is not None:
                sched.load_state_dict(sd)
        kinds = {"TrainRecord": TrainRecord, "EvalRecord": EvalRecord}
        self.history = [
            kinds[r["kind"]](**{k: v for k, v in r.items() if k != "kind"})
            for r in state["history"]
        ]


def run_training(cfg: TrainRunConfig, data: LoadedData) -> Iterator[TrainRecord | EvalRecord]:
    """Trains ``cfg``'s optimizers side by side on ``data``; yields records."""
    return TrainingSession(cfg, data).run()
