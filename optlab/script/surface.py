"""Export a surface run as a script: the surface, the optimizers, the textbook loop.

The script is assembled from data and OptLab's own code: its settings and
optimizer table are written from the config with `literal`, the surface is
the registered torch function (or the user's formula rendered by
`optlab.script.formula`), and the loop is `optlab.script.runtime.surface`,
embedded as it is.
"""

from __future__ import annotations

import inspect
import textwrap

import torch

from optlab import __version__
from optlab.script.formula import formula_function
from optlab.script.plans import changes_literal, scheduler_factory
from optlab.script.runtime import surface as runtime
from optlab.script.source import (
    Embedded,
    checked,
    comment,
    doc,
    kwargs_literal,
    literal,
    optimizer_class,
    paragraph,
    sorted_imports,
    string,
)
from optlab.surface.run import SurfaceRunConfig, divergence_box
from optlab.surface.surfaces import CUSTOM

_DOCSTRING = '''\
"""An OptLab surface run, exported as a standalone script.

{summary}
{labels}

It repeats the run with the textbook torch.optim loop, one optimizer after the
other, and prints where each one ended. Its last line is JSON:

    {{"runs": [{{"optimizer": ..., "final": [x, y], "final_loss": ..., ...}}]}}

Run it with:  python <this file>        (it needs only torch)

Everything is float64; with torch {torch_version} the numbers equal OptLab's.
"""'''


def _surface_source(cfg: SurfaceRunConfig, embedded: Embedded) -> tuple[str, str]:
    """The surface's definition (``def f``) and a one-line description of it."""
    problem, surface = cfg.problem, cfg.resolved_surface
    if problem.surface == CUSTOM:
        assert problem.expr is not None  # the config has validated it
        about = "your formula f(x, y), kept in FORMULA below"
        formula = f"FORMULA = {string(problem.expr.strip())}\n\n\n"
        return embedded.take(formula + formula_function(problem.expr)), about
    embedded.add(surface.fn)
    args = "".join(f", {name}={literal(value)}" for name, value in surface.values)
    about = f"{surface.label}: {surface.tex}" if surface.tex else surface.label
    source = (
        "def f(xy: Tensor) -> Tensor:\n"
        f'    """{doc(surface.label)} at points of shape (..., 2)."""\n'
        f"    return {surface.fn.__name__}(xy{args})\n"
    )
    return embedded.take(source), about


def _optimizer_entry(cfg: SurfaceRunConfig, index: int, cls: str) -> str:
    """One optimizer's row of the script's ``OPTIMIZERS`` table."""
    opt, plan = cfg.optimizers[index], cfg.plan(index)
    kwargs = opt.kwargs
    # OptLab names foreach=False (the implementation torch picks on the CPU
    # anyway) to skip torch's per-step choice; the math is the same.
    if "foreach" in inspect.signature(opt.spec.factory).parameters:
        kwargs["foreach"] = False
    return (
        "    {\n"
        f'        "key": {string(opt.key)},\n'
        f'        "label": {string(opt.label)},\n'
        f'        "class": {cls},\n'
        f'        "kwargs": {kwargs_literal(kwargs, 8)},\n'
        f'        "shape": {literal(opt.spec.point_shape)},  # the point: (2,), or one row\n'
        f'        "closure": {opt.spec.uses_closure!r},  # step(closure) instead of step()\n'
        f'        "changes": {changes_literal(plan.changes)},  # see apply_changes\n'
        f'        "scheduler": {scheduler_factory(plan.scheduler)},\n'
        f'        "plateau": {plan.scheduler.spec.on_plateau!r},  # stepped with the loss\n'
        "    },"
    )


def _settings(cfg: SurfaceRunConfig) -> str:
    problem = cfg.problem
    return "\n".join(
        [
            "SETTINGS = {",
            f'    "start": {literal(tuple(problem.start))},  # every optimizer starts here',
            f'    "steps": {problem.steps},  # optimizer steps: one step() or step(closure) each',
            f'    "noise": {literal(problem.noise)},  # std of the Gaussian noise on each gradient',
            f'    "seed": {problem.seed},  # seeds the noise: every optimizer sees the same noise',
            "    # A point outside this box (xmin, xmax, ymin, ymax) counts as diverged: the",
            "    # surface's bounds, widened by ten times their width on every side.",
            f'    "box": {literal(divergence_box(cfg.resolved_surface))},',
            f'    "torch": {string(torch.__version__)},  # the torch that made this script',
            "}",
        ]
    )


def surface_script(cfg: SurfaceRunConfig) -> str:
    """A standalone script that repeats a surface run and prints where each optimizer ended.

    Args:
        cfg: The run.

    Returns:
        The script's source: it needs only torch, and its last printed line is
        ``{"runs": [{"optimizer", "label", "status", "steps", "final": [x, y],
        "final_loss"}, ...]}``.

    Raises:
        ValueError: the run uses something a script cannot rebuild (an
            optimizer that is not a ``torch.optim.Optimizer`` class, a surface
            whose function has no readable source, two definitions of a name).
    """
    embedded = Embedded()
    surface, about = _surface_source(cfg, embedded)
    classes = [optimizer_class(opt, embedded) for opt in cfg.optimizers]
    class_code = embedded.take()
    embedded.add(runtime.main)
    loop = embedded.take()
    entries = [_optimizer_entry(cfg, i, cls) for i, cls in enumerate(classes)]
    imports = embedded.imports | {"import torch", "from torch import Tensor"}
    if any(cfg.plan(i).scheduler.spec.factory is not None for i in range(len(cfg.optimizers))):
        imports |= {"from torch.optim import lr_scheduler"}
    problem = cfg.problem
    name = "your formula" if problem.surface == CUSTOM else cfg.resolved_surface.label
    header = _DOCSTRING.format(
        summary=paragraph(
            f'Made by OptLab {__version__} ("Export as script") with torch '
            f"{torch.__version__} from a run of {problem.steps} steps on {doc(name)}, "
            "with these optimizers:"
        ),
        labels="\n".join(f"    - {doc(opt.label)}" for opt in cfg.optimizers),
        torch_version=torch.__version__,
    )
    about_lines = "\n# ".join(textwrap.wrap(comment(about), width=80, break_long_words=False))
    head = f"{header}\n\nfrom __future__ import annotations\n\n{sorted_imports(imports)}\n\n"
    parts = [
        head + _settings(cfg),
        f"# --- The surface: {about_lines}",
        surface,
        "# --- The optimizers: their classes and constructor arguments",
        *([class_code] if class_code else []),
        "OPTIMIZERS = [\n" + "\n".join(entries) + "\n]",
        "# --- The textbook loop (OptLab's own code, from optlab.script.runtime)",
        loop,
        'if __name__ == "__main__":\n    main(OPTIMIZERS, f, SETTINGS)',
    ]
    return checked("\n\n\n".join(part.strip("\n") for part in parts) + "\n")
