"""Live mode: the explorer as a local web app (``clearconv serve MODEL``).

The learner draws a digit on the page's canvas or drops a photo; the page posts the
image (PNG/JPEG bytes) and clearconv answers with every number the explorer shows,
computed here for that image (:func:`clearconv.explore.data.compute`). Two requests per
change: ``details=0`` (the maps, the prediction and the gradients: the fast update) and
then ``details=1`` (the loop-by-loop breakdowns of reference.py).

Built on :mod:`http.server` (threaded; one lock around the model, whose layers keep
their caches between forward and backward). Bound to 127.0.0.1 unless told otherwise.
Uploads are bounded (``max_upload`` bytes, announced by Content-Length before any byte
is read) and decoded by clearconv's one image decoder (its pixel budget included); a
malformed request gets a 4xx answer with the reason, never a crash.

Endpoints: ``GET /`` the page, ``POST /api/explore?details=0|1&target=K[&default=1]
[&client=ID&seq=N]`` with the image as the body (``default=1`` and an empty body: the
default digit).

The fast updates run in the server's process; the breakdowns (the loop reference:
about a second of Python for the MNIST CNN, which would hold the interpreter lock) in a
worker process (:mod:`._worker`, the model saved for it in clearconv's file format), so
that a breakdown never holds up the next drawing's update. A page names itself
(``client``) and numbers its requests (``seq``): a breakdown request that a newer one
of the same page overtook while it waited is answered 409 (superseded) instead of being
computed.
"""

from __future__ import annotations

import io
import json
import re
import threading
import time
from collections import OrderedDict
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from ..errors import ClearConvError
from ..train.sequential import Sequential
from .data import compute
from .page import payload, render

#: the largest upload accepted, in bytes (a phone photo fits; the pixel budget of the
#: image decoder applies on top)
MAX_UPLOAD = 8 * 1024 * 1024


