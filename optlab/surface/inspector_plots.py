"""The step inspector's figures: one step's directions drawn on its path, the
Hessian's axes there, and the sharpness (λ_max) along each path against its
optimizer's stability threshold. Pure functions of recorded steps, like
`optlab.surface.plots`, whose contour they draw on.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go

from optlab.charts import color, dash, html_subscripts, legend_below
from optlab.surface.curvature import Curvature, SharpnessPath
from optlab.surface.plots import DOTTED_POINTS, WEBGL_POINTS, contour_figure
from optlab.surface.surfaces import Surface
from optlab.surface.trajectory import Trajectory

#: Arrow colours of the step inspector, by direction.
ARROW_COLORS = ("#7F3C8D", "#11A579", "#000000")
#: Widths, widest first, so arrows that coincide (a first step) stay visible.
ARROW_WIDTHS = (7, 4.5, 2)
#: An arrow at its own scale (or the longest, at one scale) is this share of the view's diagonal.
ARROW_SHARE = 0.15


def arrow_scales(
    arrows: dict[str, tuple[float, float]], diagonal: float, common: bool
) -> dict[str, float]:
    """The factor each arrow is drawn at: every arrow `ARROW_SHARE` of ``diagonal``
    long (its own scale), or one factor for all that makes the longest so (``common``).

    At one scale, Adam's actual step is often invisible next to −γg_t (γ|g| can be
    thousands of times longer); at its own scale each arrow shows its direction, and
    its factor, written in the legend, says how much it was stretched. A zero arrow
    is drawn at factor 1 (a point).
    """
    lengths = {k: float(np.hypot(*d)) for k, d in arrows.items()}
    if common:
        longest = max(lengths.values(), default=0.0)
        factor = ARROW_SHARE * diagonal / longest if longest > 0 else 1.0
        return dict.fromkeys(arrows, factor)
    return {k: ARROW_SHARE * diagonal / n if n > 0 else 1.0 for k, n in lengths.items()}


def _factor_text(factor: float) -> str:
    return f"×{factor:.3g}".replace("e+0", "e").replace("e-0", "e-")


#: The inspected step's start θ_{t−1}, on the contour and on the λ_max chart.
INSPECTED_MARKER = dict(symbol="diamond", size=13, color="white", line=dict(width=2, color="black"))
#: Colours of the Hessian's axes u₁ and u₂ on the inspector's contour (teal and
#: magenta): apart from the step arrows' and the paths' own.
EIGEN_COLORS = ("#008695", "#E73F74")
#: Half the drawn length of a Hessian axis, as a share of the view's diagonal.
EIGEN_SHARE = 0.1
#: Plain-text subscripts of λ₁, λ₂ and u₁, u₂.
_SUB = ("₁", "₂")


def eigen_label(k: int, value: float) -> str:
    """``λ₁ = 2`` (``k`` = 0) or ``λ₂ = 20``: an eigenvalue as the inspector writes it."""
    return f"λ{_SUB[k]} = {value:.4g}"


def eigen_axes(
    curvature: Curvature, diagonal: float
) -> list[tuple[str, tuple[float, float], tuple[float, float]]]:
    """The Hessian's two axes as segments centred on its point, ``(label, start, end)``:
    u_k from ``point − L·u_k`` to ``point + L·u_k`` with L = `EIGEN_SHARE` of
    ``diagonal``. An eigenvector is an axis (its sign means nothing), so it is drawn
    with a head at each end, the same length for both: its eigenvalue, written on
    it, is the curvature along it. None where the Hessian is not finite."""
    if not curvature.finite:
        return []
    half = EIGEN_SHARE * diagonal
    px, py = curvature.point
    out = []
    for k, ((ux, uy), value) in enumerate(zip(curvature.axes, curvature.eigenvalues, strict=True)):
        start = (px - half * ux, py - half * uy)
        end = (px + half * ux, py + half * uy)
        out.append((eigen_label(k, value), start, end))
    return out


def label_ends(curvature: Curvature, arrows: dict[str, tuple[float, float]]) -> tuple[float, float]:
    """For each axis, the end its label goes at: +1 (along u_k) or −1. The end that
    points away from the step's arrows, so that no arrow covers the value."""
    units = [np.asarray(d) / n for d in arrows.values() if (n := float(np.hypot(*d))) > 0]
    pull = np.sum(units, axis=0) if units else np.zeros(2)
    return tuple(-1.0 if float(np.dot(pull, u)) > 0 else 1.0 for u in curvature.axes)  # type: ignore[return-value]


