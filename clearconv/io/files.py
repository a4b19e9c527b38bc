"""Model files: one ``.npz`` archive of arrays plus a JSON config. No pickle.

Layout of a file written by :func:`save_arrays`:

* ``__config__``: uint8 array of shape ``(n_bytes,)``, the UTF-8 JSON of the config
  with the format tag ``{"format": "clearconv-model", "version": 1}`` merged in;
* one ``.npy`` member per array, under its key.

Writes are atomic (a temporary file in the same directory, flushed, fsynced, then
``os.replace``d over the target), so a crash or an error leaves the old file intact.
Reads use ``allow_pickle=False`` and turn every kind of damage into a
:class:`~clearconv.errors.ModelFileError` that names the file.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import stat
import struct
import tempfile
import tokenize
import zipfile
import zlib
from collections.abc import Iterator
from typing import Any, BinaryIO, Union

import numpy as np

from ..errors import ClearConvError, ModelFileError

PathLike = Union[str, "os.PathLike[str]"]

FORMAT_NAME = "clearconv-model"
FORMAT_VERSION = 1
CONFIG_KEY = "__config__"
_TAG_KEYS = ("format", "version")
#: what np.load and the zip/npy readers raise on a damaged, foreign or unsafe file:
#: not a zip, or a pickle (ValueError: "allow_pickle=False"); a bad or truncated zip
#: (BadZipFile, EOFError, zlib.error, OSError; RuntimeError for an "encrypted" flag);
#: a bad .npy header (ValueError, SyntaxError, struct.error, KeyError, TypeError;
#: tokenize.TokenError and RecursionError for a mangled or deeply nested dict literal);
#: an absurd shape (MemoryError, OverflowError).
_READ_ERRORS = (
    ValueError, OSError, EOFError, KeyError, IndexError, TypeError, SyntaxError,
    MemoryError, OverflowError, NotImplementedError, RuntimeError, RecursionError,
    zipfile.BadZipFile, zlib.error, struct.error, tokenize.TokenError,
)
#: deflate cannot compress better than about 1032:1; a member claiming more is refused.
_DEFLATE_MAX_RATIO = 1100
#: the most bytes a model file's members may hold once inflated, all together, checked
#: before any member is read (raise it to load a larger model)
MAX_MODEL_BYTES = 512 * 1024 * 1024
#: how a zip archive (so an .npz) begins: a local file header, or an empty archive
_ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")
_NPY_HEADER_READERS = {(1, 0): np.lib.format.read_array_header_1_0,
                       (2, 0): np.lib.format.read_array_header_2_0}


def _check_arrays(arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Return ``arrays`` as ndarrays, refusing bad keys and object dtypes."""
    checked: dict[str, np.ndarray] = {}
    for key, value in arrays.items():
        if not isinstance(key, str) or not key:
            raise ClearConvError(f"array keys must be non-empty strings, got {key!r}")
        if key == CONFIG_KEY:
            raise ClearConvError(f"the array key {CONFIG_KEY!r} is reserved for the config")
        array = np.asarray(value)
        if array.dtype.hasobject:
            raise ClearConvError(
                f"array {key!r} has dtype {array.dtype}, which holds Python objects; "
                "only numeric arrays can be saved (no pickle)"
            )
        checked[key] = array
    return checked


def _encode_config(config: dict[str, Any]) -> np.ndarray:
    """The config with the format tag merged in, as a uint8 array of UTF-8 JSON bytes."""
    if not isinstance(config, dict):
        raise ClearConvError(f"config must be a dict, got {type(config).__name__}")
    tag = {"format": FORMAT_NAME, "version": FORMAT_VERSION}
    for key in _TAG_KEYS:
        if key in config and config[key] != tag[key]:
            raise ClearConvError(
                f"config key {key!r} is reserved for the file format tag, got {config[key]!r}"
            )
    try:
        text = json.dumps({**config, **tag}, allow_nan=False, sort_keys=True)
    except (TypeError, ValueError) as exc:
        raise ClearConvError(f"config must be JSON serialisable: {exc}") from exc
    return np.frombuffer(text.encode("utf-8"), dtype=np.uint8)


