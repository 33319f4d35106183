"""One CIFAR-10 batch of the official python format, read safely with torch alone.

The batches are pickles of numpy arrays, and unpickling can run code. The
unpickler here knows only the few globals an array is made of, and stands in
for them with small classes that keep the array's bytes, dtype and shape
until they become a tensor: no numpy code runs, and anything else a file
names (``os.system``, ``numpy.load``...) is refused. OptLab loads its data
with `read_batch`, and an exported training script embeds this very module's
code, so both read a batch the same way.
"""

from __future__ import annotations

import _codecs
import pickle
import sys
from pathlib import Path
from typing import ClassVar

import torch

#: Bytes of one image (3 channels of 32 x 32) and the number of classes.
ROW_SIZE = 3 * 32 * 32
N_CLASSES = 10
# An official batch is 31 MB: the cap only stops a hostile or broken file
# from exhausting memory.
MAX_BATCH_BYTES = 512 << 20


class DataError(ValueError):
    """A data source is missing, unreadable or not what it claims to be."""


class _DType:
    """A numpy dtype: its type code ("u1", "i8", ...) and byte order."""

    NAMES: ClassVar[dict[str, str]] = {
        "u1": "uint8",
        "i1": "int8",
        "i2": "int16",
        "i4": "int32",
        "i8": "int64",
    }
    NAMES |= {"f2": "float16", "f4": "float32", "f8": "float64"}

    def __init__(self, name: str, align: bool = False, copy: bool = True) -> None:
        self.code, self.byteorder = str(name), "="

    def __setstate__(self, state: tuple) -> None:
        self.byteorder = state[1]

    @property
    def name(self) -> str:
        """numpy's name of the type (``uint8``), or its code when unknown."""
        return self.NAMES.get(self.code, self.code)


class _Array:
    """A numpy array: its bytes, dtype and shape, until it becomes a tensor."""

    TYPES: ClassVar[dict[str, torch.dtype]] = {
        "u1": torch.uint8,
        "i1": torch.int8,
        "i2": torch.int16,
        "i4": torch.int32,
    }
    TYPES |= {"i8": torch.int64, "f2": torch.float16, "f4": torch.float32, "f8": torch.float64}

    def __init__(self, *args: object) -> None:
        self.shape, self.dtype, self.raw = (), None, b""

    def __setstate__(self, state: tuple) -> None:
        _version, self.shape, self.dtype, fortran_order, raw = state
        if fortran_order and len(self.shape) > 1:
            raise pickle.UnpicklingError("Fortran-ordered arrays are not supported")
        # Arrays pickled by Python 2 hold their bytes as a latin1 string.
        self.raw = raw.encode("latin1") if isinstance(raw, str) else bytes(raw)

    def tensor(self) -> torch.Tensor:
        """The array as a tensor (a copy that owns writable memory)."""
        native = "<" if sys.byteorder == "little" else ">"
        if self.dtype is None or self.dtype.code not in self.TYPES:
            raise pickle.UnpicklingError("unsupported array type")
        if self.dtype.byteorder not in ("|", "=", native):
            raise pickle.UnpicklingError("unsupported byte order")
        flat = torch.frombuffer(bytearray(self.raw), dtype=self.TYPES[self.dtype.code])
        return flat.reshape(self.shape)


def _reconstruct(cls: object, shape: object, typecode: object) -> _Array:
    return _Array()  # filled in by __setstate__


def _frombuffer(buffer: bytes, dtype: _DType, shape: tuple, order: str) -> _Array:
    array = _Array()
    array.__setstate__((1, shape, dtype, order == "F", buffer))
    return array


def _scalar(dtype: _DType, raw: bytes | str) -> int:
    array = _Array()
    array.__setstate__((1, (), dtype, False, raw))
    return int(array.tensor())


