"""Tests for optlab.surface.replay: Plotly frames that draw every turn of every path.

Frames are read as data (typed arrays decoded), the way the browser receives them.
"""

from __future__ import annotations

import base64
import io

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from optlab.surface.replay import (
    DENSE_STEPS,
    FRAME_POINTS,
    MAX_FRAMES,
    MIN_FRAMES,
    SPEEDS,
    frame_count,
    frame_steps,
    path_points,
    replay_figure,
)
from optlab.surface.surfaces import get_surface
from optlab.surface.trajectory import Trajectory
from tests.support.paths import (
    as_drawn,
    hand_made,
    long_trajectory,
    points,
    sign_changes,
    values,
    zigzag_trajectory,
)
from tests.surface.conftest import STEPS

ROSENBROCK = get_surface("rosenbrock")


def frame_paths(frame, k: int):
    """The path and head traces of optimizer k in a frame."""
    return frame.data[2 * k], frame.data[2 * k + 1]


def test_short_runs_get_a_frame_per_step(rosen: list[Trajectory]) -> None:
    fig = replay_figure(ROSENBROCK, rosen)
    assert [f.name for f in fig.frames] == [str(k) for k in range(STEPS + 1)]
    (slider,) = fig.layout.sliders
    assert [list(s.args[0]) for s in slider.steps] == [[f.name] for f in fig.frames]
    assert all(s.method == "animate" for s in slider.steps)


def test_the_issues_500_step_zigzag_is_replayed_step_by_step_flip_by_flip() -> None:
    """SGD flipping sign on every one of 500 steps: one frame per step, and the last
    frame keeps all 500 flips (the old replay drew a smooth one-sided curve)."""
    tr = zigzag_trajectory(500)
    fig = replay_figure(ROSENBROCK, [tr, long_trajectory(500, "adam"), long_trajectory(500)])
    assert len(fig.frames) == 501
    path, _ = frame_paths(fig.frames[-1], 0)
    assert sign_changes(values(path.y)) == 500
    # The head alternates sides from frame to frame, as the run does.
    heads = [values(frame_paths(f, 0)[1].y)[0] for f in fig.frames[:50]]
    assert sign_changes(heads) == 49


def test_a_zigzag_that_spirals_below_float32s_range_keeps_its_last_flips() -> None:
    """The browser's case: SGD at lr 0.095 on x**2 + 10*y**2 shrinks y by 0.9 a step,
    to 1.7e-46 at step 1000, which float32 rounds to 0 (and then no sign to flip)."""
    k = np.arange(1001)
    tr = hand_made(-1.5 + 2.5 * k / 1000, (-0.9) ** k, "sgd")
    assert np.abs(tr.y[-1]) < np.finfo(np.float32).tiny
    fig = replay_figure(ROSENBROCK, [tr])
    path, _ = frame_paths(fig.frames[-1], 0)
    assert sign_changes(values(path.y)) == 1000


def test_the_last_frame_is_the_whole_path(rosen: list[Trajectory]) -> None:
    fig = replay_figure(ROSENBROCK, rosen)
    for k, tr in enumerate(rosen):
        path, head = frame_paths(fig.frames[-1], k)
        assert points(path) == [as_drawn(x, y) for x, y in zip(tr.x, tr.y, strict=True)]
        assert points(head) == [as_drawn(tr.x[-1], tr.y[-1])]


def test_a_frame_shows_everything_up_to_its_step_and_nothing_beyond(
    rosen: list[Trajectory],
) -> None:
    fig = replay_figure(ROSENBROCK, rosen)
    for frame in fig.frames:
        step = int(frame.name)
        for k, tr in enumerate(rosen):
            path, head = frame_paths(frame, k)
            upto = min(step, tr.step[-1])
            seen = [as_drawn(x, y) for x, y in zip(tr.x, tr.y, strict=True)][: upto + 1]
            assert points(path) == seen, (step, k)
            assert points(head) == [seen[-1]]


