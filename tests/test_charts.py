"""The optimizers' colours and dashes: distinct for every viewer, the same on every chart."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from optlab.charts import COLORS, DASHES, color, dash

#: Machado, Oliveira & Fernandes (2009), "A Physiologically-based Model for Simulation
#: of Color Vision Deficiency", severity 1.0, applied to linear RGB.
DEFICIENCIES = {
    "normal": np.eye(3),
    "protanopia": np.array(
        [
            [0.152286, 1.052583, -0.204868],
            [0.114503, 0.786281, 0.099216],
            [-0.003882, -0.048116, 1.051998],
        ]
    ),
    "deuteranopia": np.array(
        [
            [0.367322, 0.860646, -0.227968],
            [0.280085, 0.672501, 0.047413],
            [-0.011820, 0.042940, 0.968881],
        ]
    ),
    "tritanopia": np.array(
        [
            [1.255528, -0.076749, -0.178779],
            [-0.078411, 0.930809, 0.147602],
            [0.004733, 0.691367, 0.303900],
        ]
    ),
}
#: CIE76 colour difference two lines must keep (about 2.3 is "just noticeable"; 15
#: reads as different colours at a glance, across a projected room).
MIN_DELTA_E = 15.0


def linear_rgb(hex_color: str) -> np.ndarray:
    srgb = np.array([int(hex_color[i : i + 2], 16) for i in (1, 3, 5)]) / 255
    return np.where(srgb <= 0.04045, srgb / 12.92, ((srgb + 0.055) / 1.055) ** 2.4)


def cie_lab(rgb: np.ndarray) -> np.ndarray:
    to_xyz = np.array(
        [[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]]
    )
    t = to_xyz @ np.clip(rgb, 0, 1) / np.array([0.95047, 1.0, 1.08883])
    f = np.where(t > 0.008856, np.cbrt(t), 7.787 * t + 16 / 116)
    return np.array([116 * f[1] - 16, 500 * (f[0] - f[1]), 200 * (f[1] - f[2])])


@pytest.mark.parametrize("vision", list(DEFICIENCIES))
def test_every_two_optimizer_colours_stay_apart(vision: str) -> None:
    seen = {c: cie_lab(DEFICIENCIES[vision] @ linear_rgb(c)) for c in COLORS}
    for a, b in itertools.combinations(COLORS, 2):
        delta = float(np.linalg.norm(seen[a] - seen[b]))
        assert delta >= MIN_DELTA_E, f"{a} and {b} differ by only {delta:.1f} under {vision}"


def test_eight_optimizers_get_eight_different_styles() -> None:
    assert len(set(COLORS)) == len(COLORS) == 8
    styles = {(color(i), dash(i)) for i in range(8)}
    assert len(styles) == 8
    assert dash(0) == "solid" and set(DASHES) <= {
        "solid",
        "dot",
        "dash",
        "longdash",
        "dashdot",
        "longdashdot",
    }
    # Past eight the styles repeat, in the same order.
    assert (color(8), dash(8)) == (color(0), dash(0))
