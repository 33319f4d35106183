"""What a training comparison is: its optimizer slots and the run's settings.

`TrainSlot` is one optimizer of a comparison (with its classifier lr multiple,
scheduler and planned changes) and `TrainRunConfig` the whole comparison, both
frozen and validated on construction. `AppliedChange` is a change made to a
running optimizer, with the values it left in ``param_groups``, so a legend
can name what the optimizer trains with now (`TrainSlot.label_after`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields

from optlab.caps import CAPS, MAX_EXACT_INT
from optlab.optim.config import OptimizerConfig
from optlab.optim.plans import Change, Plan
from optlab.optim.schedulers import SchedulerConfig
from optlab.train.freeze import Freeze
from optlab.train.models import FEATURES, get_model_spec

MAX_SLOTS = CAPS.train_optimizers
MAX_STEPS = CAPS.train_steps
MAX_EPOCHS = CAPS.train_epochs
MAX_BATCH = CAPS.train_batch
DEVICES = ("auto", "cpu", "cuda", "mps")


@dataclass(frozen=True)
class TrainSlot:
    """One optimizer of a comparison, with its classifier lr multiple and scheduler.

    ``freeze`` (None: off) trains the classifier alone for its first steps (or
    epochs), then adds the features as a param group (`optlab.train.freeze`).
    """

    optimizer: OptimizerConfig
    classifier_lr_mult: float = 1.0
    scheduler: SchedulerConfig = field(default_factory=SchedulerConfig)
    changes: tuple[Change, ...] = ()
    freeze: Freeze | None = None

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
        if self.freeze is not None:
            self._check_freeze(self.freeze)

    def _check_freeze(self, freeze: Freeze) -> None:
        if not isinstance(freeze, Freeze):
            raise ValueError(f"freeze: expected a Freeze or None, got {freeze!r}")
        spec = self.optimizer.spec
        if spec.uses_closure:
            # LBFGS keeps param_groups[0]["params"] from its construction and refuses
            # a second group there: one added later would never be stepped.
            raise ValueError(
                f"freeze: {spec.label} optimizes one param group only (torch's LBFGS), "
                "so the features cannot be added mid-run; turn the freeze off"
            )
        for change in self.changes:
            same_unit = change.epoch == freeze.epoch
            if change.group == FEATURES and same_unit and change.at < freeze.at:
                raise ValueError(
                    f"change {change.to_text()}: the features are frozen until "
                    f"{freeze.to_text()} (they have no param group before), so change "
                    "them from then on"
                )

    @property
    def label(self) -> str:
        """Legend label: the optimizer plus what differs from plain training."""
        return self.label_after(())

    def label_after(self, applied: Sequence[AppliedChange]) -> str:
        """The legend label once ``applied`` (this slot's live changes, in order) took
        effect: each changed option shows the value it has had since its latest change.

        A live change is not part of the config (it was made by hand, mid-run), so
        `label` alone would keep naming the value the run started with. The values
        are the ones the change left in ``param_groups``, per group when they differ.
        """
        latest = {a.change.name: a for a in applied}
        spec, changed = self.optimizer.spec, self.optimizer.changed()
        parts = []
        for hp in spec.hparams:
            if hp.name in latest:
                now = latest[hp.name]
                if len(set(now.values)) == 1:
                    value = f"{hp.name}={hp.short(now.values[0])}"
                else:
                    value = ", ".join(
                        f"{group} {hp.name}={hp.short(v)}"
                        for group, v in zip(now.groups, now.values, strict=True)
                    )
                parts.append(f"{value} from step {now.step + 1}")
            elif hp.name in changed:
                v = changed[hp.name]
                parts.append(hp.name if v is True else f"{hp.name}={hp.short(v)}")
        extra = []
        if self.classifier_lr_mult != 1 and "lr" not in latest:
            extra.append(f"classifier lr ×{self.classifier_lr_mult:g}")
        if self.scheduler.key != "none":
            extra.append(self.scheduler.spec.label)
        if self.changes:
            extra.append(f"{len(self.changes)} change{'s' if len(self.changes) > 1 else ''}")
        if self.freeze is not None:
            extra.append(self.freeze.describe())
        text = f"{spec.label} ({', '.join(parts)})" if parts else spec.label
        return text + (f" + {', '.join(extra)}" if extra else "")


@dataclass(frozen=True, slots=True)
class AppliedChange:
    """A change asked for while the run trained, as it was applied.

    Attributes:
        step: Steps done when it applied (it applied before step ``step + 1``).
        index: The optimizer it changed.
        change: What was asked.
        groups: The optimizer's param group names (``features``, ``classifier``;
            ``all`` for a single unnamed group).
        values: The option's value in each of those groups right after the change
            (a factor multiplies whatever a scheduler or plan had set).
    """

    step: int
    index: int
    change: Change
    groups: tuple[str, ...]
    values: tuple[float, ...]


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
        snapshot_every: Keep every optimizer's flattened weights at steps 0, K,
            2K, … and the latest step (`optlab.train.snapshots`; None: off). Past
            ``CAPS.snapshot_mb`` every second one is dropped and K doubles.
        sharpness_every: Measure every optimizer's sharpness (the top eigenvalue
            of the training loss Hessian, `optlab.train.sharpness`) after every
            K-th step and the last one (None: off).
        sharpness_images: M, the first M training images (file order) the
            sharpness is measured on, at most ``CAPS.sharpness_images`` and the
            run's training images.
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
    snapshot_every: int | None = None
    sharpness_every: int | None = None
    sharpness_images: int = 256

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
        for name in ("snapshot_every", "sharpness_every"):
            if getattr(self, name) is not None:
                _check_int(name, getattr(self, name), 1, MAX_STEPS)
        _check_int("sharpness_images", self.sharpness_images, 1, CAPS.sharpness_images)
        if self.clip_grad_norm is not None and not (
            isinstance(self.clip_grad_norm, int | float) and 0 < self.clip_grad_norm < math.inf
        ):
            raise ValueError(
                f"clip_grad_norm: must be a positive number, got {self.clip_grad_norm}"
            )
        if self.device not in DEVICES:
            raise ValueError(f"device: one of {', '.join(DEVICES)}, got {self.device!r}")
        for slot in self.slots:
            self._check_freeze_length(slot.freeze)

    def _check_freeze_length(self, freeze: Freeze | None) -> None:
        """A freeze as long as the run (in the run's own unit) would never add the
        features; one in the other unit is checked once the steps per epoch are known
        (`optlab.train.run.TrainingSession`)."""
        if freeze is None:
            return
        length, unit = (self.epochs, "epochs") if freeze.epoch else (self.steps, "steps")
        if length is not None and freeze.at >= length:
            raise ValueError(
                f"freeze: {freeze.describe()} is not before the run's end ({length} {unit}): "
                "the features would never be added"
            )

    def check_freezes(self, per_epoch: int, total_steps: int) -> None:
        """Checks every slot's freeze against the run's length once the steps per epoch
        are known (a freeze in epochs of a run in steps, or the other way round).

        Raises:
            ValueError: a freeze that reaches the run's end (the features would never
                be added), or a planned change of the features group before they are.
        """
        for number, slot in enumerate(self.slots, 1):
            if slot.freeze is None:
                continue
            at = slot.freeze.step_of(per_epoch)
            if at >= total_steps:
                raise ValueError(
                    f"freeze: optimizer {number} ({slot.optimizer.spec.label}) has its "
                    f"{slot.freeze.describe()} (step {at:,}), not before the run's end at "
                    f"step {total_steps:,}: the features would never be added"
                )
            for change in slot.changes:
                if change.group == FEATURES and change.step_of(per_epoch) < at:
                    raise ValueError(
                        f"change {change.to_text()}: the features are frozen until step "
                        f"{at:,} (they have no param group before), so change them from then on"
                    )

    def to_dict(self) -> dict:
        """A JSON-ready dict (optimizer and scheduler values as SPEC texts)."""
        out = asdict(self)
        out["slots"] = [
            {
                "optimizer": s.optimizer.to_text(),
                "classifier_lr_mult": s.classifier_lr_mult,
                "scheduler": s.scheduler.to_text(),
                **({"changes": [c.to_text() for c in s.changes]} if s.changes else {}),
                # Only when set, so configs from before it existed read back equal.
                **({"freeze": s.freeze.to_text()} if s.freeze is not None else {}),
            }
            for s in self.slots
        ]
        # Left out at their defaults (off), so the configs of runs made before they
        # existed (checkpoints, links) read back equal.
        for name in _OPTIONAL:
            if out[name] == _DEFAULTS[name]:
                del out[name]
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
                    Freeze.from_text(str(s.get("freeze", "off"))),
                )
                for s in raw_slots
            )
            return cls(slots=slots, **{k: v for k, v in data.items() if k != "slots"})
        except (TypeError, AttributeError) as err:
            raise ValueError(f"config: {err}") from None


def _check_int(name: str, value: object, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"{name}: expected a whole number in [{low}, {high}], got {value!r}")


#: Settings `TrainRunConfig.to_dict` leaves out at their default.
_OPTIONAL = ("snapshot_every", "sharpness_every", "sharpness_images")
_DEFAULTS = {f.name: f.default for f in fields(TrainRunConfig) if f.name in _OPTIONAL}
