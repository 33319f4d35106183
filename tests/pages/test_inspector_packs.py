"""The step inspector's extras for the pytorch_optimizer pack under AppTest: Schedule-Free's
x, y and z at the chosen step, and Prodigy's d estimate plotted over the steps."""

from __future__ import annotations

import json
import os
from types import SimpleNamespace

import pytest

from optlab.optim.config import OptimizerConfig
from optlab.surface.inspector import record_steps
from optlab.surface.problem import Problem
from optlab.surface.run import SurfaceRunConfig
from optlab.surface.sequences import trace_values
from tests.pages.test_inspector import page

if os.environ.get("CI") != "true":
    pytest.importorskip("pytorch_optimizer")
pytestmark = pytest.mark.skipif(
    "pytorch_optimizer" not in os.environ.get("OPTLAB_PACKS", ""),
    reason="the pack is loaded when OPTLAB_PACKS names it (make test does)",
)


def test_schedule_free_shows_x_y_and_z_at_the_chosen_step() -> None:
    at = page({"opt": ["po_sf_adamw:lr=0.05"], "steps": ["30"]})
    at.slider(key="inspect_step").set_value(5).run()
    assert not at.exception
    cfg = SurfaceRunConfig((OptimizerConfig.from_text("po_sf_adamw:lr=0.05"),), Problem(steps=30))
    snap = record_steps(cfg, 0)[4]
    text = " ".join(m.value for m in at.markdown)
    assert "Three sequences" in text
    assert f"({snap.point[0]:.6g}, {snap.point[1]:.6g})" in text  # x
    assert f"({snap.train_point[0]:.6g}, {snap.train_point[1]:.6g})" in text  # y
    z = snap.state_before["z"]
    assert f"({z[0]:.6g}, {z[1]:.6g})" in text
    names = [trace.name for chart in at.get("plotly_chart") for trace in _traces(chart)]
    assert any(name and name.startswith("y<sub>t−1</sub>") for name in names)


def test_prodigy_plots_its_d_estimate() -> None:
    at = page({"opt": ["po_prodigy"], "steps": ["40"]})
    assert not at.exception
    cfg = SurfaceRunConfig((OptimizerConfig.from_text("po_prodigy"),), Problem(steps=40))
    want = trace_values(record_steps(cfg, 0), "d")
    plotted = [t for c in at.get("plotly_chart") for t in _traces(c) if t.name == "d"]
    assert plotted and list(plotted[0].y) == want


def _traces(chart) -> list:
    """The traces of an AppTest plotly chart element (its figure as JSON)."""
    spec = json.loads(chart.proto.spec)
    return [SimpleNamespace(name=t.get("name"), y=t.get("y", [])) for t in spec.get("data", [])]
