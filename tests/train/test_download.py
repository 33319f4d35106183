"""Tests for the CIFAR-10 download path against a local HTTP server on 127.0.0.1.

The server serves a tar.gz built here from the shared real-format subset, in
the official layout, plus broken variants: a truncated transfer and a server
error. Nothing leaves the machine.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.server
import io
import itertools
import socket
import tarfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from optlab.train.data import (
    ARCHIVE_NAME,
    CACHE_DIR_ENV,
    CIFAR10_URL,
    DATA_DIR_ENV,
    FOLDER_NAME,
    SYNTHETIC_CLASSES,
    URL_ENV,
    DataError,
    DownloadError,
    archive_url,
    download,
    load_cifar10,
    md5_of,
)
from tests.support.resources import require_cifar_subset

PROXY_VARS = ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY")


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(DATA_DIR_ENV, raising=False)
    monkeypatch.delenv(CACHE_DIR_ENV, raising=False)
    # A proxy from the environment would carry 127.0.0.1 requests off the machine.
    for name in PROXY_VARS:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="module")
def archive() -> bytes:
    """The official archive's layout, built from the shared subset."""
    subset = require_cifar_subset()
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz", compresslevel=1) as tar:
        for path in sorted(subset.iterdir()):
            tar.add(path, arcname=f"{FOLDER_NAME}/{path.name}")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def archive_md5(archive: bytes) -> str:
    return hashlib.md5(archive, usedforsecurity=False).hexdigest()


@dataclass
class Server:
    url: str
    requests: list[str] = field(default_factory=list)


@pytest.fixture(scope="module")
def server(archive: bytes) -> Iterator[Server]:
    """A bounded HTTP server on 127.0.0.1 (free port), shut down afterwards."""
    requests: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        timeout = 10  # a stuck client cannot hold a handler thread for long

        def do_GET(self) -> None:
            requests.append(self.path)
            if self.path == "/cifar.tar.gz":
                self._send(archive, len(archive))
            elif self.path == "/no-length.tar.gz":
                self._send(archive, None)
            elif self.path == "/truncated.tar.gz":
                # Promise the whole archive, send a third, hang up.
                self._send(archive[: len(archive) // 3], len(archive))
                self.close_connection = True
            elif self.path == "/error":
                self.send_error(500, "Internal Server Error")
            else:
                self.send_error(404)

        def _send(self, body: bytes, length: int | None) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/gzip")
            if length is not None:
                self.send_header("Content-Length", str(length))
            self.end_headers()
            # The client may hang up mid-body: a download the test stopped early.
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass  # keep the test output clean

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield Server(f"http://127.0.0.1:{httpd.server_address[1]}", requests)
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=10)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_download_then_cache(
    tmp_path: Path, server: Server, archive: bytes, archive_md5: str
) -> None:
    cache = tmp_path / "cache"
    url = f"{server.url}/cifar.tar.gz"
    calls: list[tuple[int, int | None]] = []
    data = load_cifar10(
        None, cache_dir=cache, url=url, md5=archive_md5, progress=lambda *a: calls.append(a)
    )
    assert data.kind == "download" and url in data.source
    assert (len(data.train), len(data.test)) == (5085, 1017)
    assert md5_of(cache / ARCHIVE_NAME) == archive_md5
    assert sorted(p.name for p in cache.iterdir()) == sorted([ARCHIVE_NAME, FOLDER_NAME])

    # The progress callback saw the bytes arrive, in order, up to the total.
    done = [d for d, _ in calls]
    assert done[0] == 0 and done[-1] == len(archive)
    assert all(a < b for a, b in itertools.pairwise(done))
    assert len(done) > 10 and {t for _, t in calls} == {len(archive)}

    seen = len(server.requests)
    again = load_cifar10(None, cache_dir=cache, url=url, md5=archive_md5)
    assert again.kind == "cache" and str(cache) in again.source
    assert len(server.requests) == seen  # no network the second time
    assert again.train.images.equal(data.train.images)


def test_cached_archive_is_extracted_without_network(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, archive: bytes, archive_md5: str
) -> None:
    # Found through the environment; the unreachable URL proves it is not used.
    (tmp_path / ARCHIVE_NAME).write_bytes(archive)
    monkeypatch.setenv(CACHE_DIR_ENV, str(tmp_path))
    url = f"http://127.0.0.1:{_closed_port()}/cifar.tar.gz"
    data = load_cifar10(url=url, md5=archive_md5, synthetic=False)
    assert data.kind == "cache" and len(data.test) == 1017
    assert (tmp_path / FOLDER_NAME / "data_batch_1").is_file()


def test_stale_cached_archive_is_replaced_by_a_download(
    tmp_path: Path, server: Server, archive: bytes, archive_md5: str
) -> None:
    (tmp_path / ARCHIVE_NAME).write_bytes(archive[:1000])
    url = f"{server.url}/cifar.tar.gz"
    data = load_cifar10(cache_dir=tmp_path, url=url, md5=archive_md5, synthetic=False)
    assert data.kind == "download"
    assert md5_of(tmp_path / ARCHIVE_NAME) == archive_md5


def test_download_without_content_length(
    tmp_path: Path, server: Server, archive: bytes, archive_md5: str
) -> None:
    calls: list[tuple[int, int | None]] = []
    dest = tmp_path / "a.tar.gz"
    url = f"{server.url}/no-length.tar.gz"
    assert download(url, dest, archive_md5, progress=lambda *a: calls.append(a)) == dest
    assert dest.read_bytes() == archive
    assert calls[-1] == (len(archive), None)


def test_bad_checksum_leaves_nothing_and_falls_back(tmp_path: Path, server: Server) -> None:
    url = f"{server.url}/cifar.tar.gz"
    with pytest.raises(DownloadError, match="bad checksum") as info:
        download(url, tmp_path / ARCHIVE_NAME, "0" * 32)
    assert "\n" not in str(info.value)
    assert list(tmp_path.iterdir()) == []

    cache = tmp_path / "cache"
    data = load_cifar10(None, cache_dir=cache, url=url, md5="0" * 32, synthetic_size=(100, 50))
    assert data.kind == "synthetic" and data.classes == SYNTHETIC_CLASSES
    assert "synthetic" in data.source and "bad checksum" in data.source
    assert list(cache.iterdir()) == []
    with pytest.raises(DataError, match="bad checksum"):
        load_cifar10(None, cache_dir=cache, url=url, md5="0" * 32, synthetic=False)


def test_truncated_transfer(tmp_path: Path, server: Server, archive_md5: str) -> None:
    with pytest.raises(DownloadError, match=r"truncated|incomplete"):
        download(f"{server.url}/truncated.tar.gz", tmp_path / ARCHIVE_NAME, archive_md5)
    assert list(tmp_path.iterdir()) == []


def test_server_error(tmp_path: Path, server: Server, archive_md5: str) -> None:
    with pytest.raises(DownloadError, match="HTTP 500"):
        download(f"{server.url}/error", tmp_path / ARCHIVE_NAME, archive_md5)
    assert list(tmp_path.iterdir()) == []
    data = load_cifar10(
        None,
        cache_dir=tmp_path,
        url=f"{server.url}/error",
        md5=archive_md5,
        synthetic_size=(10, 10),
    )
    assert data.kind == "synthetic" and "HTTP 500" in data.source


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://127.0.0.1:{port}/cifar.tar.gz", "failed"),
        ("file:///etc/passwd", "only http"),
        ("ftp://127.0.0.1/cifar.tar.gz", "only http"),
    ],
    ids=["refused", "file", "ftp"],
)
def test_unreachable_or_refused_url(tmp_path: Path, url: str, message: str) -> None:
    with pytest.raises(DownloadError, match=message):
        download(url.format(port=_closed_port()), tmp_path / ARCHIVE_NAME, "0" * 32, timeout=5)
    assert list(tmp_path.iterdir()) == []


