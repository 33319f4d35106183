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
from optlab.surface.surfaces import CUSTOM, SURFACES, Surface


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
    print("Surfaces: (global minima f(x, y) = f*, and how many local ones, in the bounds)")
    for s in SURFACES:
        params = "".join(f"  [--param {hp.name}={hp.format(hp.default)}]" for hp in s.params)
        print(f"  {s.key:<17} {s.label}: {minima_text(s)}{params}")
    print(
        f'  {CUSTOM:<17} your own formula: --expr "..." [--bounds XMIN,XMAX,YMIN,YMAX]'
        " (its minima are estimated by a numerical search on the bounds)"
    )
    return 0


def minima_text(surface: Surface) -> str:
    """``"f(3, 2) = 0, ..."`` for the global minima, then ``"; 120 local minima"``."""
    if not surface.all_minima:
        return "no minimum"
    word = "estimated " if surface.estimated else ""
    text = ", ".join(f"{word}f({m.x:.6g}, {m.y:.6g}) = {m.value:.10g}" for m in surface.minima)
    n = len(surface.local_minima)
    if n:
        text += f"; {n} {word}local minim{'um' if n == 1 else 'a'}"
    return text
