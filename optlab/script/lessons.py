"""A lesson's program: one call of a lesson loop, run for the chart and written as a script.

A `LessonProgram` names a function of `optlab.script.runtime.lessons` and its
arguments (numbers, strings, lists and dicts of them, and optimizer
classes), and the loss it runs on: a registered surface (optionally scaled)
or the CNN on the first images of CIFAR-10's ``data_batch_1``. `run` calls
the function; `lesson_script` writes the standalone script that makes the
same call, with the function's source embedded (`optlab.script.source`), so
the code a lesson shows is the code that drew its chart.
"""

from __future__ import annotations

import inspect
import textwrap
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from optlab import __version__
from optlab.script.runtime import finetune
from optlab.script.runtime import lessons as runtime
from optlab.script.source import (
    Embedded,
    call_source,
    checked,
    doc,
    literal,
    operand,
    paragraph,
    sorted_imports,
    string,
)
from optlab.surface.surfaces import Surface
from optlab.train.data.batch_file import read_batch
from optlab.train.models import get_model_spec

#: The functions a lesson may call (a program naming another is refused).
FUNCTIONS: dict[str, Callable[..., dict]] = {
    fn.__name__: fn
    for fn in (
        runtime.compare,
        runtime.closure_steps,
        runtime.change_lr,
        runtime.scheduled,
        runtime.resume,
        runtime.train_cnn,
        finetune.fine_tune,
    )
}
#: The CIFAR-10 file whose first images the CNN lessons train on.
FIRST_FILE = "data_batch_1"


@dataclass(frozen=True)
class SurfaceLoss:
    """A registered surface as a loss: ``scale * surface.fn(xy, **values)``.

    Attributes:
        surface: The surface (with its parameter values).
        scale: A constant factor (1 leaves the surface as it is; 1e-9 makes
            its gradients tiny).
    """

    surface: Surface
    scale: float = 1.0

    def __call__(self, xy: Tensor) -> Tensor:
        """The loss at ``xy``: the same operations as the script's ``f``."""
        value = self.surface.fn(xy, **dict(self.surface.values))
        return value if self.scale == 1 else self.scale * value


@dataclass(frozen=True)
class CnnData:
    """The CNN and its data: the first ``count`` images of ``data_batch_1``.

    Attributes:
        model: A registered model key (``seednet``).
        count: How many images (the run's batches are cut from these, in order).
        folder: The ``cifar-10-batches-py`` folder, the script's default.
    """

    model: str
    count: int
    folder: str | None = None


@dataclass(frozen=True)
class LessonProgram:
    """One call of a lesson loop.

    Attributes:
        title: What the program shows, for the script's docstring.
        function: The name of a function in `FUNCTIONS`.
        arguments: Its keyword arguments after the loss (or the model and
            images): values `render` can write.
        loss: A `SurfaceLoss`, or `CnnData` for the CNN.
    """

    title: str
    function: str
    arguments: tuple[tuple[str, Any], ...] = field(default=())
    loss: SurfaceLoss | CnnData | None = None

    def __post_init__(self) -> None:
        if self.function not in FUNCTIONS:
            raise ValueError(f"function: not a lesson loop: {self.function!r}")
        if not isinstance(self.loss, SurfaceLoss | CnnData):
            raise ValueError(f"loss: expected a SurfaceLoss or CnnData, got {self.loss!r}")

    def run(self, images: Tensor | None = None, labels: Tensor | None = None) -> dict:
        """Calls the function; a CNN program needs the first images and their labels."""
        fn, kwargs = FUNCTIONS[self.function], dict(self.arguments)
        if isinstance(self.loss, CnnData):
            if images is None or labels is None or len(labels) < self.loss.count:
                raise ValueError(f"this lesson needs the first {self.loss.count} CIFAR-10 images")
            factory = get_model_spec(self.loss.model).factory
            count = self.loss.count
            return fn(factory, images[:count], labels[:count], **kwargs)
        return fn(self.loss, **kwargs)


def first_images(folder: str | Path, count: int) -> tuple[Tensor, Tensor]:
    """The first ``count`` images of ``folder``'s ``data_batch_1`` and their labels."""
    images, labels = read_batch(Path(folder) / FIRST_FILE)
    return images[:count], labels[:count]


