"""What a study is: one CNN setup, optimizers with search spaces, a budget, seeds.

Every trial (one point x one seed of one optimizer) is a plain one-optimizer
`TrainRunConfig`: the study's data, model and length settings, the optimizer
with the point's values, and the seed. Training it is exactly
``python -m optlab train`` with those settings and ``--seed``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from optlab.caps import CAPS, CIFAR_TRAIN_IMAGES
from optlab.study.space import Dimension, study_points
from optlab.train.config import TrainRunConfig

#: The most points per optimizer, seeds per point, and trained steps of one study
#: (all trials together), from `optlab.caps`.
MAX_TRIALS, MAX_SEEDS, MAX_STUDY_STEPS = CAPS.study_trials, CAPS.study_seeds, CAPS.study_steps


@dataclass(frozen=True)
class TrialSpec:
    """One trial: optimizer ``optimizer`` at point ``point`` with seed ``seed``.

    Attributes:
        optimizer: Index of the optimizer in the study.
        point: Index of the point (0 to trials - 1).
        seed: The training seed (weights, data order, augmentation).
        hparams: The point's values, ``{knob: value}``.
        config: The one-optimizer run this trial trains.
    """

    optimizer: int
    point: int
    seed: int
    hparams: Mapping[str, float]
    config: TrainRunConfig = field(repr=False)

    @property
    def id(self) -> str:
        """A name unique in the study, also its result file's name."""
        return f"o{self.optimizer}-p{self.point:03d}-s{self.seed}"


@dataclass(frozen=True)
class StudyConfig:
    """Everything that determines a study.

    Attributes:
        base: The data, model and length settings every trial shares, and in
            ``slots`` the optimizers with their fixed values (a searched knob's
            own value is replaced by each point's).
        dims: The searched dimensions (every optimizer needs an ``lr`` one).
        trials: N, points per optimizer (the tuning budget).
        seeds: S, training seeds per point: ``seed``, ``seed + 1``, ... for every
            optimizer alike.
        seed: The first training seed, and the Sobol sequence's seed.
        grid: Points on a full grid instead of quasi-random.
    """

    base: TrainRunConfig
    dims: tuple[Dimension, ...]
    trials: int = 8
    seeds: int = 1
    seed: int = 0
    grid: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "dims", tuple(self.dims))
        if self.base.seed != self.seed:  # the study's seeds replace the base's own
            object.__setattr__(self, "base", replace(self.base, seed=self.seed))
        for name, value, cap in (
            ("--trials", self.trials, MAX_TRIALS),
            ("--seeds", self.seeds, MAX_SEEDS),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= cap:
                raise ValueError(f"{name}: expected a whole number in [1, {cap}], got {value!r}")
        if self.base.sharpness_every is not None or self.base.snapshot_every is not None:
            raise ValueError("a study's trials keep no snapshots and measure no sharpness")
        total = self.total_steps
        if total > MAX_STUDY_STEPS:
            raise ValueError(
                f"--trials/--seeds: {self.n_trials} trials x {self.trial_steps:,} steps = "
                f"{total:,} steps, over the study cap of {MAX_STUDY_STEPS:,} "
                "(OPTLAB_CAP_STUDY_STEPS); use fewer trials, seeds or steps"
            )
        # Validates every dimension against every optimizer (and the grid's size).
        object.__setattr__(self, "_points", self._make_points())

    def _make_points(self) -> list[list[dict[str, float]]]:
        optimizers = [slot.optimizer for slot in self.base.slots]
        return study_points(optimizers, self.dims, self.trials, self.seed, self.grid)

    @property
    def points(self) -> list[list[dict[str, float]]]:
        """Each optimizer's points, ``{knob: value}``, in order."""
        return self._points  # type: ignore[attr-defined]

    @property
    def seed_values(self) -> list[int]:
        """The training seeds of every point."""
        return [self.seed + j for j in range(self.seeds)]

    @property
    def n_trials(self) -> int:
        """Trials of the whole study: optimizers x points x seeds."""
        return len(self.base.slots) * self.trials * self.seeds

    @property
    def trial_steps(self) -> int:
        """Steps of one trial (for ``epochs``, on the most images the run may use)."""
        if self.base.steps is not None:
            return self.base.steps
        n_train = self.base.train_limit or CIFAR_TRAIN_IMAGES
        return self.base.epochs * max(1, min(n_train, CIFAR_TRAIN_IMAGES) // self.base.batch_size)

    @property
    def total_steps(self) -> int:
        """Steps of all trials together, the quantity the study cap bounds."""
        return self.n_trials * self.trial_steps

    def trial_specs(self) -> list[TrialSpec]:
        """Every trial, point by point (each point's seeds, each optimizer), so that
        the first results to arrive already compare every optimizer."""
        specs = []
        for p in range(self.trials):
            for seed in self.seed_values:
                for i, slot in enumerate(self.base.slots):
                    values = self.points[i][p]
                    one = replace(slot, optimizer=slot.optimizer.with_numbers(values))
                    cfg = replace(self.base, slots=(one,), seed=seed)
                    specs.append(TrialSpec(i, p, seed, values, cfg))
        return specs

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form (`from_dict` reads it back)."""
        base = self.base.to_dict()
        del base["seed"]  # the study's seeds replace it
        return {
            "train": base,
            "space": [d.to_text() for d in self.dims],
            "trials": self.trials,
            "seeds": self.seeds,
            "seed": self.seed,
            "grid": self.grid,
        }

    @classmethod
    def from_dict(cls, data: object) -> StudyConfig:
        """The inverse of `to_dict`, validated like any study.

        Raises:
            ValueError: naming the first setting that is missing or bad.
        """
        if not isinstance(data, Mapping):
            raise ValueError("study: expected a mapping of settings")
        known = {"train", "space", "trials", "seeds", "seed", "grid"}
        if unknown := sorted(str(k) for k in data if k not in known):
            raise ValueError(f"study: unknown setting {unknown[0]!r}")
        space = data.get("space")
        if not isinstance(space, list) or not all(isinstance(s, str) for s in space):
            raise ValueError("study: space must be a list of NAME=LOW:HIGH:scale texts")
        train = data.get("train")
        if not isinstance(train, Mapping):
            raise ValueError("study: train must be a mapping of training settings")
        return cls(
            base=TrainRunConfig.from_dict({**train, "seed": data.get("seed", 0)}),
            dims=tuple(Dimension.from_text(s) for s in space),
            trials=data.get("trials", 8),
            seeds=data.get("seeds", 1),
            seed=data.get("seed", 0),
            grid=data.get("grid", False),
        )