def _eigen_label_anchor(dx: float, dy: float) -> dict[str, str]:
    """A label's anchor beyond an axis's end pointing (dx, dy): it grows away from it."""
    xanchor = "left" if dx > 0.4 else "right" if dx < -0.4 else "center"
    yanchor = "bottom" if dy > 0.4 else "top" if dy < -0.4 else "middle"
    return dict(xanchor=xanchor, yanchor=yanchor)


def _arrow(
    fig: go.Figure, start: tuple[float, float], end: tuple[float, float], **style: object
) -> None:
    """An arrow from ``start`` to ``end`` in the data's coordinates, drawn as Plotly
    draws an annotation's arrow (``style``: its head, width, colour and name)."""
    (sx, sy), (ex, ey) = start, end
    fig.add_annotation(
        x=ex, y=ey, ax=sx, ay=sy, xref="x", yref="y", axref="x", ayref="y", showarrow=True,
        text="", **style,
    )  # fmt: skip


def _draw_eigen_axes(fig: go.Figure, curvature: Curvature, diagonal: float) -> None:
    axes = eigen_axes(curvature, diagonal)
    for k, (label, start, end) in enumerate(axes):
        c = EIGEN_COLORS[k]
        _arrow(
            fig,
            start,
            end,
            arrowside="end+start",
            arrowhead=2,
            arrowsize=1.1,
            arrowwidth=3,
            arrowcolor=c,
            name=f"{label} axis",
        )
        fig.add_scatter(
            x=[None],
            y=[None],
            mode="lines",
            line=dict(color=c, width=3, dash="dot"),
            name=f"Hessian axis u{_SUB[k]}: {label}",
        )
    if not axes:
        fig.add_scatter(x=[None], y=[None], mode="lines", name="Hessian not finite here (no axes)")


def _label_eigen_axes(
    fig: go.Figure,
    curvature: Curvature,
    diagonal: float,
    arrows: dict[str, tuple[float, float]],
) -> None:
    """Each axis's eigenvalue on a white card past the end away from the step's arrows,
    drawn over everything so it reads on any grey and under no arrow."""
    axes = eigen_axes(curvature, diagonal)
    ends = label_ends(curvature, arrows)
    px, py = curvature.point
    reach = EIGEN_SHARE * diagonal * 1.08
    for k, (label, _, _) in enumerate(axes):
        c = EIGEN_COLORS[k]
        dx, dy = ends[k] * curvature.axes[k][0], ends[k] * curvature.axes[k][1]
        fig.add_annotation(
            x=px + reach * dx,
            y=py + reach * dy,
            xref="x",
            yref="y",
            showarrow=False,
            text=f"<b>{label}</b>",
            font=dict(color=c, size=14),
            bgcolor="rgba(255,255,255,0.9)",
            bordercolor=c,
            borderpad=2,
            name=f"{label} label",
            **_eigen_label_anchor(dx, dy),
        )


def inspector_figure(
    surface: Surface,
    trajectory: Trajectory,
    index: int,
    point: tuple[float, float],
    arrows: dict[str, tuple[float, float]],
    evaluations: Sequence[tuple[float, float]] = (),
    *,
    common_scale: bool = False,
    curvature: Curvature | None = None,
    height: int = 480,
) -> go.Figure:
    """One optimizer's path with the inspected step's directions drawn at θ_{t-1}.

    Each arrow is drawn at its own scale (its factor in its legend entry), or
    with ``common_scale`` all at one factor so their lengths compare (the
    title says which). Points the function was evaluated at during the step
    (L-BFGS's line search) are drawn as numbered rings. With ``curvature`` (the
    Hessian at θ_{t-1}), its two axes are drawn through θ_{t-1} under the arrows
    (`eigen_axes`), each labelled with its eigenvalue.
    """
    # The path, its start and end markers in the optimizer's own colour and dash.
    fig = contour_figure(surface, [trajectory], height=height, palette=[index])
    (x0, x1), (y0, y1) = surface.bounds
    diagonal = float(np.hypot(x1 - x0, y1 - y0))
    if curvature is not None:
        _draw_eigen_axes(fig, curvature, diagonal)
    scales = arrow_scales(arrows, diagonal, common_scale)
    px, py = point
    for k, (label, (dx, dy)) in enumerate(arrows.items()):
        c = ARROW_COLORS[k % len(ARROW_COLORS)]
        scale = scales[label]
        _arrow(
            fig,
            (px, py),
            (px + scale * dx, py + scale * dy),
            arrowhead=3,
            arrowsize=1.2,
            arrowwidth=ARROW_WIDTHS[k % len(ARROW_WIDTHS)],
            arrowcolor=c,
            name=label,
        )
        shown = html_subscripts(label)
        if not common_scale:
            shown += f", drawn {_factor_text(scale)}"
        fig.add_scatter(x=[None], y=[None], mode="lines", line=dict(color=c, width=3), name=shown)
    if len(evaluations) > 1:
        fig.add_scatter(
            x=[e[0] for e in evaluations],
            y=[e[1] for e in evaluations],
            mode="markers+text",
            marker=dict(symbol="circle-open", size=11, color="#CC79A7", line=dict(width=2)),
            text=[str(i + 1) for i in range(len(evaluations))],
            textposition="top center",
            name=f"{len(evaluations)} evaluations in this step",
        )
    fig.add_scatter(
        x=[px],
        y=[py],
        mode="markers",
        marker=INSPECTED_MARKER,
        name="θ<sub>t−1</sub>",
    )
    if curvature is not None:
        _label_eigen_axes(fig, curvature, diagonal, arrows)
    factor = next(iter(scales.values()), 1.0)
    title = (
        f"arrows drawn {_factor_text(factor)}, all at one scale"
        if common_scale
        else "arrows drawn each at its own scale (factors in the legend)"
    )
    fig.update_layout(title=dict(text=title, font=dict(size=12), x=1, xanchor="right"))
    return fig