def test_a_long_run_keeps_every_turn_in_every_frame() -> None:
    """5000 steps of zig-zag and a 5000-step spiral: fewer frames, each holding every
    local extremum of x and y up to its step."""
    zig, spiral = zigzag_trajectory(5000), long_trajectory(5000)
    fig = replay_figure(ROSENBROCK, [zig, spiral])
    assert MIN_FRAMES <= len(fig.frames) < 5001
    for frame in (*fig.frames[:: max(1, len(fig.frames) // 7)], fig.frames[-1]):
        step = int(frame.name)
        zig_path, _ = frame_paths(frame, 0)
        assert sign_changes(values(zig_path.y)) == step
        spiral_path, _ = frame_paths(frame, 1)
        for axis, drawn in (("x", spiral_path.x), ("y", spiral_path.y)):
            full = np.asarray(getattr(spiral, axis)[: step + 1], dtype=np.float32)
            turns = full[1:-1][np.diff(np.sign(np.diff(full))) != 0]
            assert set(turns.tolist()) <= set(values(drawn).tolist()), (step, axis)


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(2, 4 * DENSE_STEPS),
    seed=st.integers(0, 2**16),
)
def test_path_points_never_drop_an_extremum(n: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    xs, ys = rng.standard_normal(n).cumsum(), rng.integers(-2, 3, n).cumsum().astype(float)
    keep = path_points(xs, ys)
    assert keep[0] == 0 and keep[-1] == n - 1 and np.all(np.diff(keep) > 0)
    kept = set(keep.tolist())
    for v in (xs, ys):
        d = np.sign(np.diff(v))
        turns = np.flatnonzero(d[1:] != d[:-1]) + 1
        assert set(turns.tolist()) <= kept
    # Between two kept points at most len // DENSE_STEPS steps go undrawn.
    if n > DENSE_STEPS + 1:
        assert np.diff(keep).max() <= n // DENSE_STEPS
    else:
        assert len(keep) == n


def test_frame_count_keeps_the_frames_payload_bounded() -> None:
    assert frame_count(points=3 * 501, last_step=500) == 501
    assert frame_count(points=8 * 5001, last_step=5000) == max(
        MIN_FRAMES, 2 * FRAME_POINTS // (8 * 5001)
    )
    assert frame_count(points=10, last_step=5) == 6
    assert frame_count(points=1, last_step=10**6) == MAX_FRAMES
    assert list(frame_steps(3, 10)) == [0, 1, 2, 3]
    steps = frame_steps(5000, 40)
    assert steps[0] == 0 and steps[-1] == 5000 and len(steps) == 40


def test_the_figure_can_open_at_any_step(rosen: list[Trajectory]) -> None:
    """The page's step box: the figure shows exactly that step (frames may skip it),
    with the slider on the frame at or before it."""
    tr = long_trajectory(5000)
    fig = replay_figure(ROSENBROCK, [tr], at_step=1234)
    path, head = fig.data[0], fig.data[1]
    assert points(head) == [as_drawn(tr.x[1234], tr.y[1234])]
    assert points(path)[-1] == as_drawn(tr.x[1234], tr.y[1234])
    names = [int(f.name) for f in fig.frames]
    active = fig.layout.sliders[0].active
    assert names[active] <= 1234 < (names[active + 1] if active + 1 < len(names) else 10**9)
    # Out-of-range steps are clamped to the run.
    assert points(replay_figure(ROSENBROCK, rosen, at_step=10**6).data[1]) == [
        as_drawn(rosen[0].x[-1], rosen[0].y[-1])
    ]


def test_play_pause_and_every_speed_animate(rosen: list[Trajectory]) -> None:
    fig = replay_figure(ROSENBROCK, rosen)
    buttons, speeds = fig.layout.updatemenus
    labels = [b.label for b in buttons.buttons]
    assert any("Play" in label for label in labels) and any("Pause" in label for label in labels)
    assert all(b.method == "animate" for b in buttons.buttons + speeds.buttons)
    durations = [b.args[1]["frame"]["duration"] for b in speeds.buttons]
    assert durations == list(SPEEDS.values()) and len(set(durations)) == len(durations)
    # The buttons' row sits above the slider, never on it.
    (slider,) = fig.layout.sliders
    assert buttons.y == speeds.y and slider.y < buttons.y and slider.yanchor == "top"


def test_the_background_is_an_image_over_the_bounds(rosen: list[Trajectory]) -> None:
    fig = replay_figure(ROSENBROCK, rosen)
    assert not [t for t in fig.data if t.type in ("contour", "heatmap")]
    (image,) = fig.layout.images
    (x0, x1), (y0, y1) = ROSENBROCK.bounds
    assert (image.xref, image.yref) == ("x", "y")
    assert (image.x, image.y, image.sizex, image.sizey) == (x0, y1, x1 - x0, y1 - y0)
    assert image.layer == "below"
    assert list(fig.layout.xaxis.range) == [x0, x1]
    assert list(fig.layout.yaxis.range) == [y0, y1]


def test_the_image_is_the_right_way_up() -> None:
    fig = replay_figure(ROSENBROCK, [], n=60)
    source = fig.layout.images[0].source
    assert source.startswith("data:image/png;base64,")
    pixels = np.asarray(Image.open(io.BytesIO(base64.b64decode(source.split(",", 1)[1]))))
    pixels = pixels if pixels.ndim == 2 else pixels[..., 0]
    # Dark is low. The top-left corner is (-2, 3), where f = 109; the bottom-left
    # corner is (-2, -1), where f = 2509. An upside-down image swaps them.
    assert pixels[0, 0] < pixels[-1, 0]
    (x0, x1), (y0, y1) = ROSENBROCK.bounds
    rows, cols = pixels.shape
    row = round((y1 - 1.0) / (y1 - y0) * (rows - 1))
    col = round((1.0 - x0) / (x1 - x0) * (cols - 1))
    assert pixels[row, col] == pixels.min(), "the minimum (1, 1) should be darkest"
