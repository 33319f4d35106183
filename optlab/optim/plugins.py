"""Optimizer plugins: your own `torch.optim.Optimizer`, installed beside the server.

``OPTLAB_PLUGINS`` names folders (or single ``.py`` files), separated by
`os.pathsep` (``:`` on Linux and macOS). When the registry
(`optlab.optim.registry`) is first asked for every optimizer, each ``*.py``
module in those folders whose name does not start with ``_`` is imported
under a private module name and must define ``OPTLAB_OPTIMIZERS``: a tuple
(or list) of `OptimizerSpec`. Each spec that passes the checks below joins
the registry after the built-in optimizers, so it appears in every page, the
CLI and the parametrised tests. ``optlab/examples/lion.py`` is the worked
example.

A plugin is checked before it is offered, and one that fails is skipped with
a one-line reason; loading never raises, so a broken plugin cannot stop the
server from starting:

- the module imports (no syntax error, no failing import, no exception);
- it defines ``OPTLAB_OPTIMIZERS``, a sequence of `OptimizerSpec`;
- each key is a lowercase identifier that no built-in optimizer, preset or
  other plugin uses;
- the factory is a `torch.optim.Optimizer` subclass that accepts every
  hyperparameter by name, and each hyperparameter's default is valid;
- a smoke test passes: built on a 2-element float64 tensor with the
  defaults, one step on a quadratic leaves the point finite, and its
  ``state_dict()`` loads into a fresh instance.

Safety: a plugin is ordinary Python code that runs with the server's rights.
Plugins are installed by whoever starts the server, from that machine's own
disk; nothing a browser sends is ever imported.
"""

from __future__ import annotations

import hashlib
import importlib.util
import inspect
import logging
import os
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType, TracebackType

import torch

from optlab.optim.builtin import BUILTIN_OPTIMIZERS, PRESETS
from optlab.optim.hparams import HParam
from optlab.optim.protocol import evaluation_point, gradient
from optlab.optim.spec import OptimizerSpec, Paper

#: The environment variable that lists plugin folders (or files).
PLUGINS_ENV = "OPTLAB_PLUGINS"
#: The attribute every plugin module defines: a sequence of `OptimizerSpec`.
PLUGIN_ATTRIBUTE = "OPTLAB_OPTIMIZERS"

_KEY = re.compile(r"[a-z][a-z0-9_]*")
#: The shapes a 2-D point may be given in: a vector, or a one-row matrix (Muon-like).
POINT_SHAPES = ((2,), (1, 2))
#: The start of every plugin module's private name.
PLUGIN_MODULE_PREFIX = "_optlab_plugin_"
_MAX_REASON = 300
_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PluginResult:
    """What happened to one optimizer of a plugin, or to a whole plugin module.

    Attributes:
        source: The plugin file (or the path-list entry, when that is the problem);
            the pack's name for a pack.
        spec: The optimizer registered; None when skipped.
        reason: Why it was skipped (one line); empty when loaded.
        kind: ``plugin``, or ``pack`` (`optlab.optim.packs`).
    """

    source: str
    spec: OptimizerSpec | None = None
    reason: str = ""
    kind: str = "plugin"

    @property
    def loaded(self) -> bool:
        """Whether an optimizer was registered."""
        return self.spec is not None

    @property
    def message(self) -> str:
        """One line for the server log, the pages and the CLI."""
        if self.spec is not None:
            return (
                f"{self.kind} {self.source}: loaded optimizer {self.spec.key!r} ({self.spec.label})"
            )
        return f"{self.kind} {self.source}: skipped: {self.reason}"


def one_line(text: str) -> str:
    """Collapses whitespace and caps the length, so a reason stays one readable line."""
    line = " ".join(str(text).split())
    return line if len(line) <= _MAX_REASON else line[: _MAX_REASON - 1] + "…"


def _where(tb: TracebackType | None, file: Path) -> str:
    """`` (name.py line N)`` for the deepest frame of ``tb`` inside ``file``, else ``""``."""
    target = str(file)
    line = None
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == target:
            line = tb.tb_lineno
        tb = tb.tb_next
    return "" if line is None else f" ({file.name} line {line})"


def _describe(err: BaseException, file: Path) -> str:
    """``Type: message (name.py line N)``, on one line."""
    text = str(err)
    shown = f"{type(err).__name__}: {text}" if text else type(err).__name__
    return one_line(shown + _where(err.__traceback__, file))


def _module_name(file: Path) -> str:
    """A private, stable module name: the same file always gets the same one."""
    digest = hashlib.sha1(str(file).encode(), usedforsecurity=False).hexdigest()[:10]
    stem = re.sub(r"\W", "_", file.stem)
    return f"{PLUGIN_MODULE_PREFIX}{digest}_{stem}"


def _restore(name: str, previous: ModuleType | None) -> None:
    """Puts back what `sys.modules` held under ``name`` before a failed load."""
    if previous is None:
        sys.modules.pop(name, None)
    else:
        sys.modules[name] = previous


