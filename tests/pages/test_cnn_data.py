"""The CNN lab's data source under AppTest: share links carry it, a missing one is said
plainly with what this server has instead, and the download offer never contradicts itself.

Real page script, real loaders: the shared CIFAR-10 subset stands for "this server
has CIFAR-10", an empty cache folder for "it has none".
"""

from __future__ import annotations

from streamlit.testing.v1 import AppTest

from optlab.links import train_to_params
from optlab.train.run import TrainRunConfig
from optlab.ui.cnn import settings
from tests.pages.test_cnn import button, clean_environment, cnn_page, no_problems, tiny
from tests.support.resources import APP, require_cifar_subset

__all__ = ["clean_environment"]  # the autouse fixture: an empty cache, no data folder

#: Every text a box of these kinds shows on the page.
BOXES = ("warning", "caption", "info", "success", "error", "markdown")


def texts(at: AppTest) -> str:
    return "\n".join(e.value for box in BOXES for e in getattr(at, box))


def query(at: AppTest) -> dict[str, list[str]]:
    return {k: v if isinstance(v, list) else [v] for k, v in at.query_params.items()}


def open_link(params: dict[str, list[str]]) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=120)
    at.query_params.update(params)
    at.switch_page("pages/cnn.py").run()
    assert not at.exception, [e.message for e in at.exception]
    return at


def shared_config() -> TrainRunConfig:
    """The link's comparison: what a user set up before sharing it (not the defaults)."""
    at = tiny(cnn_page(), steps=9, eval_every=3)
    at.selectbox(key="cnn_slot1_choice").set_value("rmsprop").run()
    return settings.config_from_state(at.session_state)


def test_a_link_made_with_a_typed_folder_opens_on_that_cifar10():
    subset = require_cifar_subset()
    maker = cnn_page()
    maker.radio(key="cnn_data").set_value("cifar10").run()
    maker.text_input(key="cnn_data_dir").set_value(str(subset)).run()
    no_problems(maker)
    link = query(maker)
    assert link["data"] == ["cifar10"] and link["dir"] == [str(subset)]

    at = open_link(link)  # another browser on the same server
    no_problems(at)
    assert at.radio(key="cnn_data").value == "cifar10"
    assert at.text_input(key="cnn_data_dir").value == str(subset)
    assert any(f"CIFAR-10 from folder {subset}" in s.value for s in at.success)
    assert not button(at, "Start").disabled
    assert "does not have it" not in texts(at)
    assert query(at) == link  # and its address bar is the same link
    # Synthetic shapes need no folder: the link leaves it out.
    at.radio(key="cnn_data").set_value("synthetic").run()
    assert query(at)["data"] == ["synthetic"] and "dir" not in query(at)


def test_a_cifar10_link_on_a_server_without_it_says_so_and_offers_the_synthetic_set():
    cfg = shared_config()
    at = open_link(
        {k: v if isinstance(v, list) else [v] for k, v in train_to_params(cfg, "cifar10").items()}
    )
    assert not at.exception
    (notice,) = [w.value for w in at.warning if "This link trains on CIFAR-10" in w.value]
    assert "but this server does not have it (no CIFAR-10 data available: no data folder" in notice
    assert "Every other setting is kept" in notice
    assert "download CIFAR-10 in the sidebar" in notice  # nothing named: it can download
    assert button(at, "Start").disabled
    assert settings.config_from_state(at.session_state) == cfg  # nothing of the link is lost

    button(at, "Train on the synthetic shapes").click().run()
    no_problems(at)
    assert at.radio(key="cnn_data").value == "synthetic"
    assert settings.config_from_state(at.session_state) == cfg
    assert not button(at, "Start").disabled
    assert "does not have it" not in texts(at)
    assert query(at)["data"] == ["synthetic"]


def test_a_link_to_a_folder_this_server_lacks_offers_the_servers_own_cifar10(monkeypatch):
    subset = require_cifar_subset()
    monkeypatch.setenv("OPTLAB_DATA_DIR", str(subset))
    cfg = shared_config()
    params = train_to_params(cfg, "cifar10", "/data/on/the/other/server")
    at = open_link({k: v if isinstance(v, list) else [v] for k, v in params.items()})
    assert not at.exception
    (notice,) = [w.value for w in at.warning if "This link trains on CIFAR-10" in w.value]
    assert "from the folder /data/on/the/other/server, but this server does not have it" in notice
    assert "or on this server's own CIFAR-10" in notice
    assert "download" not in notice  # a named folder is all that is read: nothing to download
    assert not [b for b in at.button if b.label == "Download CIFAR-10"]
    assert button(at, "Start").disabled

    button(at, "Use this server's CIFAR-10").click().run()
    no_problems(at)
    assert at.text_input(key="cnn_data_dir").value == ""
    assert any(f"CIFAR-10 from folder {subset}" in s.value for s in at.success)
    assert settings.config_from_state(at.session_state) == cfg
    assert not button(at, "Start").disabled
    assert "dir" not in query(at) and query(at)["data"] == ["cifar10"]


def test_download_is_offered_exactly_when_it_can_help_and_never_called_disabled():
    at = cnn_page()
    at.radio(key="cnn_data").set_value("cifar10").run()
    assert not at.exception
    # Nothing named, nothing cached: the page offers the download, and says so.
    assert button(at, "Download CIFAR-10")
    assert "download disabled" not in texts(at).lower()
    assert any("No CIFAR-10 here: no CIFAR-10 data available" in w.value for w in at.warning)
    # A folder typed: only it is read, so no download, and the page says why.
    at.text_input(key="cnn_data_dir").set_value("/no/such/folder").run()
    assert not at.exception
    assert not [b for b in at.button if b.label == "Download CIFAR-10"]
    assert "download disabled" not in texts(at).lower()
    assert any("only that folder is read" in c.value for c in at.caption)
    # Cleared again: the offer is back.
    at.text_input(key="cnn_data_dir").set_value("").run()
    assert button(at, "Download CIFAR-10")


def test_a_server_data_folder_offers_no_download_and_says_why(monkeypatch, tmp_path):
    monkeypatch.setenv("OPTLAB_DATA_DIR", str(tmp_path / "missing"))
    at = cnn_page()
    at.radio(key="cnn_data").set_value("cifar10").run()
    assert not at.exception
    assert not [b for b in at.button if b.label == "Download CIFAR-10"]
    assert any("only from $OPTLAB_DATA_DIR" in c.value for c in at.caption)
    assert "download disabled" not in texts(at).lower()
    (notice,) = [w.value for w in at.warning if "CIFAR-10 is chosen" in w.value]
    assert "download" not in notice
