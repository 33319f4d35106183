"""CIFAR-10 in the official python format: safe loading, extraction and download.

The dataset is held as one uint8 tensor ``(N, 3, 32, 32)`` and one int64 label
tensor per split (`ImageSet`); normalisation happens per batch later (see
`optlab.train.data.batches`), so the full training set costs 150 MB, not 600.

Everything here treats its input as untrusted: the batches are pickles, so
they are read with an unpickler that can build nothing but arrays
(`optlab.train.data.batch_file`); the
archive is extracted member by member after a check of every name and type;
a download lands in a temporary file and is renamed into place only once it
is complete and its checksum matches.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import torch

from optlab.caps import CAPS
from optlab.train.data.batch_file import DataError, read_batch

CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR10_MD5 = "c58f30108f718f92721af3b95e74349a"
ARCHIVE_NAME = "cifar-10-python.tar.gz"
FOLDER_NAME = "cifar-10-batches-py"
CLASSES: tuple[str, ...] = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)
TRAIN_FILES: tuple[str, ...] = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_FILE = "test_batch"

IMAGE_SHAPE = (3, 32, 32)
_ROW_SIZE = 3 * 32 * 32

# The archive is 163 MB. The caps only stop a hostile or broken file from
# exhausting memory or disk; they are far above anything legitimate.
MAX_EXTRACT_BYTES = 2 << 30
MAX_DOWNLOAD_BYTES = CAPS.download_mb << 20

#: ``progress(done_bytes, total_bytes_or_None)``, called as a download proceeds.
Progress = Callable[[int, int | None], None]


class DownloadError(DataError):
    """A download failed; nothing it wrote is left behind."""


@dataclass(frozen=True)
class ImageSet:
    """One split of an image classification set, kept compact in memory.

    Attributes:
        images: uint8 ``(N, 3, 32, 32)``, contiguous, pixel values 0..255.
        labels: int64 ``(N,)`` class indices.
    """

    images: torch.Tensor
    labels: torch.Tensor

    def __post_init__(self) -> None:
        if not isinstance(self.images, torch.Tensor) or not isinstance(self.labels, torch.Tensor):
            raise ValueError("ImageSet needs torch tensors for images and labels")
        if self.images.dtype != torch.uint8:
            raise ValueError(f"ImageSet images must be uint8, got {self.images.dtype}")
        if self.images.dim() != 4 or tuple(self.images.shape[1:]) != IMAGE_SHAPE:
            raise ValueError(
                f"ImageSet images must have shape (N, 3, 32, 32), got {tuple(self.images.shape)}"
            )
        if not self.images.is_contiguous():
            raise ValueError("ImageSet images must be contiguous")
        if self.labels.dtype != torch.int64 or self.labels.dim() != 1:
            raise ValueError(
                "ImageSet labels must be a 1-D int64 tensor, got "
                f"{self.labels.dtype} of shape {tuple(self.labels.shape)}"
            )
        if len(self.labels) != len(self.images):
            raise ValueError(
                f"ImageSet has {len(self.images)} images but {len(self.labels)} labels"
            )

    def __len__(self) -> int:
        return len(self.labels)

    def head(self, n: int | None) -> ImageSet:
        """The first ``n`` examples (all of them for None), sharing memory."""
        if n is None or n >= len(self):
            return self
        if n < 0:
            raise ValueError(f"Invalid subset size: {n}")
        return ImageSet(self.images[:n], self.labels[:n])


# --------------------------------------------------------------------------
# Batches: the official pickles, read without running arbitrary code
# (optlab.train.data.batch_file, whose code exported scripts embed too).


def _image_set(batches: list[tuple[torch.Tensor, torch.Tensor]]) -> ImageSet:
    # cat always copies, into one contiguous tensor per split.
    images = torch.cat([images for images, _ in batches])
    labels = torch.cat([labels for _, labels in batches])
    return ImageSet(images, labels)


def load_batches_dir(path: str | os.PathLike[str]) -> tuple[ImageSet, ImageSet]:
    """Loads a ``cifar-10-batches-py`` folder in the official python format.

    The row count of each batch comes from its data, not from
    ``batches.meta``, so subsets of the official files load too.

    Args:
        path: The ``cifar-10-batches-py`` folder itself.

    Returns:
        ``(train, test)``: ``data_batch_1`` .. ``data_batch_5`` concatenated,
        and ``test_batch``.

    Raises:
        DataError: The folder or a batch is missing, corrupt, unsafe or of
            the wrong shape; the message names the file.
    """
    folder = Path(path)
    if not folder.is_dir():
        raise DataError(f"{folder}: not a folder")
    train = _image_set([read_batch(folder / name) for name in TRAIN_FILES])
    test = _image_set([read_batch(folder / TEST_FILE)])
    return train, test


# --------------------------------------------------------------------------
# The archive.


def _member_parts(member: tarfile.TarInfo) -> tuple[str, ...]:
    """The member's path components, or DataError if it could land elsewhere."""
    name = member.name
    if name.startswith(("/", "\\")) or name[1:2] == ":":  # POSIX root or a Windows drive
        raise DataError(f"unsafe archive member {name!r}: absolute path")
    parts = tuple(p for p in PurePosixPath(name.replace("\\", "/")).parts if p not in ("", "."))
    if ".." in parts:
        raise DataError(f"unsafe archive member {name!r}: leaves the folder")
    if not (member.isfile() or member.isdir()):
        raise DataError(f"unsafe archive member {name!r}: links and devices are not allowed")
    return parts


