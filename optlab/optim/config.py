"""An optimizer with its values: the validated, hashable form every run uses."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from optlab.optim.hparams import HParam, HValue, split_spec
from optlab.optim.registry import choice_spec, get_spec, preset
from optlab.optim.spec import OptimizerSpec


@dataclass(frozen=True)
class OptimizerConfig:
    """A registered optimizer with every hyperparameter's value.

    ``values`` holds all hyperparameters in the spec's order (defaults filled
    in), so two configs that build the same optimizer are equal and hash alike,
    which makes them usable as cache keys.

    Raises:
        ValueError: on an unknown key or hyperparameter, a value out of range,
            or a combination torch itself rejects.
    """

    key: str
    values: tuple[tuple[str, HValue], ...] = field(default=())

    def __post_init__(self) -> None:
        spec = get_spec(self.key)
        given = dict(self.values)
        if len(given) != len(self.values):
            raise ValueError(f"{spec.label}: a hyperparameter is given twice")
        for name in given:
            spec.hparam(name)
        full = tuple((hp.name, hp.validate(given.get(hp.name, hp.default))) for hp in spec.hparams)
        object.__setattr__(self, "values", full)
        if spec.check is not None:
            spec.check(dict(full))
        try:
            # torch's own constructor checks catch combinations no single
            # range can express (nesterov needs momentum > 0, 0 < eta- < 1 < eta+).
            spec.build([spec.probe_point()], dict(full))
        except (ValueError, TypeError, RuntimeError) as err:
            raise ValueError(f"{spec.label}: {err}") from None

    @classmethod
    def create(cls, key: str, **values: HValue) -> OptimizerConfig:
        """Builds a config from an optimizer or preset key and overrides."""
        found = preset(key)
        if found is not None:
            return cls(found.optimizer, tuple({**dict(found.values), **values}.items()))
        return cls(key, tuple(values.items()))

    @property
    def spec(self) -> OptimizerSpec:
        """The registered spec this config builds."""
        return get_spec(self.key)

    @property
    def kwargs(self) -> dict[str, HValue]:
        """The constructor keyword arguments."""
        return dict(self.values)

    def warnings(self) -> tuple[str, ...]:
        """What is unusual about these values (accepted, as torch accepts them), one
        line each: ``momentum: μ ≥ 1: ...``."""
        return self.spec.warnings(dict(self.values))

    def changed(self) -> dict[str, HValue]:
        """The values that differ from torch's defaults."""
        defaults = self.spec.defaults
        return {k: v for k, v in self.values if v != defaults[k]}

    def build(self, params: Iterable[Any]) -> torch.optim.Optimizer:
        """Constructs the torch optimizer over ``params``."""
        return self.spec.build(params, self.kwargs)

    @property
    def label(self) -> str:
        """A short legend label: the name and the values that differ from torch's."""
        spec = self.spec
        changed = self.changed()
        parts = [
            hp.name if changed[hp.name] is True else f"{hp.name}={hp.short(changed[hp.name])}"
            for hp in spec.hparams
            if hp.name in changed
        ]
        return f"{spec.label} ({', '.join(parts)})" if parts else spec.label

    def to_text(self) -> str:
        """The SPEC text form ``key:name=value,...`` (only non-default values)."""
        spec = self.spec
        changed = self.changed()
        parts = [
            f"{hp.name}={hp.format(changed[hp.name])}" for hp in spec.hparams if hp.name in changed
        ]
        return f"{self.key}:{','.join(parts)}" if parts else self.key

    def with_numbers(self, numbers: Mapping[str, float]) -> OptimizerConfig:
        """This config with numeric knobs set (``lr``, ``momentum``, a pair's element
        ``betas.0``, as `numeric_knob` names them): what sweeps and studies vary.

        Raises:
            ValueError: on a name that is not a numeric knob of this optimizer, or
                values torch refuses.
        """
        values = self.kwargs
        for name, value in numbers.items():
            hp, element = numeric_knob(self, name)
            if element is None:
                values[hp.name] = round(value) if hp.kind == "int" else float(value)
            else:
                pair = list(values[hp.name])
                pair[element] = float(value)
                values[hp.name] = tuple(pair)
        return OptimizerConfig(self.key, tuple(values.items()))

    @classmethod
    def from_text(cls, text: str) -> OptimizerConfig:
        """Parses ``key[:name=value[,name=value...]]`` (the CLI's --opt and share links).

        Raises:
            ValueError: with a message naming the bad part.
        """
        key, items = split_spec(text, "optimizer")
        base = choice_spec(key)
        values = {name: base.hparam(name).parse(raw) for name, raw in items}
        return cls.create(key, **values)


def numeric_knob(opt: OptimizerConfig, name: str) -> tuple[HParam, int | None]:
    """The numeric knob ``name`` of ``opt`` (``lr``; ``betas.0`` for a pair's element),
    and the pair element (or None).

    Raises:
        ValueError: naming what is wrong with ``name``.
    """
    base, dot, element = name.partition(".")
    hp = opt.spec.hparam(base)
    if hp.kind == "pair":
        if element not in ("0", "1"):
            raise ValueError(f"{name}: sweep {base}.0 or {base}.1, one element of the pair")
        return hp, int(element)
    if dot:
        raise ValueError(f"{name}: {base} is not a pair")
    if hp.kind not in ("float", "int"):
        raise ValueError(f"{name}: only numeric hyperparameters can be swept, not a {hp.kind}")
    return hp, None


def numeric_knobs(opt: OptimizerConfig) -> list[str]:
    """The names `numeric_knob` accepts for ``opt``: numeric knobs, pair elements."""
    names = []
    for hp in opt.spec.hparams:
        if hp.kind in ("float", "int"):
            names.append(hp.name)
        elif hp.kind == "pair":
            names += [f"{hp.name}.0", f"{hp.name}.1"]
    return names
