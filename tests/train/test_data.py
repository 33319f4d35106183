"""Tests for optlab.train.data: the CIFAR-10 loader, safe extraction, the synthetic set, batches.

Real data comes from the shared CIFAR-10 subset (official format, 1017 images
per batch). It is never copied into the repository; when it is missing these
tests are skipped locally and fail under CI=true.
"""

from __future__ import annotations

import contextlib
import io
import os
import pickle
import tarfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from optlab.train.data import (
    CACHE_DIR_ENV,
    CIFAR10_MEAN,
    CIFAR10_STD,
    CLASSES,
    DATA_DIR_ENV,
    FOLDER_NAME,
    SYNTHETIC_CLASSES,
    DataError,
    ImageSet,
    augment,
    extract_archive,
    load_batches_dir,
    load_cifar10,
    normalise,
    synthetic_cifar,
)
from tests.support.resources import CIFAR_SUBSET, require_cifar_subset

SUBSET = CIFAR_SUBSET
BATCHES = ("data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5")
ALL_FILES = (*BATCHES, "test_batch", "batches.meta")
ROWS = 1017  # per batch in the subset


@pytest.fixture(autouse=True)
def _no_data_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(DATA_DIR_ENV, raising=False)
    monkeypatch.delenv(CACHE_DIR_ENV, raising=False)


@pytest.fixture(scope="module")
def subset() -> Path:
    """The shared real-format subset; a skip locally, a failure under CI."""
    return require_cifar_subset()


@pytest.fixture(scope="module")
def splits(subset: Path) -> tuple[ImageSet, ImageSet]:
    return load_batches_dir(subset)


def _raw(path: Path) -> dict[bytes, object]:
    # The test's own, trusted read of the official format, as its README shows.
    with open(path, "rb") as f:
        return pickle.load(f, encoding="bytes")


def _folder(tmp: Path, subset: Path, replace: dict[str, bytes | None]) -> Path:
    """A batches folder in ``tmp``: links to the subset, some files replaced or left out."""
    folder = tmp / FOLDER_NAME
    folder.mkdir()
    for name in ALL_FILES:
        if name in replace:
            content = replace[name]
            if content is not None:
                (folder / name).write_bytes(content)
        else:
            (folder / name).symlink_to(subset / name)
    return folder


def _batch_bytes(data: np.ndarray, labels: list[int]) -> bytes:
    return pickle.dumps({"batch_label": "x", "labels": labels, "data": data}, protocol=4)


# --------------------------------------------------------------------------
# Loading the official format


def test_subset_loads_with_row_count_from_data(splits: tuple[ImageSet, ImageSet]) -> None:
    train, test = splits
    assert (len(train), len(test)) == (5 * ROWS, ROWS)  # not batches.meta's 10000
    for split in (train, test):
        assert split.images.shape == (len(split), 3, 32, 32)
        assert split.images.dtype == torch.uint8 and split.images.is_contiguous()
        assert split.labels.shape == (len(split),) and split.labels.dtype == torch.int64
        assert int(split.labels.min()) == 0 and int(split.labels.max()) == 9
        assert torch.bincount(split.labels, minlength=10).min() > 50  # every class present


def test_layout_and_order_match_the_official_format(
    subset: Path, splits: tuple[ImageSet, ImageSet]
) -> None:
    train, test = splits
    for i, name in enumerate(BATCHES):
        raw = _raw(subset / name)
        rows = slice(i * ROWS, (i + 1) * ROWS)
        assert train.labels[rows].tolist() == raw[b"labels"]
        # Each row is 1024 red, then green, then blue values, row-major 32x32.
        expected = torch.from_numpy(raw[b"data"].reshape(-1, 3, 32, 32).copy())
        assert torch.equal(train.images[rows], expected)
    assert test.labels.tolist() == _raw(subset / "test_batch")[b"labels"]


