"""Tests of clearconv.data.download against a local HTTP server; never the real network.

The server (ThreadingHTTPServer on 127.0.0.1, port 0) serves small generated IDX .gz files
and can misbehave per file: 404, wrong bytes, a connection dropped mid-body (once), a
stall, a 500, with HTTP Range support on or off.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import re
import socket
import struct
import tarfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from clearconv.data import (
    DATASETS,
    DatasetError,
    default_root,
    download,
    load_cifar10,
    load_mnist,
)
from clearconv.data.download import _parse_checksum, data_home

MNIST_NAMES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
               "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")


def idx_gz(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return gzip.compress(header + array.tobytes(), mtime=0)


def fake_mnist() -> dict[str, bytes]:
    rng = np.random.default_rng(0)
    files = {}
    for prefix, n in (("train", 20), ("t10k", 6)):
        # Random pixels compress badly, so the images file is ~16 KB: big enough to cut.
        files[f"{prefix}-images-idx3-ubyte.gz"] = idx_gz(
            rng.integers(0, 256, (n, 28, 28), dtype=np.uint8))
        files[f"{prefix}-labels-idx1-ubyte.gz"] = idx_gz(
            rng.integers(0, 10, n, dtype=np.uint8))
    return files


FILES = fake_mnist()
SHA256 = {name: "sha256:" + hashlib.sha256(data).hexdigest() for name, data in FILES.items()}


@dataclass
class Behaviour:
    """How one server answers. ``faults`` maps a file name to a fault, applied to the
    first ``fault_count`` requests for that file (then it answers normally)."""

    files: dict[str, bytes]
    range_support: bool = True
    faults: dict[str, str] = field(default_factory=dict)
    fault_count: int = 1
    log: list[tuple[str, str | None, int]] = field(default_factory=list)
    seen: dict[str, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)


def make_handler(b: Behaviour) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:  # keep pytest output clean
            pass

        def _reply(self, status: int, body: bytes, headers: dict[str, str] | None = None,
                   send: int | None = None) -> None:
            """Answer with ``body``; send only its first ``send`` bytes, then hang up."""
            b.log.append((self.path, self.headers.get("Range"), status))
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(body if send is None else body[:send])
            self.wfile.flush()
            if send is not None:
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)

        def do_GET(self) -> None:
            name = self.path.rsplit("/", 1)[-1]
            with b.lock:
                b.seen[name] = b.seen.get(name, 0) + 1
                fault = b.faults.get(name) if b.seen[name] <= b.fault_count else None
            if name not in b.files or fault == "404":
                self._reply(404, b"not found")
                return
            if fault == "500":
                self._reply(500, b"oops")
                return
            body = b.files[name]
            if fault == "corrupt":
                body = body[:-10] + bytes(10)
            start = 0
            match = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "")
            if b.range_support and match:
                start = int(match.group(1))
                if start >= len(body):
                    self._reply(416, b"", {"Content-Range": f"bytes */{len(body)}"})
                    return
            status = 206 if start else 200
            headers = {"Content-Range": f"bytes {start}-{len(body) - 1}/{len(body)}"} \
                if start else {}
            if fault == "drop":
                self._reply(status, body[start:], headers, send=(len(body) - start) // 3)
            elif fault == "stall":
                b.log.append((self.path, self.headers.get("Range"), status))
                self.send_response(status)
                self.send_header("Content-Length", str(len(body) - start))
                self.end_headers()
                self.wfile.write(body[start:start + 100])
                self.wfile.flush()
                time.sleep(1.5)
                self.close_connection = True
            else:
                self._reply(status, body[start:], headers)

    return Handler


@pytest.fixture
def serve() -> Iterator:
    """Start servers on demand: ``url, behaviour = serve(files=..., ...)``."""
    servers: list[ThreadingHTTPServer] = []

    def start(**kwargs: object) -> tuple[str, Behaviour]:
        behaviour = Behaviour(**{"files": FILES, **kwargs})  # type: ignore[arg-type]
        server = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(behaviour))
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}/mnist/", behaviour

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def fetch(root: Path, mirrors: list[str], **kwargs: object) -> Path:
    options = {"checksums": SHA256, "progress": False, "timeout": 5.0, "backoff": 0.0,
               **kwargs}
    return download("mnist", root=root, mirrors=mirrors, **options)  # type: ignore[arg-type]


def assert_complete(root: Path) -> None:
    for name, data in FILES.items():
        assert (root / name).read_bytes() == data
    assert not list(root.glob("*.part"))


def closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


# ---------------------------------------------------------------- success paths

def test_download_verifies_and_load_mnist_reads_it(tmp_path: Path, serve) -> None:
    url, behaviour = serve()
    root = fetch(tmp_path / "mnist", [url])
    assert root == tmp_path / "mnist"
    assert_complete(root)
    x, y = load_mnist(root, "train")
    assert x.shape == (20, 1, 28, 28) and y.shape == (20,)
    assert [status for _, _, status in behaviour.log] == [200] * 4


def test_verified_files_are_not_downloaded_again(tmp_path: Path, serve) -> None:
    url, behaviour = serve()
    fetch(tmp_path, [url])
    behaviour.log.clear()
    fetch(tmp_path, [closed_port_url()])  # would fail if it touched the network
    assert behaviour.log == []


def test_bare_hex_md5_checksums_work(tmp_path: Path, serve) -> None:
    url, _ = serve()
    md5 = {name: hashlib.md5(data).hexdigest() for name, data in FILES.items()}
    fetch(tmp_path, [url], checksums=md5)
    assert_complete(tmp_path)


def test_progress_bar_goes_to_stderr(tmp_path: Path, serve,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    url, _ = serve()
    fetch(tmp_path, [url], progress=True)
    captured = capsys.readouterr()
    assert "train-images-idx3-ubyte.gz" in captured.err and captured.out == ""


def test_default_root_follows_clearconv_data(tmp_path: Path, serve,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLEARCONV_DATA", str(tmp_path / "cache"))
    assert data_home() == tmp_path / "cache"
    assert default_root("fashion-mnist") == tmp_path / "cache" / "fashion-mnist"
    url, _ = serve()
    root = download("mnist", mirrors=[url], checksums=SHA256, progress=False)
    assert root == tmp_path / "cache" / "mnist"
    assert_complete(root)
    monkeypatch.delenv("CLEARCONV_DATA")
    assert data_home() == Path.home() / ".cache" / "clearconv"


# ---------------------------------------------------------------- mirrors and checksums

def test_404_on_first_mirror_moves_to_the_second(tmp_path: Path, serve) -> None:
    bad, bad_behaviour = serve(files={})
    good, good_behaviour = serve()
    fetch(tmp_path, [bad, good])
    assert_complete(tmp_path)
    assert [s for _, _, s in bad_behaviour.log] == [404] * 4  # no retry after a 404
    assert [s for _, _, s in good_behaviour.log] == [200] * 4


def test_wrong_checksum_deletes_and_tries_the_next_mirror(tmp_path: Path, serve) -> None:
    corrupt, _ = serve(faults={"train-labels-idx1-ubyte.gz": "corrupt"}, fault_count=99)
    good, good_behaviour = serve()
    fetch(tmp_path, [corrupt, good])
    assert_complete(tmp_path)
    assert [p.rsplit("/", 1)[-1] for p, _, _ in good_behaviour.log] == \
        ["train-labels-idx1-ubyte.gz"]


def test_wrong_checksum_everywhere_is_a_clear_error(tmp_path: Path, serve) -> None:
    url, _ = serve(faults={"t10k-images-idx3-ubyte.gz": "corrupt"}, fault_count=99)
    with pytest.raises(DatasetError) as info:
        fetch(tmp_path, [url])
    message = str(info.value)
    assert "t10k-images-idx3-ubyte.gz" in message and "sha256 mismatch" in message
    assert "no network" not in message and "--data-dir" in message
    assert not (tmp_path / "t10k-images-idx3-ubyte.gz").exists()
    assert not list(tmp_path.glob("*.part"))


def test_matching_checksum_but_not_idx_is_refused(tmp_path: Path, serve) -> None:
    junk = {**FILES, "t10k-labels-idx1-ubyte.gz": b"<html>login page</html>"}
    url, _ = serve(files=junk)
    sums = {**SHA256, "t10k-labels-idx1-ubyte.gz":
            hashlib.sha256(junk["t10k-labels-idx1-ubyte.gz"]).hexdigest()}
    with pytest.raises(DatasetError, match="not an IDX file"):
        fetch(tmp_path, [url], checksums=sums)
    assert not (tmp_path / "t10k-labels-idx1-ubyte.gz").exists()


# ---------------------------------------------------------------- resume and retries

def test_dropped_connection_resumes_with_range(tmp_path: Path, serve) -> None:
    name = "train-images-idx3-ubyte.gz"
    url, behaviour = serve(faults={name: "drop"})
    fetch(tmp_path, [url])
    assert_complete(tmp_path)
    requests = [(r, s) for p, r, s in behaviour.log if p.endswith(name)]
    third = len(FILES[name]) // 3
    assert requests == [(None, 200), (f"bytes={third}-", 206)]


def test_server_ignoring_range_restarts_the_file(tmp_path: Path, serve) -> None:
    name = "train-images-idx3-ubyte.gz"
    url, behaviour = serve(faults={name: "drop"}, range_support=False)
    fetch(tmp_path, [url])
    assert_complete(tmp_path)
    requests = [(r, s) for p, r, s in behaviour.log if p.endswith(name)]
    assert requests[0] == (None, 200)
    assert requests[1][0] is not None and requests[1][1] == 200  # asked a range, got all


def test_partial_file_from_an_earlier_run_is_resumed(tmp_path: Path, serve) -> None:
    name = "t10k-images-idx3-ubyte.gz"
    (tmp_path / f"{name}.part").write_bytes(FILES[name][:1000])
    url, behaviour = serve()
    fetch(tmp_path, [url])
    assert_complete(tmp_path)
    assert (f"/mnist/{name}", "bytes=1000-", 206) in behaviour.log


def test_complete_part_file_and_416(tmp_path: Path, serve) -> None:
    name = "t10k-labels-idx1-ubyte.gz"
    (tmp_path / f"{name}.part").write_bytes(FILES[name])
    url, behaviour = serve()
    fetch(tmp_path, [url])
    assert_complete(tmp_path)
    assert (f"/mnist/{name}", f"bytes={len(FILES[name])}-", 416) in behaviour.log


def test_dropped_every_time_runs_out_of_retries(tmp_path: Path, serve) -> None:
    name = "train-labels-idx1-ubyte.gz"
    url, behaviour = serve(faults={name: "drop"}, fault_count=99)
    with pytest.raises(DatasetError, match="connection dropped"):
        fetch(tmp_path, [url], retries=2)
    assert sum(p.endswith(name) for p, _, _ in behaviour.log) == 3


def test_bad_partial_bytes_are_fetched_again_whole(tmp_path: Path, serve) -> None:
    name = "t10k-images-idx3-ubyte.gz"
    (tmp_path / f"{name}.part").write_bytes(bytes(1000))  # not the file's first bytes
    url, behaviour = serve()
    fetch(tmp_path, [url], retries=1)
    assert_complete(tmp_path)
    requests = [(r, s) for p, r, s in behaviour.log if p.endswith(name)]
    assert requests == [("bytes=1000-", 206), (None, 200)]


def test_part_file_is_kept_for_a_later_run(tmp_path: Path, serve) -> None:
    name = "train-images-idx3-ubyte.gz"
    url, _ = serve(faults={name: "drop"}, fault_count=1, range_support=True)
    with pytest.raises(DatasetError, match="connection dropped"):
        fetch(tmp_path, [url], retries=0)
    assert (tmp_path / f"{name}.part").stat().st_size == len(FILES[name]) // 3
    fetch(tmp_path, [url], retries=0)  # the next run resumes
    assert_complete(tmp_path)


def test_wrong_published_size_is_skipped_before_downloading(tmp_path: Path, serve) -> None:
    url, _ = serve(files={"cifar-10-python.tar.gz": b"<html>captive portal</html>"})
    with pytest.raises(DatasetError, match="published size is 170498071"):
        download("cifar10", root=tmp_path, mirrors=[url], progress=False, backoff=0)
    assert list(tmp_path.iterdir()) == []


def test_server_error_is_retried(tmp_path: Path, serve) -> None:
    url, behaviour = serve(faults={"t10k-labels-idx1-ubyte.gz": "500"})
    fetch(tmp_path, [url])
    assert_complete(tmp_path)
    assert ("/mnist/t10k-labels-idx1-ubyte.gz", None, 500) in behaviour.log


def test_stalled_transfer_times_out_and_resumes(tmp_path: Path, serve) -> None:
    name = "t10k-images-idx3-ubyte.gz"
    url, behaviour = serve(faults={name: "stall"})
    fetch(tmp_path, [url], timeout=0.5)     # the stalled read times out, then resumes
    assert_complete(tmp_path)
    assert (f"/mnist/{name}", "bytes=100-", 206) in behaviour.log


# ---------------------------------------------------------------- offline and bad input

def test_offline_gives_the_clear_message(tmp_path: Path) -> None:
    with pytest.raises(DatasetError) as info:
        fetch(tmp_path / "d", [closed_port_url(), closed_port_url()])
    message = str(info.value)
    assert message.startswith("no network")
    assert f"Put the files ({', '.join(MNIST_NAMES)}) in {tmp_path / 'd'}" in message
    assert "--data-dir" in message


def test_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="unknown dataset 'svhn'"):
        download("svhn", root=tmp_path)
    with pytest.raises(DatasetError, match="http"):
        download("mnist", root=tmp_path, mirrors=["ftp://example.org/"])
    with pytest.raises(DatasetError, match="at least one"):
        download("mnist", root=tmp_path, mirrors=[])
    with pytest.raises(DatasetError, match="does not have"):
        download("mnist", root=tmp_path, mirrors=["http://127.0.0.1:9/"],
                 checksums={"other.gz": "0" * 32})
    with pytest.raises(DatasetError, match="bad checksum"):
        download("mnist", root=tmp_path, mirrors=["http://127.0.0.1:9/"],
                 checksums={MNIST_NAMES[0]: "sha1:abc"})
    with pytest.raises(DatasetError, match="retries"):
        download("mnist", root=tmp_path, retries=-1)


def test_published_checksums_are_well_formed() -> None:
    assert set(DATASETS) == {"mnist", "fashion-mnist", "kmnist", "cifar10"}
    for source in DATASETS.values():
        assert source.mirrors and all(m.startswith(("https://", "http://"))
                                      for m in source.mirrors)
        for remote in source.files:
            _parse_checksum(remote.checksum, remote.name)
    assert DATASETS["cifar10"].files[0].checksum == "md5:c58f30108f718f92721af3b95e74349a"
    assert DATASETS["mnist"].files[0].checksum.endswith("f203523609")


def test_cifar10_download_is_read_in_place(tmp_path: Path, serve) -> None:
    import pickle

    buffer = io.BytesIO()
    rng = np.random.default_rng(0)
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
            data = pickle.dumps({b"data": rng.integers(0, 256, (2, 3072), dtype=np.uint8),
                                 b"labels": [1, 2]}, protocol=2)
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    archive = buffer.getvalue()
    url, _ = serve(files={"cifar-10-python.tar.gz": archive})
    root = download("cifar10", root=tmp_path, mirrors=[url], progress=False, backoff=0,
                    checksums={"cifar-10-python.tar.gz": hashlib.md5(archive).hexdigest()})
    x, y = load_cifar10(root, "train")
    assert x.shape == (10, 3, 32, 32) and y.tolist() == [1, 2] * 5