class _BatchUnpickler(pickle.Unpickler):
    """Builds dicts, lists, strings, numbers and array stand-ins; nothing else."""

    # Python 3 pickles bytes at protocol 2 as _codecs.encode(text, "latin1").
    ALLOWED: ClassVar[dict[tuple[str, str], object]] = {
        ("_codecs", "encode"): _codecs.encode,
        ("numpy", "ndarray"): _Array,
    }
    ALLOWED[("numpy", "dtype")] = _DType
    # numpy 2 renamed numpy.core to numpy._core; the official files (written by
    # Python 2 numpy) name the old module, files re-saved today the new one.
    for _core in ("numpy.core", "numpy._core"):
        ALLOWED[(_core + ".multiarray", "_reconstruct")] = _reconstruct
        ALLOWED[(_core + ".multiarray", "scalar")] = _scalar
        ALLOWED[(_core + ".numeric", "_frombuffer")] = _frombuffer

    def find_class(self, module: str, name: str) -> object:
        try:
            return self.ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"forbidden global {module}.{name}") from None


def _unpickle(path: Path) -> object:
    if not path.is_file():
        raise DataError(f"{path}: missing (expected an official CIFAR-10 python batch)")
    size = path.stat().st_size
    if size > MAX_BATCH_BYTES:
        raise DataError(f"{path}: {size} bytes is too large for a CIFAR-10 batch")
    try:
        with open(path, "rb") as f:
            # latin1 is what arrays pickled by Python 2 need; keys then come
            # out as str (or bytes in files re-saved that way).
            return _BatchUnpickler(f, encoding="latin1").load()
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e})") from e
    except Exception as e:  # a corrupt pickle can fail in many ways
        raise DataError(f"{path}: not a valid CIFAR-10 batch ({type(e).__name__}: {e})") from e


def _labels(path: Path, value: object) -> torch.Tensor:
    """The labels as int64, from an integer array or a list of integers."""
    if isinstance(value, _Array):
        try:
            labels = value.tensor()
        except pickle.UnpicklingError as e:
            raise DataError(f"{path}: 'labels' is not a list of integers ({e})") from e
    elif isinstance(value, list | tuple) and all(
        isinstance(v, int) and not isinstance(v, bool) for v in value
    ):
        labels = torch.tensor(value, dtype=torch.int64)
    else:
        raise DataError(f"{path}: 'labels' must be a list of integers")
    if labels.dim() != 1 or labels.is_floating_point() or labels.dtype == torch.bool:
        raise DataError(f"{path}: 'labels' must be a list of integers")
    return labels.to(torch.int64)


def read_batch(path: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """One batch file: images ``(N, 3, 32, 32)`` uint8 and labels ``(N,)`` int64.

    The row count comes from the data, so subsets of the official files load.

    Raises:
        DataError: the file is missing, too large, unsafe, or of the wrong
            shape or type; the message names the file.
    """
    obj = _unpickle(path)
    if not isinstance(obj, dict):
        raise DataError(f"{path}: expected a dict, got {type(obj).__name__}")
    entries = {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in obj.items()}
    for key in ("data", "labels"):
        if key not in entries:
            raise DataError(f"{path}: no '{key}' entry")
    data = entries["data"]
    if not isinstance(data, _Array) or data.dtype is None or data.dtype.code != "u1":
        kind = data.dtype.name if isinstance(data, _Array) and data.dtype else type(data).__name__
        raise DataError(f"{path}: 'data' must be a uint8 array, got {kind}")
    shape = tuple(data.shape)
    if len(shape) != 2 or shape[1] != ROW_SIZE or shape[0] == 0:
        raise DataError(f"{path}: 'data' must have shape (N, {ROW_SIZE}), got {shape}")
    try:
        images = data.tensor()
    except (pickle.UnpicklingError, RuntimeError, ValueError) as e:
        raise DataError(f"{path}: not a valid CIFAR-10 batch ({e})") from e
    labels = _labels(path, entries["labels"])
    if len(labels) != len(images):
        raise DataError(f"{path}: {len(images)} images but {len(labels)} labels")
    if labels.min() < 0 or labels.max() >= N_CLASSES:
        raise DataError(f"{path}: labels must lie in 0..{N_CLASSES - 1}")
    return images.reshape(-1, 3, 32, 32), labels