@pytest.mark.parametrize("keys", ["bytes", "str"])
@pytest.mark.parametrize("protocol", [2, 5])
def test_pickle_key_forms(
    tmp_path: Path, subset: Path, splits: tuple[ImageSet, ImageSet], keys: str, protocol: int
) -> None:
    replace = {}
    for name in (*BATCHES, "test_batch"):
        raw = _raw(subset / name)
        entries = raw if keys == "bytes" else {k.decode(): v for k, v in raw.items()}
        replace[name] = pickle.dumps(entries, protocol=protocol)
    train, test = load_batches_dir(_folder(tmp_path, subset, replace))
    assert torch.equal(train.images, splits[0].images)
    assert torch.equal(train.labels, splits[0].labels)
    assert torch.equal(test.images, splits[1].images)


def test_load_cifar10_from_folder_or_parent(subset: Path, tmp_path: Path) -> None:
    for named in (subset, subset.parent, str(subset.parent)):
        data = load_cifar10(named, cache_dir=tmp_path, download=False, synthetic=False)
        assert data.kind == "folder"
        assert data.classes == CLASSES
        assert str(subset) in data.source
        assert (len(data.train), len(data.test)) == (5 * ROWS, ROWS)
    assert list(tmp_path.iterdir()) == []  # the cache was never touched


def test_load_cifar10_from_env(
    subset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(DATA_DIR_ENV, str(subset.parent))
    data = load_cifar10(cache_dir=tmp_path, download=False, synthetic=False)
    assert data.kind == "folder" and len(data.test) == ROWS
    # An explicit argument wins over the environment.
    monkeypatch.setenv(DATA_DIR_ENV, str(tmp_path / "nowhere"))
    assert load_cifar10(subset, cache_dir=tmp_path, download=False).kind == "folder"
    with pytest.raises(DataError, match="OPTLAB_DATA_DIR"):
        load_cifar10(cache_dir=tmp_path, download=False)


def test_missing_batch_names_the_file_and_does_not_fall_back(tmp_path: Path, subset: Path) -> None:
    folder = _folder(tmp_path, subset, {"data_batch_3": None})
    with pytest.raises(DataError, match=r"data_batch_3.*missing"):
        load_batches_dir(folder)
    # The user asked for this folder: an error, not synthetic data.
    with pytest.raises(DataError, match="data_batch_3"):
        load_cifar10(folder, cache_dir=tmp_path / "cache", download=False, synthetic=True)
    with pytest.raises(DataError, match="not a folder"):
        load_cifar10(tmp_path / "absent", cache_dir=tmp_path / "cache", download=False)


@pytest.mark.parametrize(
    "content",
    [b"", b"not a pickle at all", b"\x80\x02}q\x00(U\x04data"],
    ids=["empty", "garbage", "cut"],
)
def test_corrupt_pickle(tmp_path: Path, subset: Path, content: bytes) -> None:
    folder = _folder(tmp_path, subset, {"test_batch": content})
    with pytest.raises(DataError, match="test_batch"):
        load_batches_dir(folder)


def test_truncated_official_batch(tmp_path: Path, subset: Path) -> None:
    half = (subset / "data_batch_2").read_bytes()[:1_500_000]
    folder = _folder(tmp_path, subset, {"data_batch_2": half})
    with pytest.raises(DataError, match="data_batch_2"):
        load_batches_dir(folder)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (_batch_bytes(np.zeros((4, 3000), np.uint8), [0, 1, 2, 3]), "3072"),
        (_batch_bytes(np.zeros((4, 3072), np.float32), [0, 1, 2, 3]), "uint8"),
        (_batch_bytes(np.zeros((0, 3072), np.uint8), []), "shape"),
        (_batch_bytes(np.zeros((4, 3072), np.uint8), [0, 1, 2]), "4 images but 3 labels"),
        (_batch_bytes(np.zeros((4, 3072), np.uint8), [0, 1, 2, 10]), r"0\.\.9"),
        (_batch_bytes(np.zeros((4, 3072), np.uint8), [0, 1, 2, -1]), r"0\.\.9"),
        (_batch_bytes(np.zeros((4, 3072), np.uint8), ["a", "b", "c", "d"]), "integers"),
        (pickle.dumps({"labels": [0]}, protocol=2), "'data'"),
        (pickle.dumps([1, 2, 3], protocol=2), "dict"),
    ],
    ids=[
        "columns",
        "dtype",
        "empty",
        "lengths",
        "label10",
        "label-1",
        "labels-str",
        "no-data",
        "list",
    ],
)
def test_wrong_shapes(tmp_path: Path, subset: Path, content: bytes, message: str) -> None:
    folder = _folder(tmp_path, subset, {"data_batch_5": content})
    with pytest.raises(DataError, match=rf"data_batch_5.*{message}"):
        load_batches_dir(folder)


