"""The problem every 2-D run and sweep solves: a surface, where to start, how long.

`Problem` holds the eight settings that a comparison on the playground and a
sweep share (the surface or a typed formula, its parameters, the bounds, the
start point, the steps, gradient noise and its seed) and validates them once,
so `SurfaceRunConfig` and `SweepConfig` both embed one instead of repeating
the fields.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, replace

from optlab.caps import CAPS, MAX_EXACT_INT
from optlab.surface.formula import FormulaError
from optlab.surface.surfaces import (
    CUSTOM,
    FORMULA_BOUNDS,
    MAX_COORD,
    Bounds,
    Point,
    Surface,
    check_bounds,
    formula_surface,
    get_surface,
)

#: Steps of one 2-D run (or of each cell of a sweep): a server cap.
MAX_STEPS = CAPS.surface_steps
MAX_NOISE = 1e3
#: Seeds stay exact in a browser's number input (doubles hold 53-bit integers).
MAX_SEED = MAX_EXACT_INT
MAX_SEEDS = CAPS.surface_seeds


@functools.lru_cache(maxsize=128)
def resolve_surface(
    key: str,
    values: tuple[tuple[str, float], ...] = (),
    expr: str | None = None,
    bounds: Bounds | None = None,
) -> Surface:
    """The `Surface` a problem names: a registered one or the user's formula.

    Raises:
        ValueError: unknown key, bad parameter, rejected formula, bad bounds.
    """
    if key == CUSTOM:
        if not expr:
            raise ValueError("expr: surface 'custom' needs a formula")
        try:
            return formula_surface(expr, bounds or FORMULA_BOUNDS)
        except FormulaError as err:
            raise ValueError(f"expr: {err}") from None
    if expr:
        raise ValueError(f"a formula (expr) is only used with surface 'custom', not {key!r}")
    surface = get_surface(key).with_values(**dict(values))
    if bounds is not None:
        surface = replace(surface, bounds=check_bounds(bounds))
    return surface


def _check_start(start: Point) -> Point:
    try:
        x, y = (float(v) for v in start)
    except (TypeError, ValueError):
        raise ValueError(f"start: expected two numbers x, y, got {start!r}") from None
    if not (math.isfinite(x) and math.isfinite(y)) or max(abs(x), abs(y)) > MAX_COORD:
        raise ValueError(f"start: must be finite and within ±{MAX_COORD:g}, got ({x}, {y})")
    return (x, y)


@dataclass(frozen=True)
class Problem:
    """A 2-D problem: frozen, hashable, JSON-able; validated on construction.

    After validation ``surface_values``, ``bounds`` and ``start`` hold the
    values the run uses (the surface's own where none were given), so two
    problems that run alike compare equal.

    Attributes:
        surface: A registered surface key, or ``"custom"`` with ``expr``.
        surface_values: Parameters of the surface (e.g. ``kappa``).
        expr: The user's formula f(x, y) for the custom surface.
        bounds: ``((xmin, xmax), (ymin, ymax))``; None for the surface's own.
        start: The common start point; None for the surface's default.
        steps: Optimizer steps to take (one ``step()`` call each).
        noise: Standard deviation of Gaussian noise added to each gradient.
        seed: Seeds the noise; the same seed gives every optimizer the same
            noise sequence.
        seeds: Run the comparison once per seed ``seed, seed + 1, ...``, this
            many, to show the spread noise causes (`seed_problems`). Only noise
            draws from the seed, so without noise it is 1.

    Raises:
        ValueError: naming the bad field and value.
    """

    surface: str = "rosenbrock"
    surface_values: tuple[tuple[str, float], ...] = ()
    expr: str | None = None
    bounds: Bounds | None = None
    start: Point | None = None
    steps: int = 500
    noise: float = 0.0
    seed: int = 0
    seeds: int = 1

    def __post_init__(self) -> None:
        if isinstance(self.steps, bool) or not isinstance(self.steps, int):
            raise ValueError(f"steps: expected an integer, got {self.steps!r}")
        if not 1 <= self.steps <= MAX_STEPS:
            raise ValueError(f"steps: must be between 1 and {MAX_STEPS}, got {self.steps}")
        if not (isinstance(self.noise, int | float) and 0 <= self.noise <= MAX_NOISE):
            raise ValueError(f"noise: must be a number in [0, {MAX_NOISE:g}], got {self.noise!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise ValueError(f"seed: expected an integer, got {self.seed!r}")
        if not 0 <= self.seed <= MAX_SEED:
            raise ValueError(f"seed: must be in [0, 2^53), got {self.seed}")
        if isinstance(self.seeds, bool) or not isinstance(self.seeds, int):
            raise ValueError(f"seeds: expected an integer, got {self.seeds!r}")
        if not 1 <= self.seeds <= MAX_SEEDS:
            raise ValueError(
                f"seeds: must be between 1 and {MAX_SEEDS} (this server's cap), got {self.seeds}"
            )
        if self.seed + self.seeds - 1 > MAX_SEED:
            raise ValueError(f"seeds: seed + seeds - 1 must stay below 2^53, got {self.seed}")
        bounds = None if self.bounds is None else check_bounds(self.bounds)
        try:
            values = tuple((str(k), float(v)) for k, v in self.surface_values)
        except (TypeError, ValueError):
            raise ValueError(
                f"surface_values: expected (name, number) pairs, got {self.surface_values!r}"
            ) from None
        surface = resolve_surface(self.surface, values, self.expr, bounds)
        start = _check_start(surface.start if self.start is None else self.start)
        object.__setattr__(self, "surface_values", surface.values)
        object.__setattr__(self, "bounds", surface.bounds)
        object.__setattr__(self, "start", start)
        object.__setattr__(self, "noise", float(self.noise))
        if self.noise == 0:
            object.__setattr__(self, "seeds", 1)  # every seed would run the same

    def seed_problems(self) -> list[Problem]:
        """One single-seed problem per seed, ``seed`` first."""
        return [replace(self, seed=self.seed + k, seeds=1) for k in range(self.seeds)]

    @property
    def resolved_surface(self) -> Surface:
        """The surface this problem runs on (cached by `resolve_surface`)."""
        return resolve_surface(self.surface, self.surface_values, self.expr, self.bounds)

    @property
    def where(self) -> str:
        """The surface's name, or the typed formula, for summaries."""
        return self.resolved_surface.label if self.expr is None else f"f(x, y) = {self.expr}"