def _name(value: type, embedded: Embedded) -> str:
    """How the script names an optimizer class: ``torch.optim.X`` or its embedded source."""
    if getattr(torch.optim, value.__name__, None) is value:
        return f"torch.optim.{value.__name__}"
    embedded.add(value)
    return value.__name__


def render(value: Any, embedded: Embedded, indent: int = 0) -> str:
    """``value`` as Python source: literals, lists, dicts and optimizer classes."""
    pad = " " * indent
    if inspect.isclass(value) and issubclass(value, torch.optim.Optimizer):
        return _name(value, embedded)
    if isinstance(value, Mapping):
        items = [f"{string(str(k))}: {render(v, embedded, indent + 4)}" for k, v in value.items()]
        flat = "{" + ", ".join(items) + "}"
        if len(flat) + indent <= 72:
            return flat
        return "{\n" + "".join(f"{pad}    {item},\n" for item in items) + pad + "}"
    if isinstance(value, list) and any(isinstance(v, Mapping) for v in value):
        rows = [f"{pad}    {render(v, embedded, indent + 4)},\n" for v in value]
        return "[\n" + "".join(rows) + pad + "]"
    if isinstance(value, list):
        return "[" + ", ".join(render(v, embedded, indent) for v in value) + "]"
    return literal(value)


def _loss_source(loss: SurfaceLoss, embedded: Embedded) -> str:
    surface = loss.surface
    embedded.add(surface.fn)
    args = "".join(f", {name}={literal(value)}" for name, value in surface.values)
    call = f"{surface.fn.__name__}(xy{args})"
    body = call if loss.scale == 1 else f"{operand(loss.scale)} * {call}"
    return embedded.take(
        "def f(xy: Tensor) -> Tensor:\n"
        f'    """The loss: {doc(surface.label)} at points of shape (..., 2)."""\n'
        f"    return {body}\n"
    )


def lesson_script(program: LessonProgram) -> str:
    """The standalone script that makes ``program``'s call and prints its result as JSON.

    Raises:
        ValueError: an argument a script cannot write.
    """
    embedded = Embedded()
    loss = program.loss
    if isinstance(loss, CnnData):
        embedded.add(read_batch)
        model_class, model_call = call_source(get_model_spec(loss.model).factory)
        embedded.add(model_class)
        loss_code = embedded.take(f"def make_model() -> nn.Module:\n    return {model_call}\n")
        head_args = ["make_model", "images", "labels"]
        data = (
            f"    folder = Path(sys.argv[1] if len(sys.argv) > 1 else {literal(loss.folder)})\n"
            f"    images, labels = read_batch(folder / {string(FIRST_FILE)})\n"
            f"    images, labels = images[: {loss.count}], labels[: {loss.count}]\n"
        )
        imports = {"import sys", "from pathlib import Path", "from torch import nn"}
    else:
        assert loss is not None
        loss_code = _loss_source(loss, embedded)
        head_args, data, imports = ["f"], "", {"from torch import Tensor"}
    arguments = [f"        {name}={render(v, embedded, 8)},\n" for name, v in program.arguments]
    classes = embedded.take()
    function = FUNCTIONS[program.function]
    embedded.add(function)
    loop = embedded.take()
    imports |= embedded.imports | {"import json", "import torch"}
    call = (
        'if __name__ == "__main__":\n'
        + data
        + f"    result = {function.__name__}(\n"
        + "".join(f"        {name},\n" for name in head_args)
        + "".join(arguments)
        + "    )\n"
        + "    print(json.dumps(result))\n"
    )
    about = paragraph(
        f"{program.title}. Made by OptLab {__version__} with torch {torch.__version__}; "
        "it needs only torch, and its last line is the result as JSON, the numbers the "
        "lesson drew."
    )
    if isinstance(loss, CnnData):
        about += "\n\nRun it with:  python <this file> /path/to/cifar-10-batches-py"
    header = f'"""{about}\n"""\n\nfrom __future__ import annotations\n\n{sorted_imports(imports)}'
    # What the lesson is about first, where a reader looks: an optimizer written for it
    # (Lion, Adam without bias correction), then the loop; what they run on after.
    parts = [header, classes, loop, loss_code, call]
    return checked("\n\n\n".join(textwrap.dedent(p).strip("\n") for p in parts if p) + "\n")
