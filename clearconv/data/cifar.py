"""CIFAR-10 from the standard "python version" batches, without unpickling arbitrary objects.

The distribution (``cifar-10-python.tar.gz``, Krizhevsky 2009) holds, under
``cifar-10-batches-py/``, five training batches ``data_batch_1`` .. ``data_batch_5``
(10000 images each), ``test_batch`` (10000) and ``batches.meta``. Each batch is a
pickle (protocol 2, written by Python 2) of a dict whose ``b"data"`` is a uint8 array of
shape ``(10000, 3072)``, one row per image: 1024 red, 1024 green, 1024 blue values, each
plane row-major 32x32, which is exactly NCHW after ``reshape(N, 3, 32, 32)``; and whose
``b"labels"`` is a list of ints 0..9.

A pickle can run any code while it loads (``os.system`` is two opcodes away), so this
module never calls ``pickle.load``: :class:`RestrictedUnpickler` resolves only the few
globals a batch needs (NumPy's array and dtype reconstruction, and ``_codecs.encode``
for latin-1 only, which protocol 2 uses for bytes) and refuses every other one with a
:class:`~clearconv.data.DatasetError`, before anything is called. The result must then
be a dict with a uint8 ``(N, 3072)`` ``b"data"`` and a list of ``N`` ints ``b"labels"``.

Python API::

    from clearconv.data import load_cifar10, CIFAR10_CLASSES
    x, y = load_cifar10("path/to/cifar", split="train")   # uint8 (50000, 3, 32, 32), int64
    x, y = load_cifar10("cifar-10-python.tar.gz", split="test")
    images, labels = read_cifar_batch("cifar-10-batches-py/test_batch")
"""

from __future__ import annotations

import codecs
import io
import math
import os
import pickle
import pickletools
import tarfile
import zlib
from pathlib import Path
from typing import IO, Any, Union

import numpy as np

from ..io.files import open_regular
from .cache import data_home
from .idx import DatasetError, DatasetNotFoundError

PathLike = Union[str, "os.PathLike[str]"]

#: class names of CIFAR-10, index = label (as in ``batches.meta``).
CIFAR10_CLASSES: tuple[str, ...] = (
    "airplane", "automobile", "bird", "cat", "deer",
    "dog", "frog", "horse", "ship", "truck",
)
CIFAR10_ARCHIVE = "cifar-10-python.tar.gz"
CIFAR10_FOLDER = "cifar-10-batches-py"
_SPLIT_BATCHES = {
    "train": tuple(f"data_batch_{i}" for i in range(1, 6)),
    "test": ("test_batch",),
}
_PIXELS = 3 * 32 * 32


try:
    from lzma import LZMAError as _LZMAError
except ImportError:  # pragma: no cover - Python built without lzma: no .tar.xz either
    _LZMAError = OSError

#: the largest batch file read (a real one is 31,035,704 bytes: 10000 rows of 3072 bytes
#: plus labels and file names); a larger file or archive member is refused unread
MAX_BATCH_BYTES = 64 * 1024 * 1024


def _reconstruct_function() -> Any:
    """NumPy's own ``_reconstruct`` (``numpy._core`` since NumPy 2, ``numpy.core`` before):
    what real batches name; the unpickler never hands it out (tests pickle with it)."""
    try:
        from numpy._core.multiarray import _reconstruct
    except ImportError:  # NumPy < 2
        from numpy.core.multiarray import _reconstruct
    return _reconstruct


class _Global:
    """What :class:`RestrictedUnpickler` hands out for an allowed global: a callable that
    refuses BUILD (``__setstate__``), so a pickle cannot set attributes (a function's
    ``__defaults__``) on anything of clearconv's or NumPy's."""

    __slots__ = ("_call", "_name")

    def __init__(self, name: str, call: Any) -> None:
        self._name, self._call = name, call

    def __call__(self, *args: Any) -> Any:
        return self._call(*args)

    def __setstate__(self, state: Any) -> None:
        raise DatasetError(f"refusing BUILD on the global {self._name}")

    def __reduce__(self) -> Any:  # pragma: no cover - never pickled
        raise TypeError("not picklable")


