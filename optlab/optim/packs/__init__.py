"""Optimizer packs: curated optimizers from an installed library, switched on by name.

``OPTLAB_PACKS`` lists pack names separated by commas (``pytorch_optimizer``).
Each pack is a module of this package that imports its library and defines
``OPTLAB_OPTIMIZERS``, the same tuple of `OptimizerSpec` a plugin defines; its
optimizers go through the plugin checks and smoke test
(`optlab.optim.plugins`), and one that fails is skipped with a one-line
reason. A pack whose library is not installed is skipped as a whole, with the
command that installs it (``pip install -r requirements-extra.txt``).

Packs are chosen by whoever starts the server, never by a browser: the name
is looked up in `PACKS`, so nothing else can be imported through it.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path

from optlab.optim.plugins import PLUGIN_ATTRIBUTE, PluginResult, check_spec, one_line

#: The environment variable that lists the packs to load.
PACKS_ENV = "OPTLAB_PACKS"
#: Every pack: its name, its module, the distribution it needs.
PACKS: dict[str, tuple[str, str]] = {
    "pytorch_optimizer": ("optlab.optim.packs.pytorch_optimizer", "pytorch-optimizer"),
}
INSTALL_HINT = "pip install -r requirements-extra.txt"


def library_of(factory: object) -> str | None:
    """The library (distribution) a pack's optimizer class comes from; None for others."""
    module = getattr(factory, "__module__", None) or ""
    for name, (pack_module, distribution) in PACKS.items():
        if module.split(".")[0] == name or module.startswith(pack_module):
            return distribution
    return None


def pack_names(text: str | None = None) -> list[str]:
    """The pack names ``text`` (default ``$OPTLAB_PACKS``) lists, in order, once each."""
    if text is None:
        text = os.environ.get(PACKS_ENV, "")
    names = (name.strip().lower().replace("-", "_") for name in text.split(","))
    return list(dict.fromkeys(name for name in names if name))


def load_packs(reserved: dict[str, str], text: str | None = None) -> list[PluginResult]:
    """Imports the packs ``text`` names and checks their optimizers.

    Args:
        reserved: Keys already taken (built-in optimizers, presets); loaded
            keys are added to it.
        text: Comma-separated pack names; None reads ``$OPTLAB_PACKS``.

    Returns:
        One result per optimizer loaded or skipped, and one per pack that gave
        none (unknown, or its library missing). Never raises.
    """
    results: list[PluginResult] = []
    for name in pack_names(text):
        source = name
        if name not in PACKS:
            known = ", ".join(sorted(PACKS))
            results.append(
                PluginResult(source, kind="pack", reason=f"unknown pack (known: {known})")
            )
            continue
        module_name, distribution = PACKS[name]
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as err:
            missing = err.name or distribution
            reason = f"{missing} is not installed ({INSTALL_HINT} installs {distribution})"
            results.append(PluginResult(source, kind="pack", reason=one_line(reason)))
            continue
        except (Exception, SystemExit) as err:
            reason = f"import failed: {type(err).__name__}: {err}"
            results.append(PluginResult(source, kind="pack", reason=one_line(reason)))
            continue
        file = Path(module.__file__ or module_name)
        for spec in getattr(module, PLUGIN_ATTRIBUTE, ()):
            try:
                problem = check_spec(spec, reserved, file)
            except (Exception, SystemExit) as err:
                problem = f"invalid OptimizerSpec: {type(err).__name__}: {err}"
            if problem:
                results.append(PluginResult(source, kind="pack", reason=one_line(problem)))
            else:
                reserved[spec.key] = f"pack {source}"
                results.append(PluginResult(source, spec=spec, kind="pack"))
    return results
