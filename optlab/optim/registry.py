"""The optimizer registry: the built-in optimizers, then the packs', then the plugins'.

Packs (`optlab.optim.packs`, chosen by ``$OPTLAB_PACKS``) and plugins
(`optlab.optim.plugins`) are loaded and smoke-tested on the first
call that needs the whole registry (`optimizers`, a key that is not
built in, `plugin_results`), not at import: ``python -m optlab surface
--opt adam`` and every page's import pay nothing for them. Loading happens
once per process; a broken plugin is skipped with its reason and never
raises.
"""

from __future__ import annotations

import functools
import threading

import torch

from optlab.lookup import lookup
from optlab.optim.builtin import BUILTIN_OPTIMIZERS, PRESETS
from optlab.optim.packs import load_packs
from optlab.optim.plugins import (
    PLUGIN_MODULE_PREFIX,
    PluginResult,
    load_plugins,
    loaded_specs,
    reserved_keys,
)
from optlab.optim.spec import OptimizerSpec, Preset

_BUILTIN_BY_KEY: dict[str, OptimizerSpec] = {spec.key: spec for spec in BUILTIN_OPTIMIZERS}
_PRESET_BY_KEY: dict[str, Preset] = {p.key: p for p in PRESETS}
# Pages load the registry from several script threads at once.
_load_lock = threading.Lock()


def _loaded() -> tuple[tuple[PluginResult, ...], dict[str, OptimizerSpec]]:
    with _load_lock:
        return _load()


@functools.cache
def _load() -> tuple[tuple[PluginResult, ...], dict[str, OptimizerSpec]]:
    reserved = reserved_keys()
    results = tuple(load_packs(reserved)) + tuple(load_plugins(reserved=reserved))
    specs = BUILTIN_OPTIMIZERS + loaded_specs(results)
    return results, {spec.key: spec for spec in specs}


def _by_key() -> dict[str, OptimizerSpec]:
    """Every optimizer by key (the registry's own table: tests add to it)."""
    return _loaded()[1]


def optimizers() -> tuple[OptimizerSpec, ...]:
    """Every optimizer, in display order: the built-ins, the packs', then the plugins'."""
    return tuple(_by_key().values())


def plugin_results() -> tuple[PluginResult, ...]:
    """What loading the packs and plugins did: one result per optimizer loaded or skipped."""
    return _loaded()[0]


def plugin_messages() -> tuple[str, ...]:
    """One line per plugin result (loaded, or skipped and why), for the pages and the CLI."""
    return tuple(result.message for result in plugin_results())


def get_spec(key: str) -> OptimizerSpec:
    """Looks up an optimizer by key (preset keys are listed as known too).

    Raises:
        ValueError: naming the unknown key and listing the known ones.
    """
    spec = _BUILTIN_BY_KEY.get(key)
    if spec is not None:
        return spec
    return lookup(_by_key(), key, "optimizer", also=_PRESET_BY_KEY)


def preset(key: str) -> Preset | None:
    """The preset called ``key``, or None when ``key`` is not a preset."""
    return _PRESET_BY_KEY.get(key)


def choice_spec(key: str) -> OptimizerSpec:
    """The spec behind an optimizer or preset key, found without building anything.

    Raises:
        ValueError: an unknown key.
    """
    found = preset(key)
    return get_spec(found.optimizer if found is not None else key)


def choices() -> dict[str, str]:
    """What an optimizer slot offers: key -> label, every optimizer followed by its
    presets (Nesterov beside SGD)."""
    out: dict[str, str] = {}
    for spec in optimizers():
        out[spec.key] = spec.label
        out.update({p.key: p.label for p in PRESETS if p.optimizer == spec.key})
    return out


def preset_text(found: Preset) -> str:
    """A preset's SPEC text (``sgd:momentum=0.9``), written without building anything."""
    spec = get_spec(found.optimizer)
    values = dict(found.values)
    parts = [
        f"{hp.name}={hp.format(values[hp.name])}"
        for hp in spec.hparams
        if hp.name in values and values[hp.name] != hp.default
    ]
    return f"{spec.key}:{','.join(parts)}" if parts else spec.key


def class_path(spec: OptimizerSpec) -> str:
    """Where an optimizer's class comes from, for the pages: ``torch.optim.Adam``,
    ``pytorch_optimizer.optimizer.lion.Lion`` (a pack's), ``Lion (a plugin)``."""
    factory = spec.factory
    name = getattr(factory, "__qualname__", getattr(factory, "__name__", repr(factory)))
    if getattr(torch.optim, name, None) is factory:
        return f"torch.optim.{name}"
    module = getattr(factory, "__module__", "") or ""
    if module.startswith(PLUGIN_MODULE_PREFIX):
        return f"{name} (a plugin)"
    return f"{module}.{name}" if module else name
