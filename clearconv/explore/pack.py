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


def pack(data: ExplorerData, level: int = 6) -> dict[str, Any]:
    """``{"index": {name: [dtype, shape, offset, nbytes]}, "blob": base64 str,
    "raw_bytes": int}``; level 0 stores the bytes uncompressed (zlib still frames them)."""
    index: dict[str, list[Any]] = {}
    parts = []
    offset = 0
    for name, a in data.arrays.items():
        code = _DTYPES.get(str(a.dtype))
        if code is None:
            raise TypeError(f"array {name} has dtype {a.dtype}, not one the page reads")
        b = _shuffle(a)
        index[name] = [code, list(a.shape), offset, len(b)]
        parts.append(b)
        offset += len(b)
    raw = b"".join(parts)
    blob = zlib.compress(raw, level)
    return {"index": index, "blob": base64.b64encode(blob).decode("ascii"), "raw_bytes": len(raw)}


def unpack(packed: dict[str, Any]) -> dict[str, np.ndarray]:
    """The arrays back from :func:`pack`'s result (what the page's decoder does)."""
    raw = zlib.decompress(base64.b64decode(packed["blob"]))
    return {name: _unshuffle(raw[off:off + n], code, shape)
            for name, (code, shape, off, n) in packed["index"].items()}