def test_failing_progress_callback_leaves_nothing(
    tmp_path: Path, server: Server, archive_md5: str
) -> None:
    def stop(done: int, total: int | None) -> None:
        if done > 100_000:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        download(f"{server.url}/cifar.tar.gz", tmp_path / ARCHIVE_NAME, archive_md5, stop)
    assert list(tmp_path.iterdir()) == []


def test_the_archive_url_comes_from_the_environment_when_not_given(
    tmp_path: Path, server: Server, archive_md5: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    mirror = f"{server.url}/cifar.tar.gz"  # a workshop's own mirror, say
    monkeypatch.setenv(URL_ENV, mirror)
    assert archive_url() == mirror
    data = load_cifar10(None, cache_dir=tmp_path, md5=archive_md5, synthetic=False)
    assert data.kind == "download" and mirror in data.source
    monkeypatch.delenv(URL_ENV)
    assert archive_url() == CIFAR10_URL


def test_the_cli_downloads_ahead_of_a_workshop_and_says_what_failed(
    tmp_path: Path,
    server: Server,
    archive_md5: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from optlab import cli
    from optlab.cli import download

    # The real download code; only the expected md5 is the test archive's.
    real = download.load_cifar10
    monkeypatch.setattr(download, "load_cifar10", lambda **kw: real(**kw, md5=archive_md5))
    cache, url = tmp_path / "cache", f"{server.url}/cifar.tar.gz"
    assert cli.main(["download", "--cache", str(cache), "--url", url]) == 0
    out = capsys.readouterr()
    assert "5,085 train / 1,017 test images, ready for the CNN lab" in out.out
    assert "downloading CIFAR-10" in out.err
    assert md5_of(cache / ARCHIVE_NAME) == archive_md5
    seen = len(server.requests)
    assert cli.main(["download", "--cache", str(cache), "--url", url]) == 0
    assert len(server.requests) == seen  # already there: nothing fetched
    assert str(cache) in capsys.readouterr().out  # from the cache

    closed = f"http://127.0.0.1:{_closed_port()}/cifar.tar.gz"
    assert cli.main(["download", "--cache", str(tmp_path / "other"), "--url", closed]) == 2
    err = capsys.readouterr().err
    assert err.startswith("optlab: error: ") and "Traceback" not in err
    assert cli.main(["download", "--url", " "]) == 2
    assert capsys.readouterr().err == "optlab: error: --url: give a URL\n"