class _DtypeSpec:
    """A validated built-in numeric dtype named by the pickle (``numpy.dtype(...)`` and its
    BUILD), recorded rather than made: only :func:`_array_from_state` turns it into a
    NumPy dtype."""

    __slots__ = ("dtype", "_built")

    def __init__(self, spec: Any, align: Any = False, copy: Any = False) -> None:
        if not isinstance(spec, (str, bytes)) or len(spec) > 8:
            raise DatasetError(f"refusing the dtype {spec!r}: a CIFAR batch holds only "
                               "built-in numeric dtypes")
        text = spec.decode("latin-1") if isinstance(spec, bytes) else spec
        try:
            dtype = np.dtype(text)
        except TypeError as exc:
            raise DatasetError(f"refusing the dtype {spec!r}: {exc}") from None
        if dtype.kind not in "biuf" or dtype.fields is not None or dtype.subdtype is not None:
            raise DatasetError(f"refusing the dtype {dtype}: a CIFAR batch holds only "
                               "built-in numeric dtypes")
        self.dtype, self._built = dtype, False

    def __setstate__(self, state: Any) -> None:
        # NumPy's dtype state: (version, byte order, subarray, names, fields, elsize,
        # alignment, flags); only the byte order of a plain dtype is taken from it
        if self._built or not isinstance(state, tuple) or len(state) < 2 or \
                any(v is not None for v in state[2:5]):
            raise DatasetError(f"refusing the dtype state {state!r:.80}")
        order = state[1].decode("latin-1") if isinstance(state[1], bytes) else state[1]
        if order not in ("<", ">", "|", "="):
            raise DatasetError(f"refusing the dtype byte order {order!r}")
        if order in "<>":
            self.dtype = self.dtype.newbyteorder(order)
        self._built = True


class _ArraySpec:
    """An ndarray as the pickle describes it (``_reconstruct`` then BUILD): its shape,
    dtype, order and raw bytes, checked to agree. Nothing is allocated here beyond the
    bytes the pickle itself holds; :func:`_array_from_state` builds the array."""

    __slots__ = ("shape", "dtype", "fortran", "raw")

    def __init__(self) -> None:
        self.shape: tuple[int, ...] | None = None
        self.dtype: np.dtype | None = None
        self.fortran, self.raw = False, b""

    def __setstate__(self, state: Any) -> None:
        if self.shape is not None:
            raise DatasetError("refusing a second BUILD on an array")
        if not isinstance(state, tuple) or len(state) not in (4, 5):
            raise DatasetError(f"refusing the array state {state!r:.80}")
        if len(state) == 5:
            if state[0] != 1:
                raise DatasetError(f"refusing the array state version {state[0]!r}")
            state = state[1:]
        shape, dtype, fortran, raw = state
        if not isinstance(shape, tuple) or len(shape) > 2 or not all(
                type(v) is int and v >= 0 for v in shape):
            raise DatasetError(f"refusing the array shape {shape!r:.80}")
        if not isinstance(dtype, _DtypeSpec) or not isinstance(fortran, bool) or \
                not isinstance(raw, bytes):
            raise DatasetError("refusing an array state that is not (shape, dtype, "
                               "order, bytes)")
        if math.prod(shape) * dtype.dtype.itemsize != len(raw):
            raise DatasetError(f"an array of shape {shape} and dtype {dtype.dtype} needs "
                               f"{math.prod(shape) * dtype.dtype.itemsize} bytes, the "
                               f"pickle holds {len(raw)}")
        self.shape, self.dtype, self.fortran, self.raw = shape, dtype.dtype, fortran, raw


def _reconstruct(subtype: Any, shape: Any, dtype: Any) -> _ArraySpec:
    """``_reconstruct`` as NumPy's pickles call it: ``(ndarray, (0,), b'b')``, whose BUILD
    then gives the array. Anything else is refused."""
    if subtype is not _NDARRAY or shape != (0,) or dtype not in (b"b", "b"):
        raise DatasetError(f"refusing _reconstruct with arguments {shape!r:.40}, "
                           f"{dtype!r:.20}")
    return _ArraySpec()


