"""The explorer's arrays as one compact blob the page decodes without computing anything.

Every array is laid out as bytes (float32 little-endian, int16/int32 for indices), the
bytes of a float array regrouped by their position in the number (all first bytes, all
second bytes, ...; the "shuffle" of HDF5 and Blosc: exponents and signs then sit
together and compress well), concatenated, and compressed with zlib (the page inflates
it with the browser's ``DecompressionStream('deflate')``). The index says where each
array starts, its dtype and its shape.
"""

from __future__ import annotations

import base64
import zlib
from typing import Any

import numpy as np

from .data import ExplorerData

_DTYPES = {"float32": "f4", "int16": "i2", "int32": "i4"}


def _shuffle(a: np.ndarray) -> bytes:
    raw = np.ascontiguousarray(a.astype(a.dtype.newbyteorder("<"), copy=False))
    return raw.view(np.uint8).reshape(-1, a.itemsize).T.tobytes()


def _unshuffle(buf: bytes, dtype: str, shape: list[int]) -> np.ndarray:
    dt = np.dtype("<" + dtype)
    planes = np.frombuffer(buf, np.uint8).reshape(dt.itemsize, -1)
    return planes.T.copy().view(dt).reshape(shape)


#: store an array sparse when at least this fraction of it is 0
SPARSE_FROM = 0.25


def _encode(a: np.ndarray) -> tuple[bytes, int]:
    """(bytes, number of non-zero values stored sparse, or -1 for a dense array)."""
    flat = a.ravel()
    nonzero = flat != 0
    if a.dtype.kind == "f" and flat.size >= 64 and 1 - nonzero.mean() >= SPARSE_FROM:
        return np.packbits(nonzero).tobytes() + _shuffle(flat[nonzero]), int(nonzero.sum())
    return _shuffle(a), -1


def _decode(buf: bytes, code: str, shape: list[int], count: int) -> np.ndarray:
    if count < 0:
        return _unshuffle(buf, code, shape)
    size = int(np.prod(shape))
    n_bits = (size + 7) // 8
    nonzero = np.unpackbits(np.frombuffer(buf[:n_bits], np.uint8))[:size].astype(bool)
    out = np.zeros(size, np.dtype("<" + code))
    out[nonzero] = _unshuffle(buf[n_bits:], code, [count])
    return out.reshape(shape)


def pack(data: ExplorerData, level: int = 6) -> dict[str, Any]:
    """``{"index": {name: [dtype, stored shape, offset, nbytes, sparse count, axes]},
    "blob": base64 str, "raw_bytes": int}``: ``axes`` is None or the order the array's
    axes are stored in (stored index j = original index ``axes[j]``); level 0 stores the
    bytes uncompressed (zlib still frames them)."""
    index: dict[str, list[Any]] = {}
    parts = []
    offset = 0
    for name, a in data.arrays.items():
        code = _DTYPES.get(str(a.dtype))
        if code is None:
            raise TypeError(f"array {name} has dtype {a.dtype}, not one the page reads")
        axes = data.layout.get(name)
        stored = np.ascontiguousarray(np.transpose(a, axes)) if axes else a
        b, count = _encode(stored)
        index[name] = [code, list(stored.shape), offset, len(b), count,
                       list(axes) if axes else None]
        parts.append(b)
        offset += len(b)
    raw = b"".join(parts)
    blob = zlib.compress(raw, level)
    return {"index": index, "blob": base64.b64encode(blob).decode("ascii"), "raw_bytes": len(raw)}


def unpack(packed: dict[str, Any]) -> dict[str, np.ndarray]:
    """The arrays back from :func:`pack`'s result (what the page's decoder does)."""
    raw = zlib.decompress(base64.b64decode(packed["blob"]))
    out = {}
    for name, (code, shape, off, n, count, axes) in packed["index"].items():
        stored = _decode(raw[off:off + n], code, shape, count)
        out[name] = np.transpose(stored, np.argsort(axes)) if axes else stored
    return out
