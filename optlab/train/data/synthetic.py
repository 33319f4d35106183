"""A synthetic 10-class 32x32 colour image set, for when CIFAR-10 is out of reach.

It is not CIFAR-10 and is always reported as synthetic. Each class is a
pattern (stripes in three orientations, a checkerboard, a disk, a square, a
triangle, a cross, a ring, a smooth gradient) drawn with random position,
scale, small rotation, period and phase, in random colours at random
contrast (lighter or darker than the background), on an unevenly lit
background, with pixel noise. A small CNN has to learn shapes and
orientations, not colours or pixels, and gets well above chance within a few
hundred steps without reaching 100% at once.

All randomness comes from a local `torch.Generator` seeded by the caller:
the same seed gives the same images, and the global RNG is left alone.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from optlab.train.data.cifar import ImageSet

_SIZE = 32
_CHUNK = 512  # images drawn at once: 6 MB float32 temporaries, which stay in cache
# Per-image nuisance ranges, tuned so the tutorial CNN (SeedNet) reaches
# about 60% test accuracy after 150 SGD steps and 75-80% after 600: far above
# chance, yet with room left for optimizers to differ.
_SHIFT = 7.0  # pixels, either way
_SCALE = (0.65, 1.4)
_ANGLE = 0.3  # radians, either way (about 17 degrees)
_CONTRAST = (0.06, 0.4)  # foreground minus background, 0..1 scale
_HUE = 0.15  # per-channel colour difference between foreground and background
_RAMP = 0.4  # largest brightness ramp across the background
_NOISE = (0.05, 0.22)  # standard deviation of the pixel noise

# A pattern gets local coordinates (X, Y) of shape (n, 32, 32), in pixels,
# centred, scaled and rotated per image, and a sampler of per-image uniform
# parameters; it returns a signed "inside" measure: > 0 foreground, < 0 not.
Sampler = Callable[[float, float], torch.Tensor]
Pattern = Callable[[torch.Tensor, torch.Tensor, Sampler], torch.Tensor]


def _col(t: torch.Tensor) -> torch.Tensor:
    return t[:, None, None]


def _stripes(direction: tuple[float, float]) -> Pattern:
    cx, cy = direction

    def pattern(x: torch.Tensor, y: torch.Tensor, u: Sampler) -> torch.Tensor:
        period, phase = _col(u(6.0, 10.0)), _col(u(0.0, 2 * math.pi))
        # Scaling the sine by period/2pi makes its slope at the edges ~1 per pixel.
        return torch.sin(2 * math.pi * (cx * x + cy * y) / period + phase) * period / (2 * math.pi)

    return pattern


def _checkerboard(x: torch.Tensor, y: torch.Tensor, u: Sampler) -> torch.Tensor:
    period = _col(u(8.0, 12.0))
    sx = torch.sin(2 * math.pi * x / period + _col(u(0.0, 2 * math.pi)))
    sy = torch.sin(2 * math.pi * y / period + _col(u(0.0, 2 * math.pi)))
    return sx * sy * period / 2


def _disk(x: torch.Tensor, y: torch.Tensor, u: Sampler) -> torch.Tensor:
    return _col(u(6.0, 10.0)) - torch.sqrt(x * x + y * y)


def _square(x: torch.Tensor, y: torch.Tensor, u: Sampler) -> torch.Tensor:
    return _col(u(5.0, 9.0)) - torch.maximum(x.abs(), y.abs())


def _triangle(x: torch.Tensor, y: torch.Tensor, u: Sampler) -> torch.Tensor:
    # Apex up (image y grows downwards); both terms are true distances to an edge.
    r = _col(u(8.0, 12.0))
    return torch.minimum(r / 2 - y, r / 2 - (math.sqrt(3) / 2) * x.abs() + y / 2)


def _cross(x: torch.Tensor, y: torch.Tensor, u: Sampler) -> torch.Tensor:
    half_width, half_length = _col(u(1.5, 3.0)), _col(u(8.0, 13.0))
    bar_h = torch.minimum(half_width - y.abs(), half_length - x.abs())
    bar_v = torch.minimum(half_width - x.abs(), half_length - y.abs())
    return torch.maximum(bar_h, bar_v)


def _ring(x: torch.Tensor, y: torch.Tensor, u: Sampler) -> torch.Tensor:
    radius, half_width = _col(u(7.0, 11.0)), _col(u(1.2, 2.2))
    return half_width - (torch.sqrt(x * x + y * y) - radius).abs()


def _gradient(x: torch.Tensor, y: torch.Tensor, u: Sampler) -> torch.Tensor:
    # No edge at all: a linear ramp across the image in a random direction.
    angle = _col(u(0.0, 2 * math.pi))
    return (x * torch.cos(angle) + y * torch.sin(angle)) / 16


_PATTERNS: tuple[tuple[str, Pattern], ...] = (
    ("horizontal stripes", _stripes((0.0, 1.0))),
    ("vertical stripes", _stripes((1.0, 0.0))),
    ("diagonal stripes", _stripes((math.sqrt(0.5), math.sqrt(0.5)))),
    ("checkerboard", _checkerboard),
    ("disk", _disk),
    ("square", _square),
    ("triangle", _triangle),
    ("cross", _cross),
    ("ring", _ring),
    ("gradient", _gradient),
)

#: Class names of the synthetic set, in label order.
SYNTHETIC_CLASSES: tuple[str, ...] = tuple(name for name, _ in _PATTERNS)


def _draw(pattern: Pattern, n: int, gen: torch.Generator) -> torch.Tensor:
    """``n`` images of one pattern as uint8 ``(n, 3, 32, 32)``."""

    def u(low: float, high: float) -> torch.Tensor:
        return low + (high - low) * torch.rand(n, generator=gen)

    grid = torch.arange(_SIZE, dtype=torch.float32) - (_SIZE - 1) / 2
    gx = grid[None, None, :] - _col(u(-_SHIFT, _SHIFT))
    gy = grid[None, :, None] - _col(u(-_SHIFT, _SHIFT))
    scale, angle = _col(u(*_SCALE)), _col(u(-_ANGLE, _ANGLE))
    cos, sin = torch.cos(angle), torch.sin(angle)
    x = (gx * cos + gy * sin) / scale
    y = (gy * cos - gx * sin) / scale
    # Patterns measure in pixels, so this gives edges one pixel of antialiasing.
    mask = (pattern(x, y, u) + 0.5).clamp_(0.0, 1.0)[:, None]

    # Foreground lighter or darker than the background by a random amount,
    # in random hues: the class is in the shape, never in the colour.
    base = 0.2 + 0.6 * torch.rand(n, 3, 1, 1, generator=gen)
    sign = torch.where(torch.rand(n, 1, 1, 1, generator=gen) < 0.5, -1.0, 1.0)
    hue = _HUE * (2 * torch.rand(n, 3, 1, 1, generator=gen) - 1)
    contrast = sign * u(*_CONTRAST)[:, None, None, None] + hue
    # Uneven lighting: the background brightens along a random direction.
    light = _col(u(0.0, 2 * math.pi))
    ramp = (grid[None, None, :] * torch.cos(light) + grid[None, :, None] * torch.sin(light)) / 16
    ramp = (u(0.0, _RAMP)[:, None, None] * ramp)[:, None]
    # Grey noise, one draw per pixel shared by the channels: a third of the
    # random numbers of per-channel noise, which dominated generation time.
    noise = torch.randn((n, 1, _SIZE, _SIZE), generator=gen)
    noise *= u(*_NOISE)[:, None, None, None]

    # base + ramp (background) blended into base + contrast (foreground) by
    # the mask, plus noise. The grey terms are summed at one channel, and the
    # three-channel image costs four passes: it is built in 0..255 units
    # with 0.5 added, so converting to uint8 (which truncates) rounds.
    grey = ramp.mul_(1.0 - mask).add_(noise).mul_(255.0)
    images = mask * (255.0 * contrast)
    images += 255.0 * base + 0.5
    images += grey
    return images.clamp_(0.0, 255.5).to(torch.uint8)


#: Images per independently seeded block: a set's first N images are the same
#: whatever its size, so runs (and checkpoints) on N images agree everywhere.
_BLOCK = 1000


def _block(index: int, seed: int) -> ImageSet:
    """The ``index``-th block of `_BLOCK` images of the stream ``seed``."""
    gen = torch.Generator().manual_seed((seed * 1_000_003 + index) % 2**63)
    # Every group of ten consecutive images holds each class once, in random
    # order: any prefix is balanced (class counts differ by at most one).
    groups = torch.argsort(torch.rand(_BLOCK // len(_PATTERNS), len(_PATTERNS), generator=gen), 1)
    labels = groups.flatten()
    images = torch.empty((_BLOCK, 3, _SIZE, _SIZE), dtype=torch.uint8)
    for cls, (_, pattern) in enumerate(_PATTERNS):
        where = (labels == cls).nonzero().squeeze(1)
        for start in range(0, len(where), _CHUNK):
            index_ = where[start : start + _CHUNK]
            images[index_] = _draw(pattern, len(index_), gen)
    return ImageSet(images, labels)


def _image_set(n: int, seed: int) -> ImageSet:
    blocks = [_block(b, seed) for b in range(-(-n // _BLOCK))]
    images = torch.cat([b.images for b in blocks])
    labels = torch.cat([b.labels for b in blocks])
    if len(labels) > n:  # copies, so the unused tail of the last block is freed
        images, labels = images[:n].clone(), labels[:n].clone()
    return ImageSet(images, labels)


def synthetic_cifar(
    n_train: int = 5000, n_test: int = 1000, seed: int = 0
) -> tuple[ImageSet, ImageSet]:
    """A seeded synthetic stand-in for CIFAR-10 (see the module docstring).

    Args:
        n_train: Training images (at least 1).
        n_test: Test images (at least 1).
        seed: The same seed gives the same images. The test split does not
            depend on ``n_train``.

    Returns:
        ``(train, test)``; class names are `SYNTHETIC_CLASSES`.

    Raises:
        ValueError: A size below 1.
    """
    for name, n in (("n_train", n_train), ("n_test", n_test)):
        if n < 1:
            raise ValueError(f"Invalid {name}: {n}")
    # Two independent streams derived from the seed, so changing one split's
    # size leaves the other split's images as they were.
    streams = torch.randint(0, 2**62, (2,), generator=torch.Generator().manual_seed(seed))
    return _image_set(n_train, int(streams[0])), _image_set(n_test, int(streams[1]))