class _Evil:
    """Unpickling this runs ``func(*args)`` unless the unpickler refuses."""

    def __init__(self, func: object, *args: object) -> None:
        self.func, self.args = func, args

    def __reduce__(self) -> tuple[object, tuple[object, ...]]:
        return self.func, self.args


@pytest.mark.parametrize("how", ["os.system", "builtins.exec", "numpy.load"])
def test_malicious_pickle_runs_nothing(tmp_path: Path, subset: Path, how: str) -> None:
    marker = tmp_path / "pwned"
    payload = {
        "os.system": _Evil(os.system, f"touch {marker}"),
        "builtins.exec": _Evil(exec, f"open({str(marker)!r}, 'w').close()"),
        # Even numpy offers functions that read files: only array
        # reconstruction is allowed, not numpy as a whole.
        "numpy.load": _Evil(np.load, str(marker)),
    }[how]
    content = pickle.dumps({"data": payload, "labels": [0]}, protocol=2)
    folder = _folder(tmp_path, subset, {"data_batch_1": content})
    with pytest.raises(DataError, match=r"data_batch_1.*forbidden global"):
        load_batches_dir(folder)
    assert not marker.exists()


def test_image_set_validation() -> None:
    images, labels = torch.zeros(4, 3, 32, 32, dtype=torch.uint8), torch.zeros(4, dtype=torch.int64)
    assert len(ImageSet(images, labels)) == 4
    bad = [
        (images.float(), labels, "uint8"),
        (images[:, :1], labels, r"\(N, 3, 32, 32\)"),
        (images.transpose(2, 3), labels, "contiguous"),
        (images, labels.int(), "int64"),
        (images, labels[:3], "4 images but 3 labels"),
        (images.numpy(), labels, "torch tensors"),
    ]
    for imgs, labs, message in bad:
        with pytest.raises(ValueError, match=message):
            ImageSet(imgs, labs)


def test_head_shares_memory(splits: tuple[ImageSet, ImageSet]) -> None:
    train = splits[0]
    head = train.head(100)
    assert len(head) == 100 and head.images.data_ptr() == train.images.data_ptr()
    assert train.head(None) is train and train.head(10**9) is train
    with pytest.raises(ValueError, match="-1"):
        train.head(-1)


# --------------------------------------------------------------------------
# Safe extraction


Member = tarfile.TarInfo | tuple[str, bytes]


