"""The optimizer registry: plugins load when first needed, and nothing builds what it lists.

The first ``torch.optim`` construction in a process imports ``torch._dynamo``
(about two seconds) and a plugin's smoke test builds one, so start-up is fast
only if neither happens before something needs it. These tests run fresh
interpreters and look at which modules got loaded.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from optlab.optim import registry
from optlab.optim.builtin import BUILTIN_OPTIMIZERS, PRESETS
from optlab.optim.config import OptimizerConfig
from tests.support.resources import ROOT

EXAMPLES = str(ROOT / "optlab" / "examples")

_PROBE = """
import json, sys
steps = []
def loaded():
    return {
        "plugins": any(name.startswith("_optlab_plugin_") for name in sys.modules),
        "dynamo": "torch._dynamo" in sys.modules,
    }
import optlab.cli, optlab.surface.run, optlab.links
steps.append(loaded())
from optlab.optim.registry import get_spec
get_spec("adam")
steps.append(loaded())
from optlab.cli import main
main(["list"])
steps.append(loaded())
try:
    get_spec("lion")
except ValueError:
    pass  # no plugins named
steps.append(loaded())
print(json.dumps(steps))
"""


def _probe(plugins: str) -> list[dict[str, bool]]:
    # No pack: what is measured here is what plugins cost (a pack would load like one).
    env = {k: v for k, v in os.environ.items() if k != "OPTLAB_PACKS"}
    env["OPTLAB_PLUGINS"] = plugins
    proc = subprocess.run(
        [sys.executable, "-c", _PROBE],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_nothing_is_built_or_loaded_until_needed() -> None:
    imported, built_in, listed, plugin = _probe(EXAMPLES)
    # Importing the whole CLI, the engine and the links loads no plugin, builds nothing.
    assert imported == {"plugins": False, "dynamo": False}
    # A built-in key needs no plugin.
    assert built_in == {"plugins": False, "dynamo": False}
    # `list` lists the plugins, so it loads and smoke-tests them (which builds one).
    assert listed["plugins"] is True
    assert plugin["plugins"] is True


def test_list_builds_no_optimizer_without_plugins() -> None:
    imported, built_in, listed, _ = _probe("")
    assert imported == built_in == listed == {"plugins": False, "dynamo": False}


def test_every_optimizer_is_listed_once_built_ins_first() -> None:
    keys = [spec.key for spec in registry.optimizers()]
    assert len(keys) == len(set(keys))
    assert keys[: len(BUILTIN_OPTIMIZERS)] == [spec.key for spec in BUILTIN_OPTIMIZERS]


def test_slot_choices_put_presets_beside_their_optimizer() -> None:
    choices = list(registry.choices())
    for preset in PRESETS:
        at = choices.index(preset.key)
        assert registry.choice_spec(preset.key).key == preset.optimizer
        # Right after its optimizer, or after another preset of it.
        before = choices[at - 1]
        assert before == preset.optimizer or registry.preset(before) is not None


@pytest.mark.parametrize("preset", PRESETS, ids=lambda p: p.key)
def test_a_preset_s_text_is_its_config_s(preset) -> None:
    assert registry.preset_text(preset) == OptimizerConfig.create(preset.key).to_text()


def test_an_unknown_key_names_the_known_ones() -> None:
    with pytest.raises(ValueError, match=r"unknown optimizer 'nope' \(known: sgd, adam"):
        registry.get_spec("nope")
    with pytest.raises(ValueError, match="nesterov"):
        registry.choice_spec("nope")
