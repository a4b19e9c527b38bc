"""Issue 12, the downloader: a byte cap, an overall deadline, no symlink followed, and
mirrors settable without Python. A local HTTP server in a thread; never the network."""

from __future__ import annotations

import hashlib
import importlib
import os
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from clearconv.data import DatasetError, download
from clearconv.data.download import MIRRORS_ENV, mirrors_from_env

NAME = "cifar-10-python.tar.gz"
BODY = b"clearconv test archive " * 40


def _serve(mode: str) -> Iterator[str]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.0"

        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            if mode == "redirect" and self.path != "/plain/" + NAME:
                # a redirect announcing an absurd body, which it never sends
                self.send_response(301)
                self.send_header("Location", "/plain/" + NAME)
                self.send_header("Content-Length", str(2**62))
                self.end_headers()
                return
            self.send_response(200)
            if mode in ("plain", "redirect"):
                self.send_header("Content-Length", str(len(BODY)))
            self.end_headers()
            try:
                if mode in ("plain", "redirect"):
                    self.wfile.write(BODY)
                elif mode == "endless":          # no Content-Length, never ends
                    for _ in range(100000):
                        self.wfile.write(b"\0" * 65536)
                elif mode == "trickle":          # one byte every 0.2 s, forever
                    for _ in range(10000):
                        self.wfile.write(b"x")
                        self.wfile.flush()
                        time.sleep(0.2)
            except (BrokenPipeError, ConnectionResetError):
                pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def serve() -> Iterator[object]:
    servers: list[Iterator[str]] = []

    def start(mode: str) -> str:
        gen = _serve(mode)
        servers.append(gen)
        return next(gen)
    yield start
    for gen in servers:
        next(gen, None)


SUM = {NAME: "sha256:" + hashlib.sha256(BODY).hexdigest()}


def test_a_stream_without_length_stops_at_the_cap(tmp_path: Path, serve: object,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    # issue 12: no size cap without Content-Length: a 1.27 GB .part in 4 s for a 9.45 MiB
    # file, an endless stream filled the disk
    dl = importlib.import_module("clearconv.data.download")

    monkeypatch.setattr(dl, "MAX_DOWNLOAD_BYTES", 1 << 20)
    url = serve("endless")  # type: ignore[operator]
    with pytest.raises(DatasetError, match="sent more than the 1048576 bytes expected"):
        download("cifar10", root=tmp_path, mirrors=[url], checksums=SUM, progress=False,
                 retries=0, timeout=5)
    assert not (tmp_path / (NAME + ".part")).exists()


def test_a_trickling_server_meets_the_overall_deadline(tmp_path: Path, serve: object) -> None:
    # issue 12: 1 byte/s kept going past 20 s with timeout=2 (no overall deadline)
    url = serve("trickle")  # type: ignore[operator]
    start = time.monotonic()
    with pytest.raises(DatasetError, match="longer than the deadline of 1 s"):
        download("cifar10", root=tmp_path, mirrors=[url], checksums=SUM, progress=False,
                 retries=0, timeout=2, deadline=1)
    assert time.monotonic() - start < 15   # generous: only "it ends" is asserted
    assert (tmp_path / (NAME + ".part")).is_file()     # kept for a resume


def test_a_planted_part_symlink_is_not_followed(tmp_path: Path, serve: object) -> None:
    # issue 12: a *.part symlink in the cache was followed and its target overwritten
    victim = tmp_path / "victim.txt"
    victim.write_bytes(b"precious")
    cache = tmp_path / "cache"
    cache.mkdir()
    os.symlink(victim, cache / (NAME + ".part"))
    url = serve("plain")  # type: ignore[operator]
    download("cifar10", root=cache, mirrors=[url], checksums=SUM, progress=False,
             retries=0, timeout=5)
    assert victim.read_bytes() == b"precious"
    assert (cache / NAME).read_bytes() == BODY and not (cache / NAME).is_symlink()


def test_mirrors_from_the_environment(tmp_path: Path, serve: object,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    # issue 12: mirrors could be set only from Python
    url = serve("plain")  # type: ignore[operator]
    monkeypatch.setenv(MIRRORS_ENV, f"http://127.0.0.1:9/{{name}}/, {url}")
    assert mirrors_from_env("cifar10") == ("http://127.0.0.1:9/cifar10/", url)
    download("cifar10", root=tmp_path, checksums=SUM, progress=False, retries=0, timeout=5)
    assert (tmp_path / NAME).read_bytes() == BODY


def test_mirror_option_of_the_cli(tmp_path: Path, serve: object,
                                  monkeypatch: pytest.MonkeyPatch, capsys: object) -> None:
    dl = importlib.import_module("clearconv.data.download")
    from clearconv.cli import main

    url = serve("plain")  # type: ignore[operator]
    monkeypatch.setattr(dl, "DATASETS", {**dl.DATASETS, "cifar10": dl.DatasetSource(
        mirrors=("http://127.0.0.1:9/",),
        files=(dl.RemoteFile(NAME, SUM[NAME], len(BODY)),), idx=False)})
    assert main(["download", "cifar10", "--dir", str(tmp_path), "--mirror", url]) == 0
    assert (tmp_path / NAME).read_bytes() == BODY


def test_a_redirect_body_is_never_read(tmp_path: Path, serve: object) -> None:
    # found by the fuzz run: urllib read a redirect's whole announced body (2**62 bytes:
    # MemoryError) before following it
    url = serve("redirect")  # type: ignore[operator]
    download("cifar10", root=tmp_path, mirrors=[url], checksums=SUM, progress=False,
             retries=0, timeout=5)
    assert (tmp_path / NAME).read_bytes() == BODY