def _add_file(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def _archive(path: Path, subset: Path, extra: list[Member]) -> Path:
    with tarfile.open(path, "w") as tar:
        for name in ALL_FILES:
            tar.add(subset / name, arcname=f"{FOLDER_NAME}/{name}")
        for member in extra:
            if isinstance(member, tarfile.TarInfo):
                tar.addfile(member)
            else:
                _add_file(tar, *member)
    return path


def _files_under(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def test_extract_archive_takes_only_the_batches_folder(tmp_path: Path, subset: Path) -> None:
    archive = _archive(tmp_path / "a.tar", subset, [("README", b"hello"), ("other/x", b"x")])
    dest = tmp_path / "cache"
    folder = extract_archive(archive, dest)
    assert folder == dest / FOLDER_NAME
    assert _files_under(dest) == {FOLDER_NAME, *(f"{FOLDER_NAME}/{n}" for n in ALL_FILES)}
    assert len(load_batches_dir(folder)[1]) == ROWS
    # Again over the existing copy: replaced in place, no leftovers.
    (folder / "stale").write_bytes(b"old")
    extract_archive(archive, dest)
    assert _files_under(dest) == {FOLDER_NAME, *(f"{FOLDER_NAME}/{n}" for n in ALL_FILES)}


def _link(name: str, target: str, kind: bytes) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, target
    return info


def _device(name: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.devmajor, info.devminor = tarfile.CHRTYPE, 1, 3
    return info


@pytest.mark.parametrize(
    "make_member",
    [
        lambda tmp: ("../evil", b"x"),
        lambda tmp: (f"{FOLDER_NAME}/../../evil", b"x"),
        lambda tmp: (str(tmp / "evil"), b"x"),
        lambda tmp: _link(f"{FOLDER_NAME}/evil", "/etc/passwd", tarfile.SYMTYPE),
        lambda tmp: _link(f"{FOLDER_NAME}/evil", "../../evil", tarfile.SYMTYPE),
        lambda tmp: _link(f"{FOLDER_NAME}/evil", "/etc/passwd", tarfile.LNKTYPE),
        lambda tmp: _device(f"{FOLDER_NAME}/evil"),
    ],
    ids=["dotdot", "nested-dotdot", "absolute", "symlink-abs", "symlink-rel", "hardlink", "device"],
)
def test_extract_archive_rejects_unsafe_members(
    tmp_path: Path, subset: Path, make_member: Callable[[Path], Member]
) -> None:
    archive = _archive(tmp_path / "a.tar", subset, [make_member(tmp_path)])
    # dest two levels down, so "../../evil" would land in tmp_path.
    with pytest.raises(DataError, match="unsafe archive member"):
        extract_archive(archive, tmp_path / "x" / "cache")
    # Nothing anywhere but the archive itself: no partial folder, no temp folder.
    assert _files_under(tmp_path) == {"a.tar"}


def test_extract_archive_errors(tmp_path: Path, subset: Path) -> None:
    not_tar = tmp_path / "not.tar.gz"
    not_tar.write_bytes(b"\x1f\x8b garbage")
    with pytest.raises(DataError, match=r"not\.tar\.gz"):
        extract_archive(not_tar, tmp_path / "dest")
    empty = tmp_path / "empty.tar"
    with tarfile.open(empty, "w") as tar:
        _add_file(tar, "something/else", b"x")
    with pytest.raises(DataError, match=f"no {FOLDER_NAME}"):
        extract_archive(empty, tmp_path / "dest")
    assert not (tmp_path / "dest" / FOLDER_NAME).exists()


# --------------------------------------------------------------------------
# Synthetic set


def test_synthetic_shapes_and_balance() -> None:
    train, test = synthetic_cifar(n_train=1003, n_test=250, seed=0)
    assert len(SYNTHETIC_CLASSES) == 10 == len(set(SYNTHETIC_CLASSES))
    for split, n in ((train, 1003), (test, 250)):
        assert split.images.shape == (n, 3, 32, 32) and split.images.dtype == torch.uint8
        assert split.images.is_contiguous() and split.labels.dtype == torch.int64
        counts = torch.bincount(split.labels, minlength=10)
        assert int(counts.max() - counts.min()) <= 1
    # Not a blank or saturated picture: real spread of values per image.
    assert float(train.images.float().std(dim=(1, 2, 3)).min()) > 5


def test_synthetic_is_deterministic_and_leaves_global_rng_alone() -> None:
    state = torch.random.get_rng_state()
    a_train, a_test = synthetic_cifar(300, 100, seed=7)
    assert torch.equal(torch.random.get_rng_state(), state)
    b_train, b_test = synthetic_cifar(300, 100, seed=7)
    assert torch.equal(a_train.images, b_train.images) and torch.equal(a_test.labels, b_test.labels)
    c_train, _ = synthetic_cifar(300, 100, seed=8)
    assert not torch.equal(a_train.images, c_train.images)
    # The test split does not depend on the training split's size.
    _, d_test = synthetic_cifar(50, 100, seed=7)
    assert torch.equal(a_test.images, d_test.images)
    with pytest.raises(ValueError, match="n_train"):
        synthetic_cifar(0, 10)


def test_synthetic_sets_of_any_size_share_their_first_images() -> None:
    # A run (or checkpoint) on the first N images sees the same images however
    # large a set the page or the CLI drew.
    small_train, small_test = synthetic_cifar(256, 100, seed=0)
    big_train, big_test = synthetic_cifar(2500, 1200, seed=0)
    assert torch.equal(big_train.images[:256], small_train.images)
    assert torch.equal(big_train.labels[:256], small_train.labels)
    assert torch.equal(big_test.images[:100], small_test.images)
    # Every prefix is balanced.
    for n in (7, 10, 999, 1001, 2500):
        counts = torch.bincount(big_train.labels[:n], minlength=10)
        assert int(counts.max() - counts.min()) <= 1


@contextlib.contextmanager
def _one_thread() -> Iterator[None]:
    # On a machine busy with other work, torch's threads wait on each other
    # at every operation (a small CNN ran 10x slower on 2 threads than on
    # one); a single thread keeps these tests' run time predictable.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def test_synthetic_full_size_is_fast_and_compact() -> None:
    # A coarse guard against a per-image Python loop, not a benchmark: CPU
    # time, so other processes on a busy machine cannot make it flaky (it
    # takes about 1 s).
    with _one_thread():
        start = time.process_time()
        train, _ = synthetic_cifar(n_train=50_000, n_test=1, seed=1)
        elapsed = time.process_time() - start
    assert elapsed < 5.0, f"50,000 synthetic images took {elapsed:.1f} s of CPU time"
    assert train.images.nelement() * train.images.element_size() < 200 * 2**20


def test_synthetic_is_learnable() -> None:
    train, test = synthetic_cifar(n_train=2000, n_test=500, seed=0)
    mean = train.images.float().mean(dim=(0, 2, 3)) / 255
    std = train.images.float().std(dim=(0, 2, 3)) / 255
    x_train, x_test = normalise(train.images, mean, std), normalise(test.images, mean, std)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = nn.Sequential(
            nn.Conv2d(3, 16, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(32, 32, 3, padding=1),
            nn.ReLU(),
            nn.AdaptiveMaxPool2d(1),
            nn.Flatten(),
            nn.Linear(32, 10),
        )
    optimizer = torch.optim.SGD(model.parameters(), lr=0.02, momentum=0.9)
    batches = torch.Generator().manual_seed(0)
    with _one_thread():
        for _ in range(300):
            index = torch.randint(0, len(train), (64,), generator=batches)
            loss = F.cross_entropy(model(x_train[index]), train.labels[index])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        with torch.no_grad():
            accuracy = (model(x_test).argmax(dim=1) == test.labels).float().mean().item()
    assert accuracy > 0.5, f"test accuracy {accuracy:.1%} (chance is 10%)"


def test_load_cifar10_offline_falls_back_to_synthetic(tmp_path: Path) -> None:
    data = load_cifar10(cache_dir=tmp_path, download=False, synthetic_size=(200, 100), seed=3)
    assert data.kind == "synthetic" and data.synthetic
    assert data.classes == SYNTHETIC_CLASSES
    assert (len(data.train), len(data.test)) == (200, 100)
    assert "synthetic" in data.source and "not CIFAR-10" in data.source
    assert "no archive" in data.source and "download disabled" in data.source
    assert torch.equal(data.train.images, synthetic_cifar(200, 100, seed=3)[0].images)
    with pytest.raises(DataError, match="download disabled"):
        load_cifar10(cache_dir=tmp_path, download=False, synthetic=False)


# --------------------------------------------------------------------------
# Batches


def test_normalise_matches_formula() -> None:
    images = torch.randint(0, 256, (8, 3, 5, 7), dtype=torch.uint8, generator=torch.Generator())
    out = normalise(images, CIFAR10_MEAN, CIFAR10_STD)
    mean = torch.tensor(CIFAR10_MEAN, dtype=torch.float64).view(1, 3, 1, 1)
    std = torch.tensor(CIFAR10_STD, dtype=torch.float64).view(1, 3, 1, 1)
    expected = (images.double() / 255 - mean) / std
    assert out.dtype == torch.float32 and out.shape == images.shape
    torch.testing.assert_close(out.double(), expected, rtol=0, atol=1e-5)
    # Any per-channel statistics, as tensors too; the input is left as it was.
    custom = normalise(images, torch.tensor([0.5, 0.5, 0.5]), (1.0, 2.0, 4.0))
    torch.testing.assert_close(custom[:, 2].double(), (images[:, 2].double() / 255 - 0.5) / 4)
    with pytest.raises(ValueError, match="uint8"):
        normalise(images.float())
    with pytest.raises(ValueError, match="3 values"):
        normalise(images, (0.5,), (0.5,))
    with pytest.raises(ValueError, match="std"):
        normalise(images, CIFAR10_MEAN, (0.2, 0.0, 0.2))


def test_cifar10_statistics_fit_the_real_images(splits: tuple[ImageSet, ImageSet]) -> None:
    out = normalise(splits[0].images)
    assert out.mean(dim=(0, 2, 3)).abs().max() < 0.05
    assert (out.std(dim=(0, 2, 3)) - 1).abs().max() < 0.05


def _images(n: int) -> torch.Tensor:
    # No zeros, so zero padding shows where a crop moved the picture.
    return torch.randint(1, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator())


def test_augment_is_deterministic_given_the_generator() -> None:
    images = _images(16)
    before = images.clone()
    a = augment(images, torch.Generator().manual_seed(1))
    b = augment(images, torch.Generator().manual_seed(1))
    c = augment(images, torch.Generator().manual_seed(2))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert a.dtype == torch.uint8 and a.shape == images.shape
    assert torch.equal(images, before)
    assert torch.equal(augment(images, torch.Generator(), padding=0, flip=False), images)


def test_augment_flip_mirrors_about_half() -> None:
    images = _images(64)
    out = augment(images, torch.Generator().manual_seed(0), padding=0, flip=True)
    flipped = [torch.equal(o, i.flip(-1)) for o, i in zip(out, images, strict=True)]
    kept = [torch.equal(o, i) for o, i in zip(out, images, strict=True)]
    assert all(f != k for f, k in zip(flipped, kept, strict=True))
    assert 16 <= sum(flipped) <= 48


def _shifted(image: torch.Tensor, dy: int, dx: int, pad: int) -> torch.Tensor:
    padded = F.pad(image, (pad, pad, pad, pad))
    return padded[:, pad + dy : pad + dy + 32, pad + dx : pad + dx + 32]


def test_augment_crop_shifts_with_zero_fill() -> None:
    images = _images(32)
    out = augment(images, torch.Generator().manual_seed(0), padding=4, flip=False)
    shifts = []
    for o, image in zip(out, images, strict=True):
        found = [
            (dy, dx)
            for dy in range(-4, 5)
            for dx in range(-4, 5)
            if torch.equal(o, _shifted(image, dy, dx, 4))
        ]
        assert len(found) == 1, "each output is exactly one shifted copy of its image"
        shifts.append(found[0])
    assert len(set(shifts)) > 5  # offsets really vary
    assert any(dy != 0 and dx != 0 for dy, dx in shifts)
    with pytest.raises(ValueError, match="padding"):
        augment(images, torch.Generator(), padding=-1)
