"""The live server's breakdown worker: a process of its own, so that the loop reference's
Python (about a second for the MNIST CNN) never holds the server's interpreter lock.

``python -m clearconv.explore._worker MODEL.npz`` loads the model (the server saved it
there, in clearconv's own file format) and answers requests on stdin/stdout, each a
4-byte big-endian length and that many bytes: a JSON header (``label``, ``target``,
``model_source``, ``source``, ``shape``) followed by the input as float32 bytes; the
answer is the JSON of :func:`clearconv.explore.page.payload`, or ``{"error": ...}``.
"""

from __future__ import annotations

import json
import struct
import sys
from typing import Any, BinaryIO


def read_message(stream: BinaryIO) -> bytes | None:
    head = stream.read(4)
    if len(head) < 4:
        return None
    (n,) = struct.unpack(">I", head)
    body = stream.read(n)
    return body if len(body) == n else None


def write_message(stream: BinaryIO, body: bytes) -> None:
    stream.write(struct.pack(">I", len(body)) + body)
    stream.flush()


def answer(model: Any, message: bytes) -> bytes:
    import numpy as np

    from .data import compute
    from .page import payload

    head_len = int.from_bytes(message[:4], "big")
    head = json.loads(message[4:4 + head_len])
    x = np.frombuffer(message[4 + head_len:], np.float32).reshape(head["shape"])
    data = compute(model, x, label=head["label"], target=head["target"], details=True)
    return json.dumps(payload(data, head["model_source"], head["source"], level=1)).encode()


def main(argv: list[str]) -> int:
    from ..train.sequential import load

    model = load(argv[0])
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    while (message := read_message(stdin)) is not None:
        try:
            reply = answer(model, message)
        except Exception as e:  # noqa: BLE001 - the server reports it; the worker lives on
            reply = json.dumps({"error": f"{type(e).__name__}: {e}"}).encode()
        write_message(stdout, reply)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
