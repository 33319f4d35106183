"""Per-batch work on uint8 image tensors: normalisation and augmentation.

Images stay uint8 in memory (a quarter of float32) and become float32 only
one batch at a time, on the batch's device. Augmentation is one gather over
the whole batch, not a Python loop over samples.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

#: Per-channel mean and standard deviation of the CIFAR-10 training images,
#: on the 0..1 scale (computed over all 50,000 images and all pixels).
CIFAR10_MEAN: tuple[float, float, float] = (0.4914, 0.4822, 0.4465)
CIFAR10_STD: tuple[float, float, float] = (0.2470, 0.2435, 0.2616)


def _check_images(images: torch.Tensor) -> None:
    if images.dim() != 4:
        raise ValueError(f"Expected images of shape (N, C, H, W), got {tuple(images.shape)}")


def normalise(
    images: torch.Tensor,
    mean: Sequence[float] | torch.Tensor = CIFAR10_MEAN,
    std: Sequence[float] | torch.Tensor = CIFAR10_STD,
) -> torch.Tensor:
    """``(images / 255 - mean) / std`` per channel, as float32.

    Args:
        images: uint8 ``(N, C, H, W)``, values 0..255.
        mean: C per-channel means on the 0..1 scale.
        std: C per-channel standard deviations on the 0..1 scale (positive).

    Returns:
        A new float32 tensor on the images' device.
    """
    _check_images(images)
    if images.dtype != torch.uint8:
        raise ValueError(f"Expected uint8 images, got {images.dtype}")
    channels = images.shape[1]
    m = torch.as_tensor(mean, dtype=torch.float32, device=images.device).reshape(-1)
    s = torch.as_tensor(std, dtype=torch.float32, device=images.device).reshape(-1)
    if m.numel() != channels or s.numel() != channels:
        raise ValueError(
            f"mean and std need {channels} values each, got {m.numel()} and {s.numel()}"
        )
    if not bool((s > 0).all()):
        raise ValueError(f"Invalid std: {s.tolist()} (must be positive)")
    # Folded into x * a - b and done in place after the one float conversion,
    # so a batch costs no temporaries beyond its float32 copy.
    scale = (1.0 / (255.0 * s)).view(1, channels, 1, 1)
    shift = (m / s).view(1, channels, 1, 1)
    return images.to(torch.float32).mul_(scale).sub_(shift)


def augment(
    images: torch.Tensor,
    generator: torch.Generator,
    padding: int = 4,
    flip: bool = True,
) -> torch.Tensor:
    """Random crop with zero padding and random horizontal flip, per image.

    Each image is padded by ``padding`` zero pixels on every side, cropped
    back to its size at a random offset, and mirrored left-right with
    probability 1/2 if ``flip``. All images are done in one indexing
    operation on the batch's device.

    Args:
        images: ``(N, C, H, W)`` of any dtype (uint8 in OptLab).
        generator: The source of randomness; the same generator state gives
            the same output. Random numbers are drawn on its device.
        padding: Pixels of zero padding (0 disables cropping).
        flip: Whether to mirror half of the images.

    Returns:
        A new tensor with the images' dtype, shape and device.
    """
    _check_images(images)
    if padding < 0:
        raise ValueError(f"Invalid padding: {padding}")
    n, _, height, width = images.shape
    draw_device = generator.device
    offset_y = torch.randint(0, 2 * padding + 1, (n,), generator=generator, device=draw_device)
    offset_x = torch.randint(0, 2 * padding + 1, (n,), generator=generator, device=draw_device)
    if flip:
        mirrored = torch.rand(n, generator=generator, device=draw_device) < 0.5
    else:
        mirrored = torch.zeros(n, dtype=torch.bool, device=draw_device)
    offset_y, offset_x, mirrored = (t.to(images.device) for t in (offset_y, offset_x, mirrored))

    padded = images.new_zeros((n, images.shape[1], height + 2 * padding, width + 2 * padding))
    padded[:, :, padding : padding + height, padding : padding + width] = images
    ys = torch.arange(height, device=images.device)
    xs = torch.arange(width, device=images.device)
    # A mirrored crop reads its columns right to left.
    xs = torch.where(mirrored[:, None], xs.flip(0)[None, :], xs[None, :])
    rows = (offset_y[:, None] + ys[None, :])[:, None, :, None]  # (N, 1, H, 1)
    cols = (offset_x[:, None] + xs)[:, None, None, :]  # (N, 1, 1, W)
    batch = torch.arange(n, device=images.device)[:, None, None, None]
    channel = torch.arange(images.shape[1], device=images.device)[None, :, None, None]
    return padded[batch, channel, rows, cols]


def first_images(
    images: torch.Tensor, labels: torch.Tensor, n: int, what: str = "images"
) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``n`` images in file order, normalised as training normalises them,
    and their labels: the fixed batch a sharpness or a loss landscape is measured on.

    Args:
        images: uint8 ``(N, C, H, W)``: the training images a run uses.
        labels: Their classes.
        n: How many.
        what: The setting that asked for them, for the message.

    Raises:
        ValueError: ``n`` below 1 or beyond the ``N`` images there are.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"{what}: must be a whole number >= 1, got {n!r}")
    if n > len(labels):
        raise ValueError(f"{what}: {n} asked for, but the run trains on {len(labels)} images")
    return normalise(images[:n]), labels[:n]