def _import(file: Path) -> tuple[ModuleType, ModuleType | None]:
    """Imports ``file`` under its private name; returns it and the module it replaced.

    The module is in `sys.modules` while it runs (dataclasses and pickling by
    reference need that); a failed import leaves `sys.modules` as it was.
    """
    name = _module_name(file)
    previous = sys.modules.get(name)
    spec = importlib.util.spec_from_file_location(name, file)
    if spec is None or spec.loader is None:
        raise ImportError("Python cannot import this file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        _restore(name, previous)
        raise
    return module, previous


def _candidates(entry: str) -> tuple[list[Path], str]:
    """The plugin files one path-list entry names, or why it names none."""
    try:
        path = Path(entry).expanduser().resolve()
        if path.is_dir():
            files = sorted(
                p for p in path.glob("*.py") if not p.name.startswith("_") and p.is_file()
            )
            if not files:
                return [], "no plugin modules here (*.py files not starting with _)"
            return files, ""
        if path.is_file():
            if path.suffix != ".py":
                return [], "not a folder or a .py file"
            return [path], ""
    except (OSError, RuntimeError) as err:  # unreadable, or a symlink loop
        return [], one_line(f"cannot be read: {getattr(err, 'strerror', None) or err}")
    return [], "no such file or folder"


def _check_hparams(spec: OptimizerSpec) -> str:
    """Why ``spec``'s hyperparameters are not well-formed, or ``""``."""
    if not isinstance(spec.hparams, tuple) or not all(isinstance(h, HParam) for h in spec.hparams):
        return "hparams must be a tuple of HParam"
    names = [hp.name for hp in spec.hparams]
    if len(names) != len(set(names)):
        return f"a hyperparameter is declared twice: {', '.join(names)}"
    try:
        params = inspect.signature(spec.factory).parameters
    except (TypeError, ValueError):  # no readable signature: the smoke test decides
        params = {}
    takes_any = not params or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    for hp in spec.hparams:
        if not isinstance(hp.name, str) or not hp.name.isidentifier():
            return f"hyperparameter name {hp.name!r} is not an identifier"
        if not takes_any and hp.name not in params:
            return f"{spec.factory.__name__} takes no argument {hp.name!r}"
        try:
            valid = hp.validate(hp.default)
        except ValueError as err:
            return f"the default of {hp.name} is invalid: {err}"
        if valid != hp.default:
            return f"the default of {hp.name} is not in canonical form ({hp.default!r})"
    return ""


def _check_metadata(spec: OptimizerSpec) -> str:
    """Why ``spec``'s texts cannot be shown, or ``""``."""
    if not isinstance(spec.label, str) or not spec.label.strip():
        return "label must be a non-empty string"
    if not isinstance(spec.rule, str) or not spec.rule.strip():
        return "rule must be the update rule in LaTeX (a non-empty string)"
    if not isinstance(spec.notes, tuple) or not all(isinstance(n, str) for n in spec.notes):
        return "notes must be a tuple of strings"
    if spec.paper is not None and not isinstance(spec.paper, Paper):
        return "paper must be a Paper or None"
    if spec.point_shape not in POINT_SHAPES:
        shapes = " or ".join(map(str, POINT_SHAPES))
        shown = spec.point_shape
        return f"point_shape must be {shapes} (a 2-D point as a vector or one row), not {shown!r}"
    if spec.averaged and not all(
        callable(getattr(spec.factory, name, None)) for name in ("train", "eval")
    ):
        return "averaged optimizers need .train() and .eval() methods (Schedule-Free's protocol)"
    return ""


def _smoke_test(spec: OptimizerSpec) -> None:
    """Builds ``spec`` with its defaults and takes one step; raises on any problem."""
    values = spec.defaults
    if spec.check is not None:
        spec.check(values)
    evals = spec.evals_per_step(values)
    if not isinstance(evals, int) or isinstance(evals, bool) or evals < 1:
        raise ValueError(f"evals_per_step gave {evals!r} (expected an integer >= 1)")
    start = torch.tensor([1.0, -2.0], dtype=torch.float64)
    point = spec.as_param(start.clone()).requires_grad_(True)
    opt = spec.build([point], values)
    if not isinstance(opt, torch.optim.Optimizer):
        raise TypeError(f"the factory returned {type(opt).__name__}, not an Optimizer")
    group = opt.param_groups[0]
    if "lr" not in group:
        raise ValueError("param_groups have no 'lr' (OptLab shows the learning rate)")
    float(group["lr"])
    scale = torch.tensor([1.0, 10.0], dtype=torch.float64)

    def closure() -> torch.Tensor:
        opt.zero_grad()
        if spec.create_graph:  # step() differentiates the gradient: it needs its graph
            with torch.enable_grad():
                loss = 0.5 * (scale * point * point).sum()
                point.grad = gradient(loss, point, spec)
            return loss.detach()
        # The quadratic's gradient written out: no autograd, whose first backward
        # in a process costs about a second, for a check that runs at start-up.
        with torch.no_grad():
            point.grad = spec.as_param(scale) * point
            return 0.5 * (scale * point * point).sum()

    if spec.uses_closure:
        opt.step(closure)
    else:
        closure()
        opt.step()
    with evaluation_point(opt, [point], spec):
        if not bool(torch.isfinite(point).all()):
            raise ValueError(f"one step from (1, -2) on a quadratic gave {point.tolist()}")
    saved = opt.state_dict()
    twin = spec.build([point.detach().clone().requires_grad_(True)], values)
    twin.load_state_dict(saved)


def check_spec(spec: object, reserved: dict[str, str], file: Path) -> str:
    """Why ``spec`` cannot be registered, or ``""``."""
    if not isinstance(spec, OptimizerSpec):
        return f"{PLUGIN_ATTRIBUTE} holds a {type(spec).__name__}, not an OptimizerSpec"
    key = spec.key
    if not isinstance(key, str) or not _KEY.fullmatch(key):
        return f"key {key!r} is not a lowercase identifier (a-z, 0-9 and _, a letter first)"
    if key in reserved:
        return f"key {key!r} is already taken by {reserved[key]}"
    factory = spec.factory
    if not (isinstance(factory, type) and issubclass(factory, torch.optim.Optimizer)):
        shown = getattr(factory, "__name__", type(factory).__name__)
        return f"{key}: factory {shown} is not a torch.optim.Optimizer subclass"
    problem = _check_metadata(spec) or _check_hparams(spec)
    if problem:
        return f"{key}: {problem}"
    try:
        # Forked so that a plugin drawing random numbers leaves the global
        # generator as it found it.
        with torch.random.fork_rng(devices=[]):
            _smoke_test(spec)
    except (Exception, SystemExit) as err:
        return f"{key}: smoke test failed: {_describe(err, file)}"
    return ""


def _load_file(file: Path, reserved: dict[str, str]) -> list[PluginResult]:
    """Imports one plugin module and checks its specs; adds loaded keys to ``reserved``."""
    source = str(file)
    try:
        module, previous = _import(file)
    except SyntaxError as err:
        where = f"{Path(err.filename or source).name} line {err.lineno}"
        return [PluginResult(source, reason=one_line(f"syntax error ({where}): {err.msg}"))]
    except (Exception, SystemExit) as err:
        return [PluginResult(source, reason=one_line(f"import failed: {_describe(err, file)}"))]

    specs = getattr(module, PLUGIN_ATTRIBUTE, None)
    results: list[PluginResult] = []
    if specs is None:
        results.append(
            PluginResult(source, reason=f"defines no {PLUGIN_ATTRIBUTE} (a tuple of OptimizerSpec)")
        )
    elif not isinstance(specs, tuple | list):
        reason = f"{PLUGIN_ATTRIBUTE} must be a tuple of OptimizerSpec, not {type(specs).__name__}"
        results.append(PluginResult(source, reason=reason))
    elif not specs:
        results.append(PluginResult(source, reason=f"{PLUGIN_ATTRIBUTE} is empty"))
    else:
        for spec in specs:
            try:
                problem = check_spec(spec, reserved, file)
            except (Exception, SystemExit) as err:  # a spec odd enough to break a check
                problem = f"invalid OptimizerSpec: {_describe(err, file)}"
            if problem:
                results.append(PluginResult(source, reason=one_line(problem)))
            else:
                reserved[spec.key] = f"plugin {source}"
                results.append(PluginResult(source, spec=spec))
    if not any(r.loaded for r in results):
        _restore(module.__name__, previous)
    return results


def load_plugins(
    paths: str | None = None, reserved: dict[str, str] | None = None
) -> list[PluginResult]:
    """Imports the plugin modules that ``paths`` names and checks their optimizers.

    Args:
        paths: Folders or ``.py`` files separated by `os.pathsep`; None reads
            ``$OPTLAB_PLUGINS`` (unset or empty: no plugins).
        reserved: Keys already taken (and who took them); loaded keys are
            added to it. None: the built-in optimizers' and presets' keys.

    Returns:
        One result per optimizer loaded or skipped, and per module or path
        entry that gave none, in path order (files sorted by name). Never
        raises for a bad plugin; skipped ones are also logged as warnings.
    """
    if paths is None:
        paths = os.environ.get(PLUGINS_ENV, "")
    taken = reserved_keys() if reserved is None else reserved
    results: list[PluginResult] = []
    seen: set[Path] = set()
    for entry in (e.strip() for e in paths.split(os.pathsep)):
        if not entry:
            continue
        files, problem = _candidates(entry)
        if problem:
            results.append(PluginResult(entry, reason=problem))
        for file in files:
            if file not in seen:
                seen.add(file)
                results.extend(_load_file(file, taken))
    for result in results:
        if result.loaded:
            _log.info("%s", result.message)
        else:
            _log.warning("optlab: %s", result.message)
    return results


def reserved_keys() -> dict[str, str]:
    """Keys a plugin may not take: the built-in optimizers' and the presets'."""
    reserved = {spec.key: "a built-in optimizer" for spec in BUILTIN_OPTIMIZERS}
    reserved.update({preset.key: "a preset" for preset in PRESETS})
    return reserved


def loaded_specs(results: Sequence[PluginResult]) -> tuple[OptimizerSpec, ...]:
    """The optimizers that ``results`` registered, in order."""
    return tuple(result.spec for result in results if result.spec is not None)
