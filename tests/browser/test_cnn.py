"""The CNN lab end to end in headless Chromium against its own `streamlit run` server.

What only a browser shows: the polling fragment redraws the curves while the
worker trains, Stop reaches the running job, and a failed CIFAR-10 download
is reported on the page. Each test starts a server with an empty cache
folder, so the page trains on its synthetic shapes unless told otherwise.
The charts are read through plotly.js's own graph objects (``gd.data``).
"""

from __future__ import annotations

import hashlib
import http.server
import re
import tarfile
import threading
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from playwright.sync_api import expect

from optlab.train.data import CIFAR10_MD5
from tests.support.resources import ARTIFACTS, require_cifar_subset
from tests.support.server import serve_app

pytestmark = pytest.mark.browser

# Points drawn so far on the live chart (the figure with the "Training loss
# (smoothed)" panel): per trace, its name and how many x values it has.
LIVE_TRACES = """() => {
  const gd = [...document.querySelectorAll('.js-plotly-plot')].find(g =>
    g.layout && (g.layout.annotations || []).some(a => a.text === 'Training loss (smoothed)'));
  if (!gd || !gd.data) return null;
  return gd.data.map(t => ({name: t.name, points: (t.x || []).length}));
}"""
LIVE_POINTS = (
    f"() => {{ const t = ({LIVE_TRACES})(); return t ? t.reduce((n, x) => n + x.points, 0) : -1; }}"
)

OPTIMIZERS = ["SGD (lr=0.01, momentum=0.9)", "Adam"]


def server_env(cache: Path, **extra: str) -> dict[str, str]:
    """An empty cache folder and no data folder from the machine running the tests."""
    cache.mkdir(exist_ok=True)
    return {"OPTLAB_CACHE_DIR": str(cache), "OPTLAB_DATA_DIR": "", "OPTLAB_CIFAR_URL": "", **extra}