#: Width of a stability threshold's line (its path's own is 2.5).
THRESHOLD_WIDTH = 2


def _step_hover(label: str, what: str) -> str:
    return f"<b>{label}</b><br>step %{{x}}: {what} = %{{y:.4g}}<extra></extra>"


def sharpness_figure(
    paths: Sequence[SharpnessPath],
    *,
    palette: Sequence[int] | None = None,
    mark: tuple[int, int] | None = None,
    height: int = 360,
) -> go.Figure:
    """λ_max along each path against its optimizer's stability threshold.

    Each path's λ_max is drawn in its optimizer's colour and dash, every recorded
    point (x: steps taken, the point θ_s). An SGD path's threshold is a dotted line
    in the same colour, named with its formula and, when it stays the same, its
    value; other optimizers get none. ``mark`` = ``(path, step)`` puts a diamond
    on that path's λ_max at that step (the inspected step's start, θ_{t−1}).
    """
    fig = go.Figure()
    indices = list(palette) if palette is not None else list(range(len(paths)))
    for path, i in zip(paths, indices, strict=True):
        c, label = color(i), path.optimizer.label
        n = len(path.step)
        kind = go.Scattergl if n > WEBGL_POINTS else go.Scatter
        fig.add_trace(
            kind(
                x=list(path.step),
                y=list(path.lambda_max),
                mode="lines+markers" if n <= DOTTED_POINTS else "lines",
                line=dict(color=c, width=2.5, dash=dash(i)),
                marker=dict(size=4, color=c),
                name=f"{label}: λ_max",
                legendgroup=str(i),
                hoverlabel=dict(bgcolor=c, font=dict(color="white")),
                hovertemplate=_step_hover(label, "λ_max"),
            )
        )
        if not path.threshold:
            continue
        values = {v for v in path.threshold if v is not None}
        formula = " then ".join(path.formula)
        name = f"{label}: {formula}"
        if len(values) == 1:
            name += f" = {next(iter(values)):.4g}"
        fig.add_trace(
            kind(
                x=list(path.step),
                y=[math.nan if v is None else v for v in path.threshold],
                mode="lines",
                line=dict(color=c, width=THRESHOLD_WIDTH, dash="dot"),
                name=name,
                legendgroup=str(i),
                hoverlabel=dict(bgcolor=c, font=dict(color="white")),
                hovertemplate=_step_hover(label, formula or "threshold"),
            )
        )
    if mark is not None:
        which, step = mark
        path = paths[which]
        value = path.lambda_max[path.step.index(step)]
        fig.add_scatter(
            x=[step],
            y=[value],
            mode="markers",
            marker=INSPECTED_MARKER,
            name=f"θ<sub>t−1</sub> (step {step}): λ_max = {value:.4g}",
            hovertemplate=f"θ<sub>t−1</sub>, step {step}: λ_max = %{{y:.4g}}<extra></extra>",
        )
    fig.update_xaxes(title_text="steps taken (the point θ<sub>s</sub>)")
    fig.update_yaxes(title_text="λ_max of the Hessian", zeroline=True)
    fig.update_layout(height=height, margin=dict(l=10, r=10, t=20, b=10), plot_bgcolor="white")
    legend_below(fig)
    return fig
