"""``optlab list``: the optimizers with their hyperparameters, the presets, the surfaces.

It builds no optimizer (the first torch.optim construction in a process
imports torch._dynamo, about two seconds), so it answers about as fast as
``import torch``; plugins, when ``$OPTLAB_PLUGINS`` names some, are loaded
and smoke-tested here, since they are listed.
"""

from __future__ import annotations

import argparse
from typing import Any

from optlab.optim.builtin import PRESETS
from optlab.optim.registry import optimizers, plugin_messages, preset_text
from optlab.surface.surfaces import CUSTOM, SURFACES


def add_parser(sub: Any) -> None:
    """The command (it takes no options)."""
    sub.add_parser("list", help="list optimizers (with hyperparameters) and surfaces")


def run(args: argparse.Namespace) -> int:
    """Prints the registries."""
    print("Optimizers (SPEC key, then name=default for each hyperparameter):")
    for spec in optimizers():
        print(f"  {spec.key:<10} {spec.label}")
        for hp in spec.hparams:
            print(f"      {hp.name}={hp.format(hp.default):<14} {hp.help}")
    for message in plugin_messages():
        print(f"  (plugin) {message}")
    print("Presets (usable as SPEC keys):")
    for p in PRESETS:
        print(f"  {p.key:<14} {p.label}: {preset_text(p)}")
    print("Surfaces:")
    for s in SURFACES:
        minima = ", ".join(f"f({m.x:g}, {m.y:g}) = {m.value:g}" for m in s.minima) or "no minimum"
        params = "".join(f"  [--param {hp.name}={hp.format(hp.default)}]" for hp in s.params)
        print(f"  {s.key:<17} {s.label}: {minima}{params}")
    print(f'  {CUSTOM:<17} your own formula: --expr "..." [--bounds XMIN,XMAX,YMIN,YMAX]')
    return 0