@contextmanager
def cnn_lab(browser, url: str):
    """A fresh tab on the CNN lab, reached from / (a fresh server's first deep link 404s)."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    try:
        tab = context.new_page()
        tab.set_default_timeout(60_000)
        tab.goto(url)
        tab.get_by_role("heading", name="Surface Playground").wait_for()
        tab.get_by_test_id("stSidebarNav").get_by_text("CNN lab").click()
        tab.get_by_role("heading", name="CNN lab").wait_for()
        sidebar(tab).get_by_role("button", name="Start").wait_for()
        assert tab.url.split("?")[0].endswith("/cnn-lab")
        yield tab
    finally:
        context.close()


def sidebar(tab):
    return tab.get_by_test_id("stSidebar")


def set_number(tab, label: str, value: int) -> None:
    """Types into a sidebar number input and commits it with Enter, as a user does."""
    box = sidebar(tab).get_by_label(label, exact=True)
    box.fill(str(value))
    box.press("Enter")
    tab.wait_for_function(
        "([label, value]) => [...document.querySelectorAll('[data-testid=stSidebar] input')]"
        ".some(i => i.getAttribute('aria-label') === label && i.value === value)",
        arg=[label, str(value)],
    )


def settle(tab) -> None:
    """Waits until no script run is in progress (the status widget is gone)."""
    tab.wait_for_timeout(300)
    tab.wait_for_function(
        "() => !document.querySelector('[data-testid=stStatusWidget]')", timeout=30_000
    )


def tiny_run(tab, steps: int) -> None:
    """Synthetic shapes, steps mode, 512 training and 100 test images, a test every 10 steps."""
    sidebar(tab).get_by_text("Synthetic shapes (offline)").click()
    settle(tab)  # a rerun leaves stale copies of the widgets until it ends
    sidebar(tab).get_by_text("steps", exact=True).click()
    sidebar(tab).get_by_label("Steps", exact=True).wait_for()
    settle(tab)
    for label, value in (
        ("Steps", steps),
        ("Train images", 512),
        ("Test images", 100),
        ("Test every", 10),
    ):
        set_number(tab, label, value)
    settle(tab)


RESULT_CELLS = """() => {
  const table = document.querySelector('[data-testid=stDataFrame]');  // the Results table
  if (!table) return [];
  return [...table.querySelectorAll('[role=columnheader], [role=gridcell]')]
    .map(c => c.innerText.trim());
}"""
RESULT_HEADER = ["optimizer", "test acc", "best acc", "test loss", "train loss", "status"]


def result_rows(tab, status: str) -> list[list[str]]:
    """The Results table's rows once every optimizer's status reads ``status``.

    The table is a canvas data grid; its cells are read from the grid's
    accessible DOM, which it fills a moment after drawing.
    """
    width = len(RESULT_HEADER)
    tab.wait_for_function(
        f"""([width, n, status]) => {{
          const cells = ({RESULT_CELLS})();
          const rows = [];
          for (let i = width; i < cells.length; i += width) rows.push(cells.slice(i, i + width));
          return rows.length === n && rows.every(r => r[width - 1] === status);
        }}""",
        arg=[width, len(OPTIMIZERS), status],
        timeout=20_000,
    )
    cells = tab.evaluate(RESULT_CELLS)
    assert cells[:width] == RESULT_HEADER
    return [cells[i : i + width] for i in range(width, len(cells), width)]


def no_exception(tab) -> None:
    assert tab.locator("[data-testid=stException]").count() == 0, tab.locator(
        "[data-testid=stException]"
    ).first.inner_text()


def test_live_curves_grow_while_training_and_stop_ends_the_run(browser, tmp_path):
    with (
        serve_app(tmp_path / "server.log", env=server_env(tmp_path / "cache")) as url,
        cnn_lab(browser, url) as tab,
    ):
        tiny_run(tab, steps=400)
        sidebar(tab).get_by_role("button", name="Start").click()
        progress = tab.get_by_text(re.compile(r"Step [\d,]+ of 400 · epoch \d+ of 50"))
        progress.wait_for()  # 400 steps, 512 // 64 = 8 per epoch: the typed values arrived

        # The curves grow while the job trains, with no click from us.
        tab.wait_for_function(f"() => ({LIVE_POINTS})() > 0")
        reads = [tab.evaluate(LIVE_POINTS)]
        for _ in range(3):
            tab.wait_for_function(f"() => ({LIVE_POINTS})() > {reads[-1]}", timeout=20_000)
            reads.append(tab.evaluate(LIVE_POINTS))
        assert reads == sorted(set(reads)), reads
        names = {t["name"] for t in tab.evaluate(LIVE_TRACES)}
        assert {*OPTIMIZERS, *(f"{n} (batch loss)" for n in OPTIMIZERS)} <= names
        stop = sidebar(tab).get_by_role("button", name="Stop")
        expect(stop).to_be_enabled()
        expect(sidebar(tab).get_by_role("button", name="Start")).to_be_disabled()

        stop.click()
        stopped = tab.get_by_text(re.compile(r"Stopped at step [\d,]+ \(stopped by you\)"))
        stopped.wait_for()
        step = int(re.search(r"step ([\d,]+)", stopped.inner_text())[1].replace(",", ""))
        assert 0 < step < 400
        tab.get_by_role("heading", name="Inside the trained models").wait_for()
        rows = result_rows(tab, f"stopped at step {step}")
        assert [r[0] for r in rows] == OPTIMIZERS
        # The curves end where the run stopped and stay drawn.
        traces = tab.evaluate(LIVE_TRACES)
        assert traces is not None and sum(t["points"] for t in traces) >= reads[-1]
        expect(sidebar(tab).get_by_role("button", name="Start")).to_be_enabled()
        expect(tab.get_by_role("button", name="Download checkpoint")).to_be_visible()
        no_exception(tab)
        ARTIFACTS.mkdir(exist_ok=True)
        tab.wait_for_timeout(1000)  # let plotly finish its last paint
        tab.screenshot(path=str(ARTIFACTS / "cnn_lab_stopped.png"))


class _ArchiveServer(http.server.ThreadingHTTPServer):
    requests: list[str]


class _ArchiveHandler(http.server.SimpleHTTPRequestHandler):
    def do_GET(self) -> None:
        self.server.requests.append(self.path)
        super().do_GET()

    def log_message(self, format: str, *args) -> None:  # quiet
        pass


@contextmanager
def serve_folder(folder: Path) -> Iterator[_ArchiveServer]:
    """A loopback HTTP server for ``folder``'s files, in a thread."""

    def handler(*args, **kwargs):
        return _ArchiveHandler(*args, directory=str(folder), **kwargs)

    server = _ArchiveServer(("127.0.0.1", 0), handler)
    server.requests = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def home_made_archive(subset: Path, folder: Path) -> tuple[Path, str]:
    """A cifar-10-python.tar.gz of the subset (not the official bytes); its path and md5."""
    folder.mkdir()
    archive = folder / "cifar-10-python.tar.gz"
    with tarfile.open(archive, "w:gz", compresslevel=1) as tar:
        for f in sorted(subset.iterdir()):
            tar.add(f, arcname=f"cifar-10-batches-py/{f.name}")
    return archive, hashlib.md5(archive.read_bytes(), usedforsecurity=False).hexdigest()