def _open_tar(archive: str | os.PathLike[str]) -> tarfile.TarFile:
    try:
        return tarfile.open(archive, "r:*")
    except (OSError, tarfile.TarError) as e:
        raise DataError(f"{archive}: not a readable tar archive ({e})") from e


def extract_archive(archive: str | os.PathLike[str], dest_dir: str | os.PathLike[str]) -> Path:
    """Extracts the ``cifar-10-batches-py/`` folder of the official archive.

    Every member is checked first: an absolute path, a ``..`` component, a
    link or a device anywhere in the archive rejects the whole archive (the
    official one has none). Only regular files and folders under
    ``cifar-10-batches-py/`` are extracted, with tarfile's ``data`` filter as
    a second guard, into a temporary folder that is renamed into place when
    complete, replacing any earlier copy.

    Args:
        archive: A tar file (gzip-compressed or not).
        dest_dir: Where the folder goes; created if needed.

    Returns:
        ``dest_dir / "cifar-10-batches-py"``.

    Raises:
        DataError: The archive is unreadable, unsafe, too large or lacks the
            folder.
    """
    dest = Path(dest_dir)
    target = dest / FOLDER_NAME
    with _open_tar(archive) as tar:
        try:
            members = tar.getmembers()
        except (OSError, EOFError, tarfile.TarError) as e:
            raise DataError(f"{archive}: corrupt tar archive ({e})") from e
        wanted = [m for m in members if _member_parts(m)[:1] == (FOLDER_NAME,)]
        if not any(m.isfile() for m in wanted):
            raise DataError(f"{archive}: no {FOLDER_NAME}/ folder in the archive")
        total = sum(m.size for m in wanted if m.isfile())
        if total > MAX_EXTRACT_BYTES:
            raise DataError(f"{archive}: would extract {total} bytes, more than expected")
        try:
            dest.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(dir=dest, prefix=f".{FOLDER_NAME}.", suffix=".extract"))
        except OSError as e:
            raise DataError(f"cannot extract {archive} into {dest}: {e}") from e
        try:
            if hasattr(tarfile, "data_filter"):
                tar.extractall(tmp, members=wanted, filter="data")
            else:  # Python < 3.11.4: our own member check above is the guard
                tar.extractall(tmp, members=wanted)
            _replace_folder(tmp / FOLDER_NAME, target)
        except (OSError, EOFError, tarfile.TarError) as e:
            raise DataError(f"{archive}: extraction failed ({e})") from e
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def _replace_folder(src: Path, target: Path) -> None:
    # A folder cannot be os.replace()d over a non-empty one: the old copy
    # is moved aside first. A reader may briefly find no folder (and load
    # again), but never a half-extracted one.
    old = None
    if target.exists():
        old = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.", suffix=".old"))
        os.replace(target, old / target.name)
    os.replace(src, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


# --------------------------------------------------------------------------
# Download.


def md5_of(path: str | os.PathLike[str], chunk: int = 1 << 20) -> str:
    """The hex md5 digest of a file, read in chunks."""
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def _content_length(response: http.client.HTTPResponse) -> int | None:
    value = response.headers.get("Content-Length")
    try:
        length = int(value) if value is not None else None
    except ValueError:
        return None
    return length if length is not None and length >= 0 else None


def _failure(error: Exception) -> str:
    """One line saying what went wrong with a transfer."""
    if isinstance(error, urllib.error.HTTPError):
        return f"HTTP {error.code} {error.reason}"
    if isinstance(error, urllib.error.URLError):
        return str(error.reason)
    if isinstance(error, http.client.IncompleteRead):
        return f"incomplete (truncated) after {len(error.partial)} bytes"
    return f"{type(error).__name__}: {error}"


def download(
    url: str,
    dest: str | os.PathLike[str],
    md5: str,
    progress: Progress | None = None,
    timeout: float = 30.0,
    chunk: int = 1 << 16,
    max_bytes: int = MAX_DOWNLOAD_BYTES,
) -> Path:
    """Downloads ``url`` to ``dest``, all or nothing.

    The body streams into a temporary file next to ``dest``; only when it is
    complete (as long as the server's Content-Length) and its md5 matches is
    it renamed to ``dest``, replacing any earlier file.

    Args:
        url: An http or https URL.
        dest: The final file path; its folder is created if needed.
        md5: The expected hex md5 digest.
        progress: Called with ``(done_bytes, total_bytes_or_None)`` before the
            first chunk and after each one.
        timeout: Seconds to wait for the connection or for any read.
        chunk: Read size in bytes.
        max_bytes: A larger body is refused (it cannot be the archive).

    Returns:
        ``dest`` as a Path.

    Raises:
        DownloadError: An HTTP error, a network error, a truncated or
            oversized transfer or a wrong checksum, in one line; no file is
            left behind.
    """
    target = Path(dest)
    try:
        scheme = urllib.parse.urlsplit(url).scheme.lower()
    except ValueError as e:  # e.g. an unclosed "[" in the host
        raise DownloadError(f"download of {url} refused: not a valid URL ({e})") from None
    if scheme not in ("http", "https"):
        raise DownloadError(f"download of {url} refused: only http and https URLs are allowed")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(
            dir=target.parent, prefix=f".{target.name}.", suffix=".part"
        )
    except OSError as e:
        raise DownloadError(
            f"download of {url} failed: cannot write in {target.parent}: {e}"
        ) from e
    tmp = Path(tmp_name)
    try:
        digest = hashlib.md5(usedforsecurity=False)
        done = 0
        request = urllib.request.Request(url, headers={"User-Agent": "optlab"})
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(request, timeout=timeout) as resp:
            total = _content_length(resp)
            if total is not None and total > max_bytes:
                raise DownloadError(f"download of {url} refused: {total} bytes is too large")
            if progress is not None:
                progress(done, total)
            while block := resp.read(chunk):
                out.write(block)
                digest.update(block)
                done += len(block)
                if done > max_bytes:
                    raise DownloadError(f"download of {url} refused: more than {max_bytes} bytes")
                if progress is not None:
                    progress(done, total)
        # http.client returns a short body without complaint when the server
        # closes early; the Content-Length is the only way to notice.
        if total is not None and done != total:
            raise DownloadError(
                f"download of {url} incomplete (truncated): got {done} of {total} bytes"
            )
        got = digest.hexdigest()
        if got != md5.lower():
            raise DownloadError(f"download of {url} has a bad checksum: md5 {got}, expected {md5}")
        os.chmod(tmp, 0o644)  # mkstemp makes it private
        os.replace(tmp, target)
    except BaseException as e:
        tmp.unlink(missing_ok=True)
        # URLError included; UnicodeError: a host name that cannot be encoded.
        if isinstance(e, OSError | http.client.HTTPException | UnicodeError):
            raise DownloadError(f"download of {url} failed: {_failure(e)}") from e
        raise
    return target