def _not_callable(*args: Any) -> Any:
    raise DatasetError("refusing to call numpy.ndarray (it would allocate memory unread)")


def _array_from_state(spec: _ArraySpec) -> np.ndarray:
    """A new, writable ndarray holding the bytes of a checked :class:`_ArraySpec`."""
    assert spec.shape is not None and spec.dtype is not None
    flat = np.frombuffer(spec.raw, dtype=spec.dtype)
    return flat.reshape(spec.shape, order="F" if spec.fortran else "C").copy(order="C")


def _latin1_encode(text: str, encoding: str = "utf-8", errors: str = "strict") -> bytes:
    """``_codecs.encode`` limited to the latin-1 bytes that protocol-2 pickles hold."""
    if not isinstance(text, str) or not isinstance(encoding, str) or \
            codecs.lookup(encoding).name != "iso8859-1" or errors != "strict":
        raise DatasetError(f"refusing _codecs.encode with encoding {encoding!r}")
    return text.encode("latin-1", "strict")


_NDARRAY = _Global("numpy.ndarray", _not_callable)
_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"): _Global("_reconstruct", _reconstruct),
    ("numpy._core.multiarray", "_reconstruct"): _Global("_reconstruct", _reconstruct),
    ("numpy", "ndarray"): _NDARRAY,
    ("numpy", "dtype"): _Global("numpy.dtype", _DtypeSpec),
    ("_codecs", "encode"): _Global("_codecs.encode", _latin1_encode),
}


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that can build only dicts, lists, numbers, strings and array records.

    ``find_class`` answers for NumPy's ``_reconstruct`` (under ``numpy.core`` or
    ``numpy._core``), ``numpy.ndarray``, ``numpy.dtype`` and a latin-1-only
    ``_codecs.encode``, each with a stand-in of clearconv's: ``_reconstruct`` and BUILD
    record an array's shape, built-in numeric dtype and raw bytes (checked to agree)
    without allocating, ``numpy.ndarray`` cannot be called, and BUILD on any of them is
    refused. Any other global (``os.system``, ``builtins.eval``, ...) raises
    :class:`DatasetError` before it can be called. Persistent ids are refused too.
    :func:`read_cifar_batch` also checks every opcode's length field and memo index
    before loading (see ``_scan``), and builds the arrays itself from the checked bytes.
    """

    def __init__(self, file: IO[bytes]) -> None:
        super().__init__(file, encoding="bytes")

    def find_class(self, module: str, name: str) -> Any:
        found = _GLOBALS.get((module, name))
        if found is not None:
            return found
        raise DatasetError(
            f"refusing to load the global {module}.{name}: a CIFAR batch holds only a dict "
            "of NumPy arrays and lists"
        )

    def persistent_load(self, pid: Any) -> Any:
        raise DatasetError("refusing a pickle with persistent ids")


#: the opcodes that store into or read from the unpickler's memo, by index
_MEMO_OPCODES = frozenset({"PUT", "BINPUT", "LONG_BINPUT", "GET", "BINGET", "LONG_BINGET"})


def _scan(data: bytes, name: str) -> None:
    """Walk the opcodes before anything is built: a length field larger than the bytes
    left, or a memo index no pickler writes, would make the unpickler allocate that much
    (a 5-byte opcode can announce 4 GiB); both are refused here, allocating nothing."""
    count = 0
    try:
        for opcode, arg, pos in pickletools.genops(io.BytesIO(data)):
            count += 1
            if opcode.name in _MEMO_OPCODES and int(arg) > count:
                raise DatasetError(f"{name}: memo index {arg} at byte {pos} of a pickle "
                                   f"of {count} opcodes so far: not a CIFAR batch")
    except DatasetError:
        raise
    except Exception as exc:  # genops: ValueError for a truncated or unknown opcode, ...
        raise DatasetError(f"{name}: not a readable CIFAR batch ({type(exc).__name__}: "
                           f"{exc})") from exc


def _unpickle(source: IO[bytes], name: str) -> Any:
    """Load one pickle with :class:`RestrictedUnpickler`; every failure is a DatasetError."""
    try:
        chunks, size = [], 0
        while size <= MAX_BATCH_BYTES:   # in 1 MiB reads: nothing allocated up front
            chunk = source.read(min(1 << 20, MAX_BATCH_BYTES + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        data = b"".join(chunks)
        del chunks
    except (OSError, EOFError, zlib.error) as exc:  # a damaged archive stream, too
        raise DatasetError(f"{name}: cannot read the CIFAR batch: {exc}") from exc
    if len(data) > MAX_BATCH_BYTES:
        raise DatasetError(f"{name}: larger than MAX_BATCH_BYTES = {MAX_BATCH_BYTES} bytes "
                           "(a CIFAR-10 batch has about 31 MB): not a CIFAR batch")
    _scan(data, name)
    try:
        return RestrictedUnpickler(io.BytesIO(data)).load()
    except DatasetError as exc:
        raise DatasetError(f"{name}: {exc}") from exc
    except Exception as exc:  # a damaged pickle can fail in many ways; all mean "corrupt"
        raise DatasetError(f"{name}: not a readable CIFAR batch ({type(exc).__name__}: {exc})") \
            from exc


def _check_batch(obj: Any, name: str) -> tuple[np.ndarray, np.ndarray]:
    if not isinstance(obj, dict):
        raise DatasetError(f"{name}: expected a dict, got {type(obj).__name__}")
    data, labels = obj.get(b"data"), obj.get(b"labels")
    if isinstance(data, _ArraySpec) and data.shape is not None:
        data = _array_from_state(data)  # built here, from the pickle's checked bytes
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 \
            or data.shape[1] != _PIXELS:
        got = (f"{data.dtype} of shape {data.shape}" if isinstance(data, np.ndarray)
               else type(data).__name__)
        raise DatasetError(f"{name}: b'data' must be a uint8 array of shape (N, {_PIXELS}), "
                           f"got {got}")
    if not isinstance(labels, list) or not all(
            isinstance(v, int) and not isinstance(v, bool) for v in labels):
        raise DatasetError(f"{name}: b'labels' must be a list of ints")
    if len(labels) != data.shape[0]:
        raise DatasetError(f"{name}: {data.shape[0]} images but {len(labels)} labels")
    # checked as Python ints: a label beyond int64 would overflow np.array
    if labels and (min(labels) < 0 or max(labels) >= len(CIFAR10_CLASSES)):
        raise DatasetError(f"{name}: labels must be in 0..{len(CIFAR10_CLASSES) - 1}, got "
                           f"{min(labels)}..{max(labels)}")
    label_array = np.array(labels, dtype=np.int64)
    # The CIFAR row layout (R plane, G plane, B plane, each 32x32 row-major) is NCHW.
    return data.reshape(-1, 3, 32, 32), label_array


def read_cifar_batch(source: PathLike | IO[bytes],
                     name: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Read one CIFAR-10 batch file safely.

    Args:
        source: a path, or a binary file object (a tar member).
        name: what error messages call the source; default its path.

    Returns:
        images: ndarray of shape ``(N, 3, 32, 32)`` (NCHW, RGB), uint8.
        labels: ndarray of shape ``(N,)``, int64, values 0..9 (:data:`CIFAR10_CLASSES`).

    Raises:
        DatasetNotFoundError: the path does not exist.
        DatasetError: not a pickle, a pickle that names any global other than the few
            allowed (nothing it names is ever called), or a result that is not a batch.
    """
    if isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        try:
            with open_regular(path, DatasetError) as f:
                obj = _unpickle(f, name or path)
        except FileNotFoundError as exc:
            raise DatasetNotFoundError(f"{path}: no such file") from exc
        return _check_batch(obj, name or path)
    label = name or getattr(source, "name", "<CIFAR batch>")
    return _check_batch(_unpickle(source, label), label)