class ExplorerApp:
    """The model and what the server does with a request, apart from HTTP.

    ``explore(body, details, target, default)`` -> the JSON-able answer; raises
    ClearConvError (a ValueError) for anything wrong with the request.
    """

    def __init__(self, model: Sequential, model_source: str = "", seed: int = 0,
                 max_upload: int = MAX_UPLOAD, worker: bool = True) -> None:
        if model.input_shape is None or len(model.input_shape) != 3:
            raise ClearConvError("serve needs an image model with a known (C, H, W) input "
                                 "shape")
        self.model = model
        self.model_source = model_source
        self.seed = seed
        self.max_upload = int(max_upload)
        self.lock = threading.Lock()
        self._page: str | None = None
        self.detail_lock = threading.Lock()
        self.worker = worker             # False: the breakdowns in this process (tests)
        self._proc: Any = None                         # the worker (subprocess.Popen)
        self._folder: Any = None                       # where the worker's model file is
        self._newest: OrderedDict[str, int] = OrderedDict()   # client -> newest seq
        self._newest_lock = threading.Lock()

    def page(self) -> str:
        """The live page, with the default digit's numbers in it (made once)."""
        from . import resolve_input

        with self.lock:
            if self._page is None:
                x, source, label = resolve_input(self.model, None, self.seed)
                data = compute(self.model, x, label=label)
                self._page = render(data, "clearconv explorer (live)", self.model_source,
                                    source, live=True)
            return self._page

    def _note(self, client: str | None, seq: int | None) -> None:
        if client is None or seq is None:
            return
        with self._newest_lock:
            self._newest[client] = max(seq, self._newest.get(client, seq))
            self._newest.move_to_end(client)
            while len(self._newest) > 1000:               # bounded: the oldest pages go
                self._newest.popitem(last=False)

    def superseded(self, client: str | None, seq: int | None) -> bool:
        """Whether a newer request of the same page arrived after this one."""
        if client is None or seq is None:
            return False
        with self._newest_lock:
            return self._newest.get(client, seq) > seq

    def explore(self, body: bytes, details: bool = True, target: int | None = None,
                default: bool = False, client: str | None = None,
                seq: int | None = None) -> dict[str, Any] | None:
        """The answer to one request; None when a newer request of the same page
        overtook this breakdown request while it waited."""
        from ..data.images import read_image
        from . import resolve_input

        t0 = time.perf_counter()
        if default or not body:
            if not default:
                raise ClearConvError("the request has no image: post PNG or JPEG bytes")
            x, source, label = resolve_input(self.model, None, self.seed)
        else:
            pixels, steps = read_image(io.BytesIO(body))
            h, w = pixels.shape[1:]
            x, source, label = resolve_input(self.model, pixels, self.seed, decoded=steps,
                                             name=f"your upload {w}x{h}")
        self._note(client, seq)
        if details:
            with self.detail_lock:
                if self.superseded(client, seq):
                    return None
                answer = self._breakdowns(x, label, target, source)
        else:
            with self.lock:
                data = compute(self.model, x, label=label, target=target, details=False)
            answer = payload(data, self.model_source, source, level=1)
        answer["ms"] = round((time.perf_counter() - t0) * 1000, 1)
        return answer


    def _breakdowns(self, x: Any, label: int | None, target: int | None, source: str
                    ) -> dict[str, Any]:
        """The details payload, from the worker process (started on first use, and
        again if it died). Called with ``detail_lock`` held: one request at a time."""
        if not self.worker:
            with self.lock:
                data = compute(self.model, x, label=label, target=target, details=True)
            return payload(data, self.model_source, source, level=1)
        import numpy as np

        from ._worker import read_message, write_message

        head = json.dumps({"label": label, "target": target, "model_source": self.model_source,
                           "source": source, "shape": list(np.shape(x))}).encode()
        message = (len(head).to_bytes(4, "big") + head
                   + np.ascontiguousarray(x, np.float32).tobytes())
        for attempt in range(2):
            proc = self._worker_process()
            try:
                write_message(proc.stdin, message)
                reply = read_message(proc.stdout)
            except (BrokenPipeError, OSError):
                reply = None
            if reply is not None:
                answer = json.loads(reply)
                if "error" in answer:
                    raise ClearConvError(answer["error"])
                return answer
            self._stop_worker()                  # it died: start a fresh one, once
            if attempt:
                raise ClearConvError("the breakdown worker stopped")
        raise AssertionError("unreachable")

    def _worker_process(self) -> Any:
        import os
        import subprocess
        import sys
        import tempfile
        from pathlib import Path

        if self._proc is not None and self._proc.poll() is None:
            return self._proc
        if self._folder is None:
            self._folder = tempfile.TemporaryDirectory(prefix="clearconv-serve-")
            with self.lock:
                self.model.save(str(Path(self._folder.name) / "model.npz"))
        root = str(Path(__file__).resolve().parents[2])     # this clearconv, in the worker too
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(
            p for p in (root, os.environ.get("PYTHONPATH")) if p)}
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "clearconv.explore._worker",
             str(Path(self._folder.name) / "model.npz")],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)
        return self._proc

    def _stop_worker(self) -> None:
        if self._proc is not None:
            if self._proc.poll() is None:
                self._proc.kill()
            self._proc.wait()
            for stream in (self._proc.stdin, self._proc.stdout):
                stream.close()
            self._proc = None

    def close(self) -> None:
        """Stop the breakdown worker and remove its model file."""
        with self.detail_lock:
            self._stop_worker()
            if self._folder is not None:
                self._folder.cleanup()
                self._folder = None


def _target(query: dict[str, list[str]]) -> int | None:
    if "target" not in query:
        return None
    value = query["target"][0]
    if not value.isdigit():
        raise ClearConvError(f"target must be a class number, got {value!r}")
    return int(value)


def _client(query: dict[str, list[str]]) -> tuple[str | None, int | None]:
    client = query.get("client", [None])[0]
    seq = query.get("seq", [None])[0]
    if client is not None and not re.fullmatch(r"[A-Za-z0-9]{1,32}", client):
        raise ClearConvError("client must be 1 to 32 letters and digits")
    if seq is not None and not (seq.isdigit() and len(seq) < 16):
        raise ClearConvError(f"seq must be a request number, got {seq[:20]!r}")
    return client, None if seq is None else int(seq)