def test_download_with_a_wrong_checksum_is_refused_and_the_page_goes_on(browser, tmp_path):
    subset = require_cifar_subset()
    archive, md5 = home_made_archive(subset, tmp_path / "mirror")
    assert md5 != CIFAR10_MD5
    cache = tmp_path / "cache"
    with serve_folder(archive.parent) as mirror:
        archive_url = f"http://127.0.0.1:{mirror.server_port}/{archive.name}"
        env = server_env(cache, OPTLAB_CIFAR_URL=archive_url)
        with serve_app(tmp_path / "server.log", env=env) as url, cnn_lab(browser, url) as tab:
            expect(sidebar(tab).get_by_text("Synthetic shapes (offline)")).to_be_visible()
            sidebar(tab).get_by_text("CIFAR-10", exact=True).click()
            sidebar(tab).get_by_text("No CIFAR-10 here").wait_for()
            sidebar(tab).get_by_text(f"From {archive_url}").wait_for()
            expect(sidebar(tab).get_by_role("button", name="Start")).to_be_disabled()

            sidebar(tab).get_by_role("button", name="Download CIFAR-10").click()
            failed = sidebar(tab).get_by_text("Download failed:")
            failed.wait_for()
            message = failed.inner_text()
            assert f"download of {archive_url} has a bad checksum" in message
            assert f"md5 {md5}, expected {CIFAR10_MD5}" in message
            assert mirror.requests == [f"/{archive.name}"]  # it really came from the mirror
            assert sorted(p.name for p in cache.iterdir()) == []  # no archive, no .part
            no_exception(tab)

            # The server is up and the page still trains, on the synthetic shapes.
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=5) as resp:
                assert resp.status == 200
            tiny_run(tab, steps=12)
            expect(sidebar(tab).get_by_role("button", name="Start")).to_be_enabled()
            sidebar(tab).get_by_role("button", name="Start").click()
            tab.get_by_text(re.compile(r"Finished 12 steps in")).wait_for()
            tab.get_by_role("heading", name="Inside the trained models").wait_for()
            rows = result_rows(tab, "done")
            assert [r[0] for r in rows] == OPTIMIZERS
            assert all(0 <= float(r[i].removesuffix("%")) <= 100 for r in rows for i in (1, 2)), (
                rows
            )
            no_exception(tab)
            assert sorted(p.name for p in cache.iterdir()) == []
            ARTIFACTS.mkdir(exist_ok=True)
            tab.wait_for_timeout(1000)  # let plotly finish its last paint
            tab.screenshot(path=str(ARTIFACTS / "cnn_lab.png"))