def _locate(root: Path) -> Path:
    """The batches folder or the archive under ``root`` (or ``root`` itself)."""
    if root.is_file():
        return root
    for candidate in (root, root / CIFAR10_FOLDER, root / "cifar10" / CIFAR10_FOLDER):
        if (candidate / "test_batch").is_file() or (candidate / "data_batch_1").is_file():
            return candidate
    for candidate in (root / CIFAR10_ARCHIVE, root / "cifar10" / CIFAR10_ARCHIVE):
        if candidate.is_file():
            return candidate
    raise DatasetNotFoundError(
        f"CIFAR-10 not found in {root}: expected {CIFAR10_ARCHIVE} or a {CIFAR10_FOLDER}/ "
        "folder with data_batch_1 .. data_batch_5 and test_batch. "
        f"Put the files in {root}, or use --download."
    )


def _read_from_archive(archive: Path, batches: tuple[str, ...]) -> list[tuple[np.ndarray,
                                                                             np.ndarray]]:
    wanted = {f"{CIFAR10_FOLDER}/{b}": b for b in batches}
    found: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    try:
        with open_regular(archive, DatasetError) as raw, \
                tarfile.open(fileobj=raw, mode="r:*") as tar:
            for count, member in enumerate(tar, 1):  # one pass: a .tar.gz is read once
                # every member's real size is bounded before it is read or skipped (a
                # skip decompresses it too); the archive holds 8 regular files
                if member.issparse() or member.size > MAX_BATCH_BYTES or count > 64:
                    what = ("a sparse member" if member.issparse() else
                            f"{count} members" if count > 64 else
                            f"a member of {member.size} bytes")
                    raise DatasetError(f"{archive}: {what} ({member.name!r:.60}): not the "
                                       f"CIFAR-10 archive (MAX_BATCH_BYTES = "
                                       f"{MAX_BATCH_BYTES})")
                if member.name in wanted and member.isfile():
                    f = tar.extractfile(member)
                    if f is not None:
                        found[wanted[member.name]] = read_cifar_batch(
                            f, name=f"{archive}:{member.name}")
                if len(found) == len(wanted):
                    break
    except (tarfile.TarError, OSError, EOFError, zlib.error, _LZMAError) as exc:
        raise DatasetError(f"{archive}: corrupt or truncated archive: {exc}") from exc
    missing = [b for b in batches if b not in found]
    if missing:
        names = ", ".join(f"{CIFAR10_FOLDER}/{m}" for m in missing)
        raise DatasetError(f"{archive}: missing {names}")
    return [found[b] for b in batches]


