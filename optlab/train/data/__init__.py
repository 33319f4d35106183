"""Image data for the CNN lab: CIFAR-10 from wherever it can be had, else a synthetic set.

`load_cifar10` tries, in order:

1. a folder the user names (argument, or ``$OPTLAB_DATA_DIR``) holding
   ``cifar-10-batches-py`` in the official python format; a named folder that
   does not load is an error, never silently replaced by another source;
2. the official archive in the cache folder (``~/.cache/optlab``, or
   ``$OPTLAB_CACHE_DIR``), if its md5 matches: extracted there and loaded;
3. a download of that archive into the cache folder, then as in 2;
4. a synthetic set (`synthetic_cifar`), clearly labelled as such.

The result says which source was used and, for a fallback, why each earlier
one was skipped, so the UI and the CLI can tell the user.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from optlab.caps import CIFAR_TEST_IMAGES, CIFAR_TRAIN_IMAGES, SYNTHETIC_IMAGES
from optlab.train.data import cifar
from optlab.train.data.batches import CIFAR10_MEAN, CIFAR10_STD, augment, first_images, normalise
from optlab.train.data.cifar import (
    ARCHIVE_NAME,
    CIFAR10_MD5,
    CIFAR10_URL,
    CLASSES,
    FOLDER_NAME,
    DataError,
    DownloadError,
    ImageSet,
    Progress,
    download,
    extract_archive,
    load_batches_dir,
    md5_of,
)
from optlab.train.data.synthetic import SYNTHETIC_CLASSES, synthetic_cifar

__all__ = [
    "ARCHIVE_NAME",
    "CACHE_DIR_ENV",
    "CIFAR10_MD5",
    "CIFAR10_MEAN",
    "CIFAR10_STD",
    "CIFAR10_URL",
    "CLASSES",
    "DATA_DIR_ENV",
    "FOLDER_NAME",
    "SYNTHETIC_CLASSES",
    "URL_ENV",
    "DataError",
    "DataKind",
    "DownloadError",
    "ImageSet",
    "LoadedData",
    "Progress",
    "archive_url",
    "augment",
    "default_cache_dir",
    "download",
    "extract_archive",
    "find_cifar10",
    "first_images",
    "load_batches_dir",
    "load_cifar10",
    "md5_of",
    "normalise",
    "resolve_data_dir",
    "synthetic_cifar",
    "synthetic_data",
    "synthetic_size",
]

DATA_DIR_ENV = "OPTLAB_DATA_DIR"
CACHE_DIR_ENV = "OPTLAB_CACHE_DIR"
#: A mirror of the archive (a workshop's own server on the local network, say).
URL_ENV = "OPTLAB_CIFAR_URL"

#: Where a `LoadedData` came from.
DataKind = Literal["folder", "cache", "download", "synthetic"]


@dataclass(frozen=True)
class LoadedData:
    """Both splits of an image set and where they came from.

    Attributes:
        train: The training split.
        test: The test split.
        classes: Class names in label order (`CLASSES` or `SYNTHETIC_CLASSES`).
        kind: ``folder``, ``cache``, ``download`` or ``synthetic``.
        source: Where it came from, in words, for the UI and the CLI; for a
            fallback it includes why each earlier source was skipped.
    """

    train: ImageSet
    test: ImageSet
    classes: tuple[str, ...]
    kind: DataKind
    source: str

    @property
    def synthetic(self) -> bool:
        """Whether this is the synthetic stand-in, not CIFAR-10."""
        return self.kind == "synthetic"


def default_cache_dir() -> Path:
    """``$OPTLAB_CACHE_DIR`` if set, else ``~/.cache/optlab``."""
    env = os.environ.get(CACHE_DIR_ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "optlab"


def archive_url() -> str:
    """Where the archive is downloaded from: ``$OPTLAB_CIFAR_URL``, else the official URL."""
    return os.environ.get(URL_ENV) or CIFAR10_URL


def resolve_data_dir(path: str | os.PathLike[str]) -> Path:
    """The ``cifar-10-batches-py`` folder given that folder or its parent.

    Raises:
        DataError: a path the system cannot look at (a name too long, an unknown ``~user``).
    """
    try:
        folder = Path(path).expanduser().absolute()
        if not (folder / cifar.TEST_FILE).exists() and (folder / FOLDER_NAME).is_dir():
            return folder / FOLDER_NAME
    except (OSError, RuntimeError) as e:
        raise DataError(f"{path}: cannot be read ({getattr(e, 'strerror', None) or e})") from None
    return folder


def _from_cache(cache: Path, md5: str, reasons: list[str]) -> tuple[ImageSet, ImageSet] | None:
    archive = cache / ARCHIVE_NAME
    if not archive.is_file():
        reasons.append(f"no archive in {cache}")
        return None
    try:
        digest = md5_of(archive)
    except OSError as e:
        reasons.append(f"cannot read {archive}: {e}")
        return None
    if digest != md5.lower():
        reasons.append(f"{archive} has a bad checksum")
        return None
    # The folder only ever appears by a rename after a complete extraction of
    # a verified archive, so a copy that loads can be used as it is.
    folder = cache / FOLDER_NAME
    if folder.is_dir():
        try:
            return load_batches_dir(folder)
        except DataError:
            pass  # damaged since: extract it again
    try:
        return load_batches_dir(extract_archive(archive, cache))
    except DataError as e:
        reasons.append(f"cached archive unusable: {e}")
        return None


def load_cifar10(
    data_dir: str | os.PathLike[str] | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    download: bool = True,
    url: str | None = None,
    md5: str = CIFAR10_MD5,
    progress: Progress | None = None,
    synthetic: bool = True,
    synthetic_size: tuple[int, int] = SYNTHETIC_IMAGES,
    seed: int = 0,
) -> LoadedData:
    """CIFAR-10 from the first source that works (see the module docstring).

    Args:
        data_dir: A ``cifar-10-batches-py`` folder or its parent; None (or
            empty) uses ``$OPTLAB_DATA_DIR`` if set.
        cache_dir: Where the archive is looked for, downloaded and extracted;
            None uses `default_cache_dir`.
        download: Whether a missing archive may be downloaded.
        url: Where to download it from (None: `archive_url`).
        md5: The archive's expected md5.
        progress: ``progress(done_bytes, total_bytes_or_None)`` during a
            download.
        synthetic: Whether to fall back to the synthetic set.
        synthetic_size: ``(n_train, n_test)`` of the synthetic set.
        seed: Seed of the synthetic set.

    Returns:
        The data, with its ``kind`` and ``source``.

    Raises:
        DataError: The named folder is unusable, or no source worked and the
            synthetic fallback is off; the message says why for each source.
    """
    reasons: list[str] = []
    found = _local(data_dir, cache_dir, md5, reasons)
    if found is not None:
        return found
    cache = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    if download:
        url = url or archive_url()
        archive = cache / ARCHIVE_NAME
        try:
            cifar.download(url, archive, md5, progress=progress)
            splits = load_batches_dir(extract_archive(archive, cache))
        except DataError as e:  # DownloadError included
            reasons.append(str(e))
        else:
            return LoadedData(
                *splits, CLASSES, "download", f"CIFAR-10 downloaded from {url} into {cache}"
            )
    else:
        reasons.append("download disabled")

    why = "; ".join(reasons)
    if not synthetic:
        raise DataError(f"no CIFAR-10 data available: {why}")
    return synthetic_data(synthetic_size, seed, f"offline: {why}")


def _local(
    data_dir: str | os.PathLike[str] | None,
    cache_dir: str | os.PathLike[str] | None,
    md5: str,
    reasons: list[str],
) -> LoadedData | None:
    """Sources 1 and 2: the named folder (an error if it does not load), else the
    cache; None, with why in ``reasons``, when neither has CIFAR-10."""
    named, origin = data_dir, "data_dir"
    if named is None or not str(named):
        named, origin = os.environ.get(DATA_DIR_ENV) or None, f"${DATA_DIR_ENV}"
    if named is not None:
        try:
            folder = resolve_data_dir(named)
            train, test = load_batches_dir(folder)
        except DataError as e:
            raise DataError(f"CIFAR-10 folder from {origin} is unusable: {e}") from e
        return LoadedData(train, test, CLASSES, "folder", f"CIFAR-10 from folder {folder}")
    reasons.append("no data folder named")
    cache = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    splits = _from_cache(cache, md5, reasons)
    if splits is not None:
        return LoadedData(*splits, CLASSES, "cache", f"CIFAR-10 from cache {cache}")
    return None


def find_cifar10(
    data_dir: str | os.PathLike[str] | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    md5: str = CIFAR10_MD5,
) -> LoadedData:
    """CIFAR-10 already on this machine: the named folder (or ``$OPTLAB_DATA_DIR``),
    else the cache; never downloaded, never synthetic.

    For a caller that offers the download itself (the CNN page's button): its
    message says what is missing, and nothing about downloads.

    Raises:
        DataError: The named folder is unusable, or neither source has the data.
    """
    reasons: list[str] = []
    found = _local(data_dir, cache_dir, md5, reasons)
    if found is None:
        raise DataError(f"no CIFAR-10 data available: {'; '.join(reasons)}")
    return found


def synthetic_size(train_limit: int | None, test_limit: int | None) -> tuple[int, int]:
    """How many synthetic images a run with these subset sizes needs.

    As many as it uses (generating them takes time), at most CIFAR-10's own
    size; "all" (None) is the synthetic set's default size. The images are
    drawn in seeded blocks, so the first N are the same whatever the total.
    """
    limits = (train_limit, test_limit)
    caps = (CIFAR_TRAIN_IMAGES, CIFAR_TEST_IMAGES)
    train, test = (
        default if limit is None else min(limit, cap)
        for limit, default, cap in zip(limits, SYNTHETIC_IMAGES, caps, strict=True)
    )
    return train, test


def synthetic_data(size: tuple[int, int], seed: int, why: str) -> LoadedData:
    """The synthetic stand-in, labelled as such with ``why`` it is used.

    Args:
        size: ``(n_train, n_test)``.
        seed: Seed of the images.
        why: The reason, shown in ``source`` (e.g. "offline: ...").
    """
    n_train, n_test = size
    train, test = synthetic_cifar(n_train, n_test, seed)
    source = (
        f"synthetic shapes, not CIFAR-10 ({n_train} train / {n_test} test images, "
        f"seed {seed}), {why}"
    )
    return LoadedData(train, test, SYNTHETIC_CLASSES, "synthetic", source)