def open_regular(path: PathLike, error: type[ClearConvError] = ClearConvError,
                 what: str = "file") -> BinaryIO:
    """Open ``path`` for binary reading if it is a regular file (a symlink to one is
    fine); a FIFO, socket, device or folder raises ``error`` naming it instead of
    blocking at the open or reading forever. A missing file raises FileNotFoundError.
    """
    path = os.fspath(path)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0)
                     | getattr(os, "O_BINARY", 0))
    except IsADirectoryError:
        raise error(f"{path}: a folder, not a {what}") from None
    try:
        kind = os.fstat(fd).st_mode
        if not stat.S_ISREG(kind):
            name = ("a folder" if stat.S_ISDIR(kind) else "a FIFO" if stat.S_ISFIFO(kind)
                    else "a device" if stat.S_ISCHR(kind) or stat.S_ISBLK(kind)
                    else "a socket" if stat.S_ISSOCK(kind) else "not a regular file")
            raise error(f"{path}: {name}, not a {what}")
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def _new_file_mode(path: str) -> int:
    """Permission bits for the written file: the old file's, else 0o666 less the umask."""
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except FileNotFoundError:
        umask = os.umask(0o022)
        os.umask(umask)
        return 0o666 & ~umask


def save_arrays(path: PathLike, config: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
    """Write ``config`` and ``arrays`` to one ``.npz`` file at ``path``, atomically.

    Args:
        path: the file to write, used exactly as given (no ``.npz`` is appended).
        config: a JSON-serialisable dict (layer list, hyper-parameters, ...). The keys
            ``"format"`` and ``"version"`` are reserved for the format tag.
        arrays: name -> ndarray of any shape and numeric dtype; dtypes and values are
            stored exactly. Object arrays are refused.

    Raises:
        ClearConvError: a bad config, key or dtype (nothing is written).
        OSError: the file could not be written; an existing file at ``path`` is then
            unchanged and no temporary file is left behind.
    """
    path = os.fspath(path)
    members = _check_arrays(arrays)
    members[CONFIG_KEY] = _encode_config(config)
    with atomic_write(path) as f:
        np.savez(f, **members)


@contextlib.contextmanager
def atomic_write(path: PathLike) -> Iterator[BinaryIO]:
    """Write a file so that ``path`` is always either the old file or the complete new one.

    Yields a binary file opened beside ``path`` (same folder, a hidden temporary name).
    When the block ends without error the data are flushed and fsynced, the file gets
    the permission bits of the file it replaces (else ``0o666`` less the umask, as
    ``open`` would) and is renamed over ``path`` with ``os.replace``; the folder is
    fsynced where the platform allows. On any error, Ctrl-C included, the temporary
    file is removed and ``path`` is untouched; an OSError of the write itself (a full
    disk, a read-only folder) is raised again naming ``path``, not the temporary file.
    A write killed outright (``kill -9``) leaves ``.<name>.*.tmp`` behind:
    :func:`remove_stale_temporaries` clears those.

    >>> with atomic_write("/tmp/clearconv-doc.txt") as f:
    ...     _ = f.write(b"hello")
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    try:
        mode = _new_file_mode(path)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp",
                                        dir=directory)
    except OSError as exc:
        raise _naming(exc, path) from None
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp_name, mode)
        os.replace(tmp_name, path)
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        if isinstance(exc, OSError) and exc.errno is not None and \
                exc.filename in (None, tmp_name):   # the write's own error
            raise _naming(exc, path) from None
        raise
    _fsync_directory(directory)


def _naming(exc: OSError, path: str) -> OSError:
    """The same kind of OSError, its message naming the user's ``path`` (not the hidden
    temporary file): ``cannot write out.npz: No space left on device``."""
    reason = exc.strerror or str(exc)
    if isinstance(exc, IsADirectoryError) or os.path.isdir(path):
        reason = "it is a folder"
    return type(exc)(exc.errno, f"cannot write {path}: {reason}")


def remove_stale_temporaries(path: PathLike, older_than: float = 0.0) -> list[str]:
    """Remove the temporary files that :func:`atomic_write` left beside ``path`` when a
    write was killed (``kill -9``, a power cut): ``.<name>.*.tmp`` in its folder, last
    modified at least ``older_than`` seconds ago. Returns the names removed. Call it only
    when no other process may be writing ``path`` (the training lock is held)."""
    import time

    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    prefix = f".{os.path.basename(path)}."
    removed = []
    try:
        names = os.listdir(directory)
    except OSError:
        return removed
    now = time.time()
    for name in names:
        if name.startswith(prefix) and name.endswith(".tmp"):
            full = os.path.join(directory, name)
            with contextlib.suppress(OSError):
                info = os.lstat(full)
                if stat.S_ISREG(info.st_mode) and now - info.st_mtime >= older_than:
                    os.unlink(full)
                    removed.append(name)
    return removed


def _fsync_directory(directory: str) -> None:
    """Make the rename durable where the platform allows it (POSIX); skip elsewhere."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _decode_config(path: str, raw: np.ndarray) -> dict[str, Any]:
    """Parse and check the ``__config__`` member; return the config without the tag."""
    if raw.dtype != np.uint8 or raw.ndim != 1:
        raise ModelFileError(
            f"{path}: {CONFIG_KEY} must be a 1-D uint8 array, "
            f"got dtype {raw.dtype} and shape {raw.shape}"
        )
    try:
        config = json.loads(raw.tobytes().decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise ModelFileError(f"{path}: {CONFIG_KEY} is not valid UTF-8 JSON ({exc})") from None
    if not isinstance(config, dict):
        raise ModelFileError(f"{path}: {CONFIG_KEY} must hold a JSON object")
    if config.get("format") != FORMAT_NAME:
        raise ModelFileError(
            f"{path}: not a clearconv model file "
            f"(format tag {config.get('format')!r}, expected {FORMAT_NAME!r})"
        )
    version = config.get("version")
    if version != FORMAT_VERSION:
        raise ModelFileError(
            f"{path}: unsupported clearconv model file version {version!r} "
            f"(this clearconv reads version {FORMAT_VERSION})"
        )
    for key in _TAG_KEYS:
        del config[key]
    return config


def _check_member_size(path: str, archive: zipfile.ZipFile, name: str, file_size: int) -> None:
    """Refuse a member whose ``.npy`` header announces more (or less) data than the member
    holds, or whose zip entry claims an impossible size, before NumPy allocates the array."""
    member = name if name in archive.namelist() else f"{name}.npy"
    info = archive.getinfo(member)
    if info.compress_size > file_size or info.file_size > (
            info.compress_size if info.compress_type == zipfile.ZIP_STORED
            else _DEFLATE_MAX_RATIO * info.compress_size + (1 << 20)):
        raise ModelFileError(
            f"{path}: member {name!r} claims {info.file_size} bytes from {info.compress_size} "
            f"stored in a {file_size}-byte file: corrupt or a zip bomb"
        )
    with archive.open(info) as stream:
        if stream.read(len(np.lib.format.MAGIC_PREFIX)) != np.lib.format.MAGIC_PREFIX:
            return  # not a .npy member: np.load returns its bytes, refused by the caller
    with archive.open(info) as stream:
        version = np.lib.format.read_magic(stream)
        # clearconv writes version 1.0 (2.0 for a huge header); 3.0 only serves
        # non-latin-1 field names, which no model file has
        if version not in _NPY_HEADER_READERS:
            raise ModelFileError(f"{path}: member {name!r}: unsupported .npy version {version}")
        shape, _, dtype = _NPY_HEADER_READERS[version](stream)
        header_size = stream.tell()
    if dtype.hasobject:
        raise ModelFileError(f"{path}: member {name!r} holds Python objects (pickled data)")
    announced = math.prod(shape) * dtype.itemsize
    if announced != info.file_size - header_size:
        raise ModelFileError(
            f"{path}: member {name!r}: its .npy header announces shape {shape} of {dtype} "
            f"({announced} bytes), the member holds {info.file_size - header_size} bytes "
            "after its header"
        )


def _read_members(path: str, f: Any) -> dict[str, np.ndarray]:
    """Every member of the npz open as ``f``, as ndarrays; ModelFileError on any damage."""
    if f.read(len(np.lib.format.MAGIC_PREFIX)) == np.lib.format.MAGIC_PREFIX:
        raise ModelFileError(
            f"{path}: a bare .npy array, not a clearconv model file (.npz archive)"
        )
    f.seek(0)
    if f.read(4) not in _ZIP_MAGICS:
        raise ModelFileError(f"{path}: not a clearconv model file (not an .npz archive: "
                             "it does not begin as a zip file does)")
    f.seek(0)
    try:
        loaded = np.load(f, allow_pickle=False)
    except _READ_ERRORS as exc:
        raise ModelFileError(f"{path}: not a readable .npz archive ({_describe(exc)})") from None
    if not isinstance(loaded, np.lib.npyio.NpzFile):
        raise ModelFileError(
            f"{path}: a bare .npy array, not a clearconv model file (.npz archive)"
        )
    file_size = os.fstat(f.fileno()).st_size
    members: dict[str, np.ndarray] = {}
    with loaded:
        inflated = sum(info.file_size for info in loaded.zip.infolist())
        if inflated > MAX_MODEL_BYTES:
            loaded.close()
            raise ModelFileError(
                f"{path}: its members hold {inflated} bytes once inflated, more than "
                f"clearconv.io.files.MAX_MODEL_BYTES = {MAX_MODEL_BYTES}; raise that limit "
                "to load a model this large")
        for name in loaded.files:
            try:
                _check_member_size(path, loaded.zip, name, file_size)
                value = loaded[name]
            except _READ_ERRORS as exc:
                raise ModelFileError(
                    f"{path}: member {name!r} cannot be read ({_describe(exc)})"
                ) from None
            if not isinstance(value, np.ndarray):
                raise ModelFileError(f"{path}: member {name!r} is not a .npy array")
            if value.dtype.hasobject:
                raise ModelFileError(f"{path}: member {name!r} holds Python objects")
            members[name] = value
    return members


def _describe(exc: BaseException) -> str:
    """A one-line description of a low-level error, for a ModelFileError message."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def load_arrays(path: PathLike) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Read a file written by :func:`save_arrays`. Never unpickles anything.

    Args:
        path: the model file.

    Returns:
        config: the dict given to :func:`save_arrays` (format tag removed).
        arrays: name -> ndarray, with the saved dtypes, shapes and values.

    Size budget: the members' inflated sizes (as the zip announces them, which bounds
    what is read) must sum to at most :data:`MAX_MODEL_BYTES`, checked before any
    member is inflated; each ``.npy`` header must announce exactly its member's bytes.

    Raises:
        FileNotFoundError: no file at ``path``.
        ModelFileError: a folder, FIFO or device; more than MAX_MODEL_BYTES inflated;
            the file is not a zip, is truncated or corrupt, lacks
            ``__config__``, holds invalid JSON, a foreign format tag or version,
            pickled or object data; the message names ``path`` and the defect.
    """
    path = os.fspath(path)
    try:
        with open_regular(path, ModelFileError, "model file") as f:
            members = _read_members(path, f)
    except FileNotFoundError:
        raise FileNotFoundError(f"model file not found: {path}") from None
    if CONFIG_KEY not in members:
        raise ModelFileError(
            f"{path}: no {CONFIG_KEY} entry; not a clearconv model file "
            f"(members: {sorted(members)})"
        )
    config = _decode_config(path, members.pop(CONFIG_KEY))
    return config, members
