"""The surface registry: 2-D loss functions written once, in torch.

Every surface is one torch function vectorised over ``(..., 2)`` tensors: the
same function draws the contour grid and is optimised, so the picture and
the math can never disagree. Adding a surface is one `Surface` entry plus
one line in `SURFACES`; a user's formula becomes a surface through
`formula_surface`.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np
import torch
from torch import Tensor

from optlab.lookup import lookup
from optlab.optim.hparams import HParam, HValue
from optlab.surface.formula import FormulaError, parse_formula

Bounds = tuple[tuple[float, float], tuple[float, float]]
Point = tuple[float, float]

#: Key of the user-formula surface in configs, the CLI and share links.
CUSTOM = "custom"
#: Largest magnitude a bound or start coordinate may have.
MAX_COORD = 1e6
#: "Reached the minimum" means within this much of the best known value.
REACH_TOL = 1e-3
#: Where a user's formula is drawn unless bounds are given.
FORMULA_BOUNDS: Bounds = ((-5.0, 5.0), (-5.0, 5.0))


@dataclass(frozen=True)
class Minimum:
    """A known minimum (value from the literature)."""

    x: float
    y: float
    value: float


@dataclass(frozen=True)
class Surface:
    """A 2-D objective.

    Attributes:
        key: Identifier used by configs, the CLI and share links.
        label: Human-readable name.
        fn: ``fn(xy, **params)`` maps a ``(..., 2)`` tensor to ``(...)``.
        bounds: ``((xmin, xmax), (ymin, ymax))``, the region drawn.
        start: The default start point.
        minima: Known global minima.
        log_scale: Colour by ``log10(f - f* + 1e-3)`` (needs known minima).
        tex: The formula in LaTeX.
        params: Tunable parameters of the surface itself.
        values: The parameter values ``fn`` is evaluated with.
        local_minima: Known local (not global) minima, for basin maps.
    """

    key: str
    label: str
    fn: Callable[..., Tensor] = field(compare=False)
    bounds: Bounds
    start: Point
    minima: tuple[Minimum, ...] = ()
    log_scale: bool = False
    tex: str = ""
    params: tuple[HParam, ...] = ()
    values: tuple[tuple[str, HValue], ...] = ()
    local_minima: tuple[Minimum, ...] = ()

    @property
    def all_minima(self) -> tuple[Minimum, ...]:
        """The global minima, then the known local ones."""
        return self.minima + self.local_minima

    def __call__(self, xy: Tensor) -> Tensor:
        """Evaluates the surface on a ``(..., 2)`` tensor."""
        return self.fn(xy, **dict(self.values))

    @property
    def f_min(self) -> float | None:
        """The smallest known minimum value, or None when none is known."""
        return min(m.value for m in self.minima) if self.minima else None

    def with_values(self, **values: HValue) -> Surface:
        """The same surface with its parameters set (validated)."""
        given = {hp.name: hp.validate(values.get(hp.name, hp.default)) for hp in self.params}
        unknown = set(values) - set(given)
        if unknown:
            raise ValueError(f"{self.label} has no parameter {sorted(unknown)[0]!r}")
        return replace(self, values=tuple(given.items()))

    def grid(self, n: int = 120) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Evaluates the surface on an ``n x n`` grid over its bounds.

        Returns:
            ``(xs, ys, z)``: the axes (length n) and values with shape
            ``(n, n)`` indexed ``[y, x]`` as Plotly's contour expects.
        """
        return _grid(self, n)


