"""What a training session observes between its steps: weight snapshots and sharpness.

Both are optional (``TrainRunConfig.snapshot_every``, ``sharpness_every``), run
after a step is over and outside the training's clock: `TrainingSession.images_per_s`
does not count them, and `RunObservers.snapshot_s`, `RunObservers.sharpness_s`
say what they cost.

- Snapshots (`optlab.train.snapshots`): every optimizer's flattened weights at
  steps 0, K, 2K, … and the latest step, within ``CAPS.snapshot_mb``.
- Sharpness (`optlab.train.sharpness`): after every K-th step and the last one,
  every optimizer that has not diverged gets a `SharpnessRecord` on the first
  ``sharpness_images`` training images in file order, normalised as in training
  (channels-last where training is). The model is measured in training mode, the
  mode the loss being trained is computed in; OptLab's models have no batch norm
  or dropout, so eval mode gives the same Hessian. Each optimizer's meter starts
  from its previous eigenvector (a resumed run starts cold, within the meter's
  tolerance of the same values).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Sequence
from dataclasses import asdict

import torch
from torch import nn

from optlab.optim.protocol import evaluation_point
from optlab.train.config import TrainRunConfig
from optlab.train.data.batches import first_images
from optlab.train.models import count_parameters
from optlab.train.sharpness import SharpnessConfig, SharpnessMeter, SharpnessRecord
from optlab.train.snapshots import Snapshots, flat_weights

DIVERGED = "diverged"  # as optlab.train.run names it (run imports this module)


class RunObservers:
    """A session's snapshots and sharpness meters, records and costs.

    Args:
        cfg: The comparison.
        models: Its models (step 0's snapshot is taken from them now).
        train_images: The run's training images (uint8, file order).
        train_labels: Their classes.
        device: Where the models are.
        channels_last: Whether training feeds channels-last images.
        total_steps: The run's last step (sharpness is measured there too).

    Raises:
        ValueError: more sharpness images than the run trains on.
    """

    def __init__(
        self,
        cfg: TrainRunConfig,
        models: Sequence[nn.Module],
        train_images: torch.Tensor,
        train_labels: torch.Tensor,
        device: torch.device,
        channels_last: bool,
        total_steps: int,
    ) -> None:
        self.cfg = cfg
        self.total_steps = total_steps
        #: Seconds spent keeping snapshots and measuring sharpness.
        self.snapshot_s = 0.0
        self.sharpness_s = 0.0
        self.n_params = count_parameters(models[0])
        self.snapshots: Snapshots | None = None
        if cfg.snapshot_every is not None:
            self.snapshots = Snapshots(len(models), self.n_params, cfg.snapshot_every)
            self._snapshot(0, models)
        #: Per optimizer, its sharpness records so far.
        self.sharpness: list[list[SharpnessRecord]] = [[] for _ in models]
        self._meters: list[SharpnessMeter] = []
        if cfg.sharpness_every is not None:
            m = cfg.sharpness_images
            x, y = first_images(train_images, train_labels, m, "sharpness_images")
            x, y = x.to(device), y.to(device)
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            meter_cfg = SharpnessConfig(
                images=cfg.sharpness_images, every=cfg.sharpness_every, seed=cfg.seed
            )
            self._meters = [SharpnessMeter(x, y, meter_cfg) for _ in models]

    def sharpness_due(self, step: int) -> bool:
        """Whether sharpness is measured after ``step``: every ``sharpness_every``
        steps and at the last step."""
        every = self.cfg.sharpness_every
        return every is not None and step > 0 and (step % every == 0 or step == self.total_steps)

    def _snapshot(self, step: int, models: Sequence[nn.Module]) -> None:
        started = time.perf_counter()
        self.snapshots.record(step, [flat_weights(list(m.parameters())) for m in models])
        self.snapshot_s += time.perf_counter() - started

    def after_step(
        self,
        step: int,
        status: Sequence[str],
        models: Sequence[nn.Module],
        optimizers: Sequence[torch.optim.Optimizer],
    ) -> None:
        """Snapshots and sharpness after ``step`` steps (Schedule-Free's at x, the point
        its test evaluations use: `evaluation_point`)."""
        with contextlib.ExitStack() as at_eval_points:
            for slot, model, optimizer in zip(self.cfg.slots, models, optimizers, strict=True):
                params = list(model.parameters())
                spec = slot.optimizer.spec
                at_eval_points.enter_context(evaluation_point(optimizer, params, spec))
            if self.snapshots is not None:
                self._snapshot(step, models)
            if self._meters and self.sharpness_due(step):
                started = time.perf_counter()
                for i, meter in enumerate(self._meters):
                    if status[i] != DIVERGED:
                        self.sharpness[i].append(meter.measure(models[i], optimizers[i], step))
                self.sharpness_s += time.perf_counter() - started

    def state(self) -> dict:
        """The checkpoint's ``snapshots`` and ``sharpness`` entries (those the run keeps)."""
        out: dict = {}
        if self.snapshots is not None:
            out["snapshots"] = self.snapshots.state()
        if self.cfg.sharpness_every is not None:
            out["sharpness"] = [[asdict(r) for r in records] for records in self.sharpness]
        return out

    def load_state(self, state: dict, step: int) -> None:
        """Restores what `state` saved, at the checkpoint's ``step``.

        Raises:
            ValueError: missing or damaged snapshots or sharpness records.
        """
        if self.snapshots is not None:
            if "snapshots" not in state:
                raise ValueError("checkpoint: it holds no snapshots, but the run keeps them")
            snapshots = Snapshots.from_state(state["snapshots"], self.cfg.snapshot_every)
            shape = (snapshots.n_optimizers, snapshots.n_params)
            if shape != (len(self.sharpness), self.n_params):
                raise ValueError("checkpoint: its snapshots do not fit the model")
            if snapshots.steps[-1] != step:
                raise ValueError("checkpoint: its snapshots end at another step than the run")
            self.snapshots = snapshots
        if self.cfg.sharpness_every is not None:
            saved = state.get("sharpness", [[] for _ in self.sharpness])
            if len(saved) != len(self.sharpness):
                raise ValueError("checkpoint: its sharpness records do not fit the optimizers")
            self.sharpness = [[SharpnessRecord(**r) for r in records] for records in saved]