def _flag(query: dict[str, list[str]], name: str, default: bool) -> bool:
    if name not in query:
        return default
    value = query[name][0]
    if value not in ("0", "1"):
        raise ClearConvError(f"{name} must be 0 or 1, got {value!r}")
    return value == "1"


class _Handler(BaseHTTPRequestHandler):
    server_version = "clearconv-explorer"
    timeout = 30                              # seconds a slow client may hold a thread
    app: ExplorerApp
    quiet = False

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - http.server's name
        if not self.quiet:
            super().log_message(format, *args)

    def _send(self, status: int, body: bytes, kind: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _error(self, status: int, message: str) -> None:
        self._send(status, (message + "\n").encode(), "text/plain; charset=utf-8")

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        path = urlsplit(self.path).path
        if path in ("/", "/index.html"):
            try:
                text = self.app.page()
            except Exception as e:  # noqa: BLE001 - any failure is this request's only
                return self._error(HTTPStatus.INTERNAL_SERVER_ERROR, f"error: {e}")
            return self._send(HTTPStatus.OK, text.encode(), "text/html; charset=utf-8")
        if path == "/favicon.ico":
            return self._send(HTTPStatus.NO_CONTENT, b"", "image/x-icon")
        self._error(HTTPStatus.NOT_FOUND, f"not found: {path}")

    do_HEAD = do_GET

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        parts = urlsplit(self.path)
        if parts.path.lstrip("/") != "api/explore":
            return self._error(HTTPStatus.NOT_FOUND, f"not found: {parts.path}")
        length = self.headers.get("Content-Length")
        if length is None or not length.strip().isdigit():
            return self._error(HTTPStatus.LENGTH_REQUIRED, "send the image with a Content-Length")
        n = int(length)
        if n > self.app.max_upload:
            self.close_connection = True
            return self._error(HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                               f"the upload is {n} bytes, more than the {self.app.max_upload} "
                               f"this server takes")
        body = self.rfile.read(n)
        if len(body) != n:
            return self._error(HTTPStatus.BAD_REQUEST, f"the body ended after {len(body)} of "
                                                       f"{n} bytes")
        try:
            query = parse_qs(parts.query)
            answer = self.app.explore(body, _flag(query, "details", True), _target(query),
                                      _flag(query, "default", False), *_client(query))
        except (ClearConvError, FileNotFoundError) as e:
            return self._error(HTTPStatus.BAD_REQUEST, f"error: {e}")
        except Exception as e:  # noqa: BLE001 - answer, log, keep serving
            self.log_error("explore failed: %r", e)
            return self._error(HTTPStatus.INTERNAL_SERVER_ERROR, f"error: {type(e).__name__}")
        if answer is None:
            return self._error(HTTPStatus.CONFLICT, "superseded by a newer request of this page")
        self._send(HTTPStatus.OK, json.dumps(answer).encode(), "application/json")


class ExplorerServer(ThreadingHTTPServer):
    """``ExplorerServer(app, host, port)``; ``serve_forever()``, ``shutdown()``; ``url``."""

    daemon_threads = True

    def __init__(self, app: ExplorerApp, host: str = "127.0.0.1", port: int = 8000,
                 quiet: bool = False) -> None:
        handler = type("Handler", (_Handler,), {"app": app, "quiet": quiet})
        self.app = app                  # (before binding: a failed bind calls server_close)
        super().__init__((host, port), handler)

    def server_close(self) -> None:
        super().server_close()
        self.app.close()

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}/"


def serve(model: Any, host: str = "127.0.0.1", port: int = 8000, seed: int = 0,
          max_upload: int = MAX_UPLOAD, quiet: bool = False,
          ready: Any = None) -> None:
    """Serve the live explorer of ``model`` (None, a path or a Sequential, as
    :func:`clearconv.explore.explore`) until Ctrl-C. ``ready(server)`` is called once it
    listens (the CLI prints the address)."""
    from . import resolve_model

    m, source = resolve_model(model, seed)
    server = ExplorerServer(ExplorerApp(m, source, seed, max_upload), host, port, quiet)
    with server.app.detail_lock:
        server.app._worker_process()       # starts importing now, ready by the first drawing
    if ready is not None:
        ready(server)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


__all__ = ["MAX_UPLOAD", "ExplorerApp", "ExplorerServer", "serve"]