def load_cifar10(root: PathLike | None = None,
                 split: str = "train") -> tuple[np.ndarray, np.ndarray]:
    """Load CIFAR-10 from the "python version" batches, safely (no arbitrary unpickling).

    Args:
        root: ``cifar-10-python.tar.gz`` itself, a folder holding it, a
            ``cifar-10-batches-py/`` folder, or a folder holding that folder (the archive
            is read in place, never extracted). None: the download cache,
            :func:`clearconv.data.data_home` / ``"cifar10"``.
        split: ``"train"`` (``data_batch_1`` .. ``data_batch_5``, 50000 images) or
            ``"test"`` (``test_batch``, 10000).

    Returns:
        images: ndarray of shape ``(N, 3, 32, 32)`` (NCHW, RGB), uint8; use
            ``to_float(images)`` for [0, 1].
        labels: ndarray of shape ``(N,)``, int64, values 0..9, names in
            :data:`CIFAR10_CLASSES`.

    Raises:
        DatasetNotFoundError: no batches or archive under ``root``, or a batch missing.
        DatasetError: a corrupt, foreign or unsafe batch (see :func:`read_cifar_batch`).
    """
    if split not in _SPLIT_BATCHES:
        raise DatasetError(f"split must be one of {tuple(_SPLIT_BATCHES)}, got {split!r}")
    if root is None:
        root = data_home() / "cifar10"
    location = _locate(Path(root))
    batches = _SPLIT_BATCHES[split]
    if location.is_file():
        parts = _read_from_archive(location, batches)
    else:
        missing = [b for b in batches if not (location / b).is_file()]
        if missing:
            raise DatasetNotFoundError(
                f"CIFAR-10 {split} batches missing in {location}: {', '.join(missing)}. "
                f"Put the files in {location}, or use --download."
            )
        parts = [read_cifar_batch(location / b) for b in batches]
    images = np.concatenate([p[0] for p in parts])
    labels = np.concatenate([p[1] for p in parts])
    return images, labels
