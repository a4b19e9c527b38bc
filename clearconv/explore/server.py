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

Endpoints: ``GET /`` the page, ``POST /api/explore?details=0|1&target=K[&default=1]``
with the image as the body (``default=1`` and an empty body: the default digit).
"""

from __future__ import annotations

import io
import json
import threading
import time
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
                 max_upload: int = MAX_UPLOAD) -> None:
        if model.input_shape is None or len(model.input_shape) != 3:
            raise ClearConvError("serve needs an image model with a known (C, H, W) input "
                                 "shape")
        self.model = model
        self.model_source = model_source
        self.seed = seed
        self.max_upload = int(max_upload)
        self.lock = threading.Lock()

    def page(self) -> str:
        from . import resolve_input

        x, source, label = resolve_input(self.model, None, self.seed)
        with self.lock:
            data = compute(self.model, x, label=label)
        return render(data, "clearconv explorer (live)", self.model_source, source, live=True)

    def explore(self, body: bytes, details: bool = True, target: int | None = None,
                default: bool = False) -> dict[str, Any]:
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
        with self.lock:
            data = compute(self.model, x, label=label, target=target, details=details)
        answer = payload(data, self.model_source, source, level=1)
        answer["ms"] = round((time.perf_counter() - t0) * 1000, 1)
        return answer


def _target(query: dict[str, list[str]]) -> int | None:
    if "target" not in query:
        return None
    value = query["target"][0]
    if not value.isdigit():
        raise ClearConvError(f"target must be a class number, got {value!r}")
    return int(value)


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
                                      _flag(query, "default", False))
        except (ClearConvError, FileNotFoundError) as e:
            return self._error(HTTPStatus.BAD_REQUEST, f"error: {e}")
        except Exception as e:  # noqa: BLE001 - answer, log, keep serving
            self.log_error("explore failed: %r", e)
            return self._error(HTTPStatus.INTERNAL_SERVER_ERROR, f"error: {type(e).__name__}")
        self._send(HTTPStatus.OK, json.dumps(answer).encode(), "application/json")


class ExplorerServer(ThreadingHTTPServer):
    """``ExplorerServer(app, host, port)``; ``serve_forever()``, ``shutdown()``; ``url``."""

    daemon_threads = True

    def __init__(self, app: ExplorerApp, host: str = "127.0.0.1", port: int = 8000,
                 quiet: bool = False) -> None:
        handler = type("Handler", (_Handler,), {"app": app, "quiet": quiet})
        super().__init__((host, port), handler)
        self.app = app

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
    if ready is not None:
        ready(server)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


__all__ = ["MAX_UPLOAD", "ExplorerApp", "ExplorerServer", "serve"]