@functools.lru_cache(maxsize=64)
def _grid(surface: Surface, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    (x0, x1), (y0, y1) = surface.bounds
    xs = torch.linspace(x0, x1, n, dtype=torch.float64)
    ys = torch.linspace(y0, y1, n, dtype=torch.float64)
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    with torch.no_grad():
        z = surface(torch.stack([gx, gy], dim=-1))
    arrays = (xs.numpy(), ys.numpy(), z.numpy())
    for a in arrays:  # shared by every caller of the cache: read-only
        a.setflags(write=False)
    return arrays


# Powers above 3 are written as powers of squares: torch computes x**4 and x**6
# with a vectorised kernel on larger tensors and a scalar one on small ones, whose
# last bits differ, and a point's value must not depend on how many points the
# engine evaluates with it (squares and cubes are exact in both).


def _xy(xy: Tensor) -> tuple[Tensor, Tensor]:
    # One unbind, not two indexings: its backward is a single stack, where
    # each indexing's backward would allocate a zero tensor and accumulate.
    x, y = xy.unbind(-1)
    return x, y


def _rosenbrock(xy: Tensor) -> Tensor:
    x, y = _xy(xy)
    return (1 - x) ** 2 + 100 * (y - x**2) ** 2


def _beale(xy: Tensor) -> Tensor:
    x, y = _xy(xy)
    return (1.5 - x + x * y) ** 2 + (2.25 - x + x * y**2) ** 2 + (2.625 - x + x * y**3) ** 2


def _himmelblau(xy: Tensor) -> Tensor:
    x, y = _xy(xy)
    return (x**2 + y - 11) ** 2 + (x + y**2 - 7) ** 2


def _rastrigin(xy: Tensor) -> Tensor:
    x, y = _xy(xy)
    return 20 + x**2 - 10 * torch.cos(2 * math.pi * x) + y**2 - 10 * torch.cos(2 * math.pi * y)


def _ackley(xy: Tensor) -> Tensor:
    x, y = _xy(xy)
    # The tiny constant keeps the gradient of sqrt defined at the minimum
    # (sqrt'(0) is infinite, and 0 * inf is NaN); it moves f by < 1e-14.
    r = torch.sqrt(0.5 * (x**2 + y**2) + 1e-30)
    cosines = 0.5 * (torch.cos(2 * math.pi * x) + torch.cos(2 * math.pi * y))
    return -20 * torch.exp(-0.2 * r) - torch.exp(cosines) + math.e + 20


def _booth(xy: Tensor) -> Tensor:
    x, y = _xy(xy)
    return (x + 2 * y - 7) ** 2 + (2 * x + y - 5) ** 2


def _goldstein_price(xy: Tensor) -> Tensor:
    x, y = _xy(xy)
    a = 1 + (x + y + 1) ** 2 * (19 - 14 * x + 3 * x**2 - 14 * y + 6 * x * y + 3 * y**2)
    b = 30 + (2 * x - 3 * y) ** 2 * (18 - 32 * x + 12 * x**2 + 48 * y - 36 * x * y + 27 * y**2)
    return a * b


def _styblinski_tang(xy: Tensor) -> Tensor:
    squares = xy**2
    return 0.5 * (squares**2 - 16 * squares + 5 * xy).sum(dim=-1)


def _six_hump_camel(xy: Tensor) -> Tensor:
    x, y = _xy(xy)
    return (4 - 2.1 * x**2 + (x**2) ** 2 / 3) * x**2 + x * y + (-4 + 4 * y**2) * y**2


def _three_hump_camel(xy: Tensor) -> Tensor:
    x, y = _xy(xy)
    return 2 * x**2 - 1.05 * (x**2) ** 2 + (x**2) ** 3 / 6 + x * y + y**2


def _matyas(xy: Tensor) -> Tensor:
    x, y = _xy(xy)
    return 0.26 * (x**2 + y**2) - 0.48 * x * y


def _quadratic(xy: Tensor, kappa: float = 10.0) -> Tensor:
    x, y = _xy(xy)
    return 0.5 * (x**2 + kappa * y**2)


def _saddle(xy: Tensor) -> Tensor:
    x, y = _xy(xy)
    return x**2 - y**2


def _monkey_saddle(xy: Tensor) -> Tensor:
    x, y = _xy(xy)
    return x**3 - 3 * x * y**2


ROSENBROCK = Surface(
    "rosenbrock",
    "Rosenbrock",
    _rosenbrock,
    ((-2.0, 2.0), (-1.0, 3.0)),
    (-1.2, 1.0),
    (Minimum(1.0, 1.0, 0.0),),
    log_scale=True,
    tex=r"(1-x)^2 + 100\,(y-x^2)^2",
)
BEALE = Surface(
    "beale",
    "Beale",
    _beale,
    ((-4.5, 4.5), (-4.5, 4.5)),
    (1.0, 1.5),
    (Minimum(3.0, 0.5, 0.0),),
    log_scale=True,
    tex=r"(1.5-x+xy)^2 + (2.25-x+xy^2)^2 + (2.625-x+xy^3)^2",
)
HIMMELBLAU = Surface(
    "himmelblau",
    "Himmelblau",
    _himmelblau,
    ((-5.0, 5.0), (-5.0, 5.0)),
    (-0.3, -0.9),
    (
        Minimum(3.0, 2.0, 0.0),
        Minimum(-2.805118, 3.131312, 0.0),
        Minimum(-3.779310, -3.283186, 0.0),
        Minimum(3.584428, -1.848126, 0.0),
    ),
    log_scale=True,
    tex=r"(x^2+y-11)^2 + (x+y^2-7)^2",
)
RASTRIGIN = Surface(
    "rastrigin",
    "Rastrigin",
    _rastrigin,
    ((-5.12, 5.12), (-5.12, 5.12)),
    (3.3, -2.8),
    (Minimum(0.0, 0.0, 0.0),),
    tex=r"20 + \sum_{t\in\{x,y\}} \left(t^2 - 10\cos 2\pi t\right)",
)
ACKLEY = Surface(
    "ackley",
    "Ackley",
    _ackley,
    ((-5.0, 5.0), (-5.0, 5.0)),
    (3.2, 2.6),
    (Minimum(0.0, 0.0, 0.0),),
    tex=r"-20 e^{-0.2\sqrt{(x^2+y^2)/2}} - e^{(\cos 2\pi x + \cos 2\pi y)/2} + e + 20",
)
BOOTH = Surface(
    "booth",
    "Booth",
    _booth,
    ((-10.0, 10.0), (-10.0, 10.0)),
    (-8.0, -6.0),
    (Minimum(1.0, 3.0, 0.0),),
    log_scale=True,
    tex=r"(x+2y-7)^2 + (2x+y-5)^2",
)
GOLDSTEIN_PRICE = Surface(
    "goldstein_price",
    "Goldstein-Price",
    _goldstein_price,
    ((-2.0, 2.0), (-2.0, 2.0)),
    (-1.2, 1.2),
    (Minimum(0.0, -1.0, 3.0),),
    log_scale=True,
    tex=r"\left[1+(x+y+1)^2(19-14x+3x^2-14y+6xy+3y^2)\right]"
    r"\left[30+(2x-3y)^2(18-32x+12x^2+48y-36xy+27y^2)\right]",
)
STYBLINSKI_TANG = Surface(
    "styblinski_tang",
    "Styblinski-Tang",
    _styblinski_tang,
    ((-5.0, 5.0), (-5.0, 5.0)),
    (0.3, 4.5),
    (Minimum(-2.903534, -2.903534, -78.33233),),
    tex=r"\tfrac12 \sum_{t\in\{x,y\}} \left(t^4 - 16t^2 + 5t\right)",
)
SIX_HUMP_CAMEL = Surface(
    "six_hump_camel",
    "Six-hump camel",
    _six_hump_camel,
    ((-3.0, 3.0), (-2.0, 2.0)),
    (-2.0, -1.5),
    (Minimum(0.0898420, -0.7126564, -1.031628), Minimum(-0.0898420, 0.7126564, -1.031628)),
    log_scale=True,
    tex=r"\left(4 - 2.1x^2 + \tfrac{x^4}{3}\right)x^2 + xy + (4y^2-4)\,y^2",
    local_minima=(
        Minimum(1.703607, -0.796084, -0.215464),
        Minimum(-1.703607, 0.796084, -0.215464),
        Minimum(1.607105, 0.568651, 2.104250),
        Minimum(-1.607105, -0.568651, 2.104250),
    ),
)
THREE_HUMP_CAMEL = Surface(
    "three_hump_camel",
    "Three-hump camel",
    _three_hump_camel,
    ((-5.0, 5.0), (-5.0, 5.0)),
    (-4.0, 3.5),
    (Minimum(0.0, 0.0, 0.0),),
    log_scale=True,
    tex=r"2x^2 - 1.05x^4 + \tfrac{x^6}{6} + xy + y^2",
    local_minima=(Minimum(1.747552, -0.873776, 0.298638), Minimum(-1.747552, 0.873776, 0.298638)),
)
MATYAS = Surface(
    "matyas",
    "Matyas",
    _matyas,
    ((-10.0, 10.0), (-10.0, 10.0)),
    (8.0, -4.0),
    (Minimum(0.0, 0.0, 0.0),),
    log_scale=True,
    tex=r"0.26\,(x^2+y^2) - 0.48\,xy",
)
QUADRATIC = Surface(
    "quadratic",
    "Ill-conditioned bowl",
    _quadratic,
    ((-2.0, 2.0), (-2.0, 2.0)),
    (-1.8, 1.2),
    (Minimum(0.0, 0.0, 0.0),),
    log_scale=True,
    tex=r"\tfrac12\left(x^2 + \kappa\, y^2\right)",
    params=(
        HParam(
            "kappa",
            10.0,
            1.0,
            1e4,
            log=True,
            help="condition number κ of the Hessian diag(1, κ)",
        ),
    ),
    values=(("kappa", 10.0),),
)
SADDLE = Surface(
    "saddle",
    "Saddle",
    _saddle,
    ((-2.0, 2.0), (-2.0, 2.0)),
    (-1.8, 0.01),
    tex=r"x^2 - y^2",
)
MONKEY_SADDLE = Surface(
    "monkey_saddle",
    "Monkey saddle",
    _monkey_saddle,
    ((-2.0, 2.0), (-2.0, 2.0)),
    (1.5, 0.05),
    tex=r"x^3 - 3xy^2",
)

#: The registry, in display order. One line here adds a surface everywhere.
SURFACES: tuple[Surface, ...] = (
    ROSENBROCK,
    BEALE,
    HIMMELBLAU,
    RASTRIGIN,
    ACKLEY,
    BOOTH,
    GOLDSTEIN_PRICE,
    STYBLINSKI_TANG,
    SIX_HUMP_CAMEL,
    THREE_HUMP_CAMEL,
    MATYAS,
    QUADRATIC,
    SADDLE,
    MONKEY_SADDLE,
)
_BY_KEY = {s.key: s for s in SURFACES}


def get_surface(key: str) -> Surface:
    """Looks up a registered surface.

    Raises:
        ValueError: naming the unknown key and listing the known ones.
    """
    return lookup(_BY_KEY, key, "surface", also=(CUSTOM,))


def check_bounds(bounds: Bounds) -> Bounds:
    """Validates ``((xmin, xmax), (ymin, ymax))`` and returns it as floats.

    Raises:
        ValueError: naming the bad axis.
    """
    out = []
    for axis, pair in zip("xy", bounds, strict=True):
        lo, hi = (float(v) for v in pair)
        if not (math.isfinite(lo) and math.isfinite(hi)):
            raise ValueError(f"bounds: {axis} range must be finite, got {lo}, {hi}")
        if not lo < hi:
            raise ValueError(f"bounds: {axis}min must be below {axis}max, got {lo} >= {hi}")
        if max(abs(lo), abs(hi)) > MAX_COORD:
            raise ValueError(f"bounds: {axis} range must stay within ±{MAX_COORD:g}")
        out.append((lo, hi))
    return (out[0], out[1])


@functools.lru_cache(maxsize=256)
def formula_surface(text: str, bounds: Bounds = FORMULA_BOUNDS) -> Surface:
    """Turns a user's formula f(x, y) into a surface.

    The formula goes through the allow-list parser (`optlab.surface.formula`); a
    formula that is not finite anywhere on the grid over ``bounds`` is
    rejected because nothing could be drawn or optimised.

    Raises:
        FormulaError: the formula is rejected, or is not finite anywhere.
        ValueError: bad bounds.
    """
    bounds = check_bounds(bounds)
    formula = parse_formula(text)
    (x0, x1), (y0, y1) = bounds
    start = ((x0 + x1) / 2 - 0.4 * (x1 - x0), (y0 + y1) / 2 + 0.4 * (y1 - y0))
    surface = Surface(
        CUSTOM, f"f(x, y) = {formula.text}", formula.on_points, bounds, start, tex=formula.text
    )
    xs, ys, z = surface.grid(64)
    finite = np.isfinite(z)
    if not finite.any():
        raise FormulaError(f"the formula {formula.text!r} is not finite anywhere in the bounds")
    with torch.no_grad():
        start_ok = bool(torch.isfinite(surface(torch.tensor(start, dtype=torch.float64))))
    if not start_ok:
        # The usual corner is outside the formula's domain (sqrt(x) at x < 0):
        # start from the highest finite grid point instead, a natural hill.
        iy, ix = np.unravel_index(np.argmax(np.where(finite, z, -np.inf)), z.shape)
        surface = replace(surface, start=(float(xs[ix]), float(ys[iy])))
    return surface
