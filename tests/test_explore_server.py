"""Live mode's server (clearconv.explore.server): answers, bounds, malformed requests.

Every bad request gets a 4xx with its reason and the server keeps answering; two users
at once get their own answers. No timing is asserted (the latency is a benchmark:
benchmarks/explore_latency.py).
"""

from __future__ import annotations

import http.client
import io
import json
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from PIL import Image

from clearconv.explore.pack import unpack
from clearconv.explore.server import ExplorerApp, ExplorerServer
from clearconv.train import zoo


@pytest.fixture(scope="module")
def server():
    app = ExplorerApp(zoo.digits_cnn(rng=0), "test model", max_upload=200_000)
    srv = ExplorerServer(app, "127.0.0.1", 0, quiet=True)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def _png(value: int = 255, size: int = 28) -> bytes:
    a = np.zeros((size, size), np.uint8)
    a[4:-4, size // 2 - 2:size // 2 + 2] = value
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, format="PNG")
    return buf.getvalue()


def _request(server, method, path, body=None, headers=None):
    host, port = server.server_address[:2]
    conn = http.client.HTTPConnection(host, port, timeout=30)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        r = conn.getresponse()
        return r.status, r.read()
    finally:
        conn.close()


def test_page_and_an_update(server):
    status, page = _request(server, "GET", "/")
    assert status == 200 and b'data-live="1"' in page
    status, body = _request(server, "POST", "/api/explore?details=0", _png())
    assert status == 200
    answer = json.loads(body)
    arrays = unpack(answer["pack"])
    assert arrays["input"].shape == (1, 8, 8) and answer["meta"]["details"] is False
    assert "your upload" in answer["meta"]["input_source"]
    status, body = _request(server, "POST", "/api/explore?details=1&target=4", _png())
    full = json.loads(body)
    assert status == 200 and full["meta"]["target"] == 4
    assert "L3.products" in full["pack"]["index"]


@pytest.mark.parametrize("path, body, headers, status, reason", [
    ("/api/explore", b"not an image", None, 400, b"cannot read"),
    ("/api/explore?target=x", None, None, 400, b"target"),
    ("/api/explore?target=99", None, None, 400, b"out of range"),
    ("/api/explore?details=2", None, None, 400, b"details"),
    ("/api/explore", b"", None, 400, b"no image"),
    ("/api/explore", b"x" * 300_000, None, 413, b"more than"),
    ("/api/other", b"", None, 404, b"not found"),
])
def test_bad_requests_are_answered(server, path, body, headers, status, reason):
    got, text = _request(server, "POST", path, _png() if body is None else body, headers)
    assert got == status and reason in text
    assert _request(server, "POST", "/api/explore?details=0", _png())[0] == 200   # still up


def test_missing_length_and_a_short_body(server):
    host, port = server.server_address[:2]
    conn = http.client.HTTPConnection(host, port, timeout=30)
    conn.putrequest("POST", "/api/explore")
    conn.endheaders()
    assert conn.getresponse().status == 411
    conn.close()
    # a raw request with a garbled request line
    import socket

    with socket.create_connection((host, port), timeout=30) as s:
        s.sendall(b"\x00\x01garbage\r\n\r\n")
        assert b"400" in s.recv(4096)                 # http.server's 'Bad request' page
    with socket.create_connection((host, port), timeout=30) as s:   # 10 of 100 bytes
        s.sendall(b"POST /api/explore HTTP/1.1\r\nContent-Length: 100\r\n\r\n0123456789")
        s.shutdown(socket.SHUT_WR)
        assert s.recv(4096).startswith(b"HTTP/1.0 400")
    assert _request(server, "GET", "/favicon.ico")[0] == 204


def test_two_users_at_once_get_their_own_answers(server):
    bodies = [_png(255), _png(0)] * 4

    def ask(body):
        status, text = _request(server, "POST", "/api/explore?details=1", body)
        return status, unpack(json.loads(text)["pack"])["input"]

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(ask, bodies))
    assert all(status == 200 for status, _ in results)
    first = results[0][1]
    assert all(np.array_equal(x, first) for _, x in results[::2])
    assert not np.array_equal(results[0][1], results[1][1])


def test_an_overtaken_breakdown_request_is_not_computed(server):
    app = server.app
    app._note("pageA", 7)                          # a newer request of page A arrived
    assert app.explore(_png(), details=True, client="pageA", seq=5) is None
    assert app.explore(_png(), details=True, client="pageB", seq=5) is not None
    assert app.explore(_png(), details=False, client="pageA", seq=6) is not None  # fast: always
    status, text = _request(server, "POST", "/api/explore?details=1&client=pageA&seq=3", _png())
    assert status == 409 and b"superseded" in text
    assert _request(server, "POST", "/api/explore?client=bad!&seq=1", _png())[0] == 400


def test_breakdowns_come_from_the_worker_process_and_survive_its_death():
    model = zoo.digits_cnn(rng=0)
    here = ExplorerApp(model, "m", worker=False)
    there = ExplorerApp(model, "m")
    try:
        a = unpack(here.explore(_png(), details=True)["pack"])
        b = unpack(there.explore(_png(), details=True)["pack"])
        assert there._proc is not None and there._proc.pid != 0
        assert a.keys() == b.keys()
        # the loop reference's numbers are the same bit for bit; the maps of the fast
        # algorithms up to the order of their sums
        assert np.array_equal(a["L3.products"], b["L3.products"])
        assert all(np.allclose(a[k], b[k], rtol=1e-5, atol=1e-6) for k in a)
        there._proc.kill()                                  # the worker dies
        there._proc.wait()
        c = unpack(there.explore(_png(), details=True)["pack"])   # a fresh one answers
        assert np.array_equal(c["L3.products"], a["L3.products"])
    finally:
        there.close()
    assert there._proc is None and there._folder is None
