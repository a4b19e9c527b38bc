"""Download the standard datasets into a cache folder, with published checksums.

::

    from clearconv.data import download, load_mnist
    root = download("mnist")                 # ~/.cache/clearconv/mnist, or $CLEARCONV_DATA/mnist
    x, y = load_mnist(root, "train")
    download("cifar10", root="data/cifar")   # files go straight into data/cifar

Datasets (:data:`DATASETS`): ``"mnist"``, ``"fashion-mnist"``, ``"kmnist"`` (four IDX
``.gz`` files each, the names :func:`~clearconv.data.load_mnist` reads) and ``"cifar10"``
(``cifar-10-python.tar.gz``, read in place by :func:`~clearconv.data.load_cifar10`).

What :func:`download` does for each file, in order:

1. a file already in ``root`` whose checksum matches is kept: no network at all;
2. each mirror is tried in turn, each up to ``1 + retries`` times; bytes arrive in
   ``<file>.part`` next to the target, under a tqdm progress bar (on stderr);
3. a dropped connection, a timeout or an HTTP 5xx keeps the ``.part`` file, and the next
   attempt (or the next run) asks for the rest with an HTTP ``Range: bytes=<size>-``
   header; a server that ignores it (answers 200, not 206) sends the whole file again,
   which restarts the ``.part``;
4. the complete ``.part`` is checked (MD5 or SHA-256, the values published with each
   dataset; IDX files are also parsed by :func:`~clearconv.data.read_idx`); a mismatch
   deletes it and moves on to the next mirror (after a resume, the same mirror is first
   asked for the whole file, since the old partial bytes may be the bad ones); a 404, a
   TLS error or a size other than the published one moves on at once;
5. a verified file is renamed over the target (``os.replace``, atomic), so ``root`` never
   holds a partial or unverified file under its real name.

When no mirror can be reached at all (no DNS, connection refused, network unreachable),
the :class:`~clearconv.data.DatasetError` says ``"no network: put the files in <root>,
or use --data-dir"`` with the file names. Only ``urllib`` is used.
"""

from __future__ import annotations

import errno
import hashlib
import http.client
import os
import socket
import ssl
import stat
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Union

from tqdm.auto import tqdm

from .cache import data_home
from .idx import DatasetError, read_idx

PathLike = Union[str, "os.PathLike[str]"]

_CHUNK = 1 << 16
#: environment variable with base URLs to use instead of the known mirrors, separated by
#: commas or spaces; ``{name}`` in one is replaced by the dataset name
MIRRORS_ENV = "CLEARCONV_MIRRORS"
#: the most bytes accepted for a file whose size is not published (KMNIST's, or any file
#: with a checksum given by the caller); a file of published size gets exactly that
MAX_DOWNLOAD_BYTES = 256 * 1024 * 1024
_USER_AGENT = "clearconv-download (Python urllib)"


@dataclass(frozen=True)
class RemoteFile:
    """One file of a dataset: its name, checksum (``"md5:<hex>"`` or
    ``"sha256:<hex>"``) and size in bytes (None if not published); a server that
    announces another size (an HTML error page, say) is skipped before any download."""

    name: str
    checksum: str
    size: int | None = None


@dataclass(frozen=True)
class DatasetSource:
    """Where a dataset comes from: base URLs (tried in order) and its files."""

    mirrors: tuple[str, ...]
    files: tuple[RemoteFile, ...]
    idx: bool  # IDX files: also parsed after download as a last check


def _idx_files(sums: Sequence[tuple[str, int | None]]) -> tuple[RemoteFile, ...]:
    names = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
             "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")
    return tuple(RemoteFile(n, c, s) for n, (c, s) in zip(names, sums))


#: the known datasets. Checksums: MNIST and Fashion-MNIST SHA-256 of the original .gz
#: files (the values also used by Keras; their MD5s are the torchvision ones);
#: KMNIST MD5 as published with the dataset (rois-codh/kmnist, also in torchvision);
#: CIFAR-10 MD5 from its home page.
DATASETS: dict[str, DatasetSource] = {
    "mnist": DatasetSource(
        mirrors=(
            "https://ossci-datasets.s3.amazonaws.com/mnist/",
            "https://storage.googleapis.com/cvdf-datasets/mnist/",
            "https://yann.lecun.com/exdb/mnist/",
        ),
        files=_idx_files((
            ("sha256:440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609", 9912422),
            ("sha256:3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c", 28881),
            ("sha256:8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6", 1648877),
            ("sha256:f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6", 4542),
        )),
        idx=True,
    ),
    "fashion-mnist": DatasetSource(
        mirrors=(
            "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
            # The S3 website endpoint has no TLS; the checksum guards the bytes.
            "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        ),
        files=_idx_files((
            ("sha256:3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84", 26421880),
            ("sha256:a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845", 29515),
            ("sha256:346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073", 4422102),
            ("sha256:67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5", 5148),
        )),
        idx=True,
    ),
    "kmnist": DatasetSource(
        mirrors=("https://codh.rois.ac.jp/kmnist/dataset/kmnist/",),
        files=_idx_files((
            ("md5:bdb82020997e1d708af4cf47b453dcf7", None),
            ("md5:e144d726b3acfaa3e44228e80efcd344", None),
            ("md5:5c965bf0a639b31b8f53240b1b52f4d7", None),
            ("md5:7320c461ea6c1c855c0b718fb2a4b134", None),
        )),
        idx=True,
    ),
    "cifar10": DatasetSource(
        mirrors=("https://www.cs.toronto.edu/~kriz/",),
        files=(RemoteFile("cifar-10-python.tar.gz", "md5:c58f30108f718f92721af3b95e74349a",
                          170498071),),
        idx=False,
    ),
}


def default_root(name: str) -> Path:
    """The folder a dataset is downloaded to by default: ``data_home() / name``."""
    _source(name)
    return data_home() / name


def _source(name: str) -> DatasetSource:
    if name not in DATASETS:
        raise DatasetError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}")
    return DATASETS[name]


def _parse_checksum(value: str, name: str) -> tuple[str, str]:
    """``"md5:<hex>"``, ``"sha256:<hex>"``, or a bare hex digest (by its length)."""
    algo, _, digest = value.rpartition(":")
    digest = digest.lower()
    if not algo:
        algo = {32: "md5", 64: "sha256"}.get(len(digest), "")
    if algo not in ("md5", "sha256") or len(digest) != hashlib.new(algo).digest_size * 2:
        raise DatasetError(f"bad checksum for {name}: {value!r} (want md5:<32 hex> or "
                           "sha256:<64 hex>)")
    return algo, digest


def file_checksum(path: PathLike, algo: str = "sha256") -> str:
    """Hex digest of a file (``"md5"`` or ``"sha256"``), read in chunks."""
    h = hashlib.new(algo)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _verify(path: Path, checksum: str, name: str) -> str | None:
    """None if ``path`` matches ``checksum``, else a description of the mismatch."""
    algo, want = _parse_checksum(checksum, name)
    got = file_checksum(path, algo)
    return None if got == want else f"{algo} mismatch (got {got}, expected {want})"


class _Transient(Exception):
    """A failure worth retrying on the same mirror (dropped connection, read timeout, 5xx)."""


class _Unreachable(Exception):
    """No answer at all: DNS failure, connection refused or timed out, no route."""


class _Failed(Exception):
    """An answer that rules this mirror out (HTTP 404, 403, a TLS error, ...)."""


_UNREACHABLE_ERRNOS = frozenset(
    getattr(errno, n) for n in ("ECONNREFUSED", "ENETUNREACH", "EHOSTUNREACH", "ENETDOWN",
                                "EHOSTDOWN", "EADDRNOTAVAIL") if hasattr(errno, n))


def _classify_connect_error(reason: object) -> Exception:
    """Map the reason of a failed ``urlopen`` to _Unreachable, _Transient or _Failed."""
    if isinstance(reason, ssl.SSLError):
        return _Failed(f"TLS error: {reason}")
    if isinstance(reason, (socket.gaierror, ConnectionRefusedError, TimeoutError)) or (
            isinstance(reason, OSError) and reason.errno in _UNREACHABLE_ERRNOS):
        return _Unreachable(str(reason) or type(reason).__name__)
    if isinstance(reason, (ConnectionError, http.client.HTTPException)):
        return _Transient(f"{type(reason).__name__}: {reason}")
    return _Failed(str(reason))


class _Redirects(urllib.request.HTTPRedirectHandler):
    """urllib's redirects, at most 5 and to http(s) only, without reading the redirect's
    own body first (urllib reads all of it: its announced length could be 2**62)."""

    max_redirections = 5

    def http_error_302(self, req: urllib.request.Request, fp: Any, code: int, msg: str,
                       headers: Any) -> Any:
        location = headers.get("location") or headers.get("uri") or ""
        target = urllib.parse.urljoin(req.full_url, location)
        if urllib.parse.urlsplit(target).scheme not in ("http", "https"):
            raise urllib.error.HTTPError(req.full_url, code,
                                         f"redirect to {location!r:.80} refused", headers, fp)
        fp.close()   # the body is not read (urllib would read it all)
        return super().http_error_302(req, fp, code, msg, headers)

    http_error_301 = http_error_303 = http_error_307 = http_error_308 = http_error_302


_OPENER = urllib.request.build_opener(_Redirects)


def _open_url(url: str, offset: int, timeout: float) -> http.client.HTTPResponse | None:
    """Send the request (with ``Range`` when resuming); None for HTTP 416 on a resume."""
    request = urllib.request.Request(url, headers={"User-Agent": _USER_AGENT})
    if offset:
        request.add_header("Range", f"bytes={offset}-")
    try:
        return _OPENER.open(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        exc.close()
        if exc.code == 416 and offset:  # nothing after `offset`: the .part may be whole
            return None
        if exc.code >= 500 or exc.code in (408, 429):
            raise _Transient(f"HTTP {exc.code} {exc.reason}") from exc
        raise _Failed(f"HTTP {exc.code} {exc.reason}") from exc
    except urllib.error.URLError as exc:
        raise _classify_connect_error(exc.reason) from exc
    except (OSError, http.client.HTTPException) as exc:
        raise _classify_connect_error(exc) from exc


class _Deadline(Exception):
    """The overall deadline of :func:`download` passed."""


def _part_size(part: Path) -> int:
    """The size of the ``.part`` file; 0 if there is none. A symbolic link (planted in
    the cache) is removed, never followed: the download starts over in a plain file."""
    try:
        info = os.lstat(part)
    except FileNotFoundError:
        return 0
    if stat.S_ISLNK(info.st_mode) or not stat.S_ISREG(info.st_mode):
        part.unlink()
        return 0
    return info.st_size


def _open_part(part: Path, append: bool) -> int:
    """Open ``part`` for writing without following a symbolic link (O_NOFOLLOW)."""
    flags = os.O_WRONLY | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0)
    flags |= os.O_APPEND if append else os.O_TRUNC
    try:
        return os.open(part, flags, 0o644)
    except OSError as exc:
        if exc.errno == errno.ELOOP:  # a link appeared since _part_size: refuse it
            raise _Failed(f"{part} is a symbolic link: not followed") from None
        raise


def _fetch(url: str, part: Path, timeout: float, progress: bool, desc: str,
           expected_size: int | None, deadline: float) -> None:
    """Fetch ``url`` into ``part``, resuming from its current size if the server agrees.

    At most ``expected_size`` bytes (else :data:`MAX_DOWNLOAD_BYTES`) are written,
    whatever the server announces or sends, and nothing after ``deadline``
    (a ``time.monotonic()`` value).

    Raises _Unreachable, _Failed (also for a size other than ``expected_size``, known
    from the headers before any byte is written, or for more bytes than the cap),
    _Deadline, or _Transient (the .part is kept).
    """
    offset = _part_size(part)
    cap = expected_size if expected_size is not None else MAX_DOWNLOAD_BYTES
    left = deadline - time.monotonic()
    if left <= 0:
        raise _Deadline
    response = _open_url(url, offset, min(timeout, max(left, 0.001)))
    if response is None:
        return
    with response:
        resumed = offset > 0 and response.status == 206 and \
            response.headers.get("Content-Range", "").startswith(f"bytes {offset}-")
        if response.status == 206 and not resumed:
            raise _Failed(f"HTTP 206 for a range not asked for "
                          f"({response.headers.get('Content-Range')!r})")
        if not resumed:
            offset = 0  # no Range sent, or the server ignored it (200): start over
        length = response.headers.get("Content-Length", "")
        total = offset + int(length) if length.isdigit() else None
        if expected_size is not None and total is not None and total != expected_size:
            raise _Failed(f"the server offers {total} bytes, the published size is "
                          f"{expected_size}")
        if total is not None and total > cap:
            raise _Failed(f"the server offers {total} bytes, more than MAX_DOWNLOAD_BYTES = "
                          f"{cap}")
        with os.fdopen(_open_part(part, resumed), "wb") as f, tqdm(
                total=total, initial=offset, unit="B", unit_scale=True, unit_divisor=1024,
                desc=desc, disable=not progress, leave=False) as bar:
            try:
                written = offset
                while chunk := response.read1(_CHUNK):
                    written += len(chunk)
                    if written > cap:
                        f.close()
                        part.unlink(missing_ok=True)
                        raise _Failed(f"the server sent more than the {cap} bytes expected "
                                      "(the published size, or MAX_DOWNLOAD_BYTES)")
                    f.write(chunk)  # a local disk error (ENOSPC) propagates as OSError
                    bar.update(len(chunk))
                    if time.monotonic() > deadline:
                        f.flush()
                        raise _Deadline
            except (TimeoutError, ConnectionError, http.client.HTTPException) as exc:
                f.flush()
                raise _Transient(f"connection dropped after {f.tell()} bytes "
                                 f"({type(exc).__name__})") from exc
            f.flush()
            os.fsync(f.fileno())
            size = f.tell()
    if total is not None and size != total:
        raise _Transient(f"connection dropped after {size} of {total} bytes")


class _MirrorsExhausted(Exception):
    """Every mirror failed for one file; the reasons are in the failures list."""


def _download_file(remote: RemoteFile, root: Path, mirrors: Sequence[str], checksum: str,
                   expected_size: int | None, idx: bool, progress: bool, timeout: float,
                   retries: int, backoff: float, failures: list[tuple[str, str, bool]],
                   deadline: float) -> None:
    """Try each mirror in turn for one file; raise _MirrorsExhausted if none delivers.

    A dropped transfer leaves ``<name>.part`` behind for a later run to resume.
    """
    target = root / remote.name
    part = root / (remote.name + ".part")
    for base in mirrors:
        url = base.rstrip("/") + "/" + remote.name
        for attempt in range(1 + retries):
            if attempt:
                time.sleep(min(backoff * attempt, max(0.0, deadline - time.monotonic())))
            had_part = _part_size(part) > 0
            try:
                _fetch(url, part, timeout, progress, remote.name, expected_size, deadline)
            except _Unreachable as exc:
                failures.append((url, f"unreachable: {exc}", True))
                break  # the host cannot be reached: next mirror
            except _Transient as exc:
                failures.append((url, str(exc), False))
                continue  # keep the .part: the next attempt resumes it
            except _Failed as exc:
                failures.append((url, str(exc), False))
                break  # 404, 403, ...: next mirror
            problem = _verify(part, checksum, remote.name)
            if problem is None and idx:
                try:
                    read_idx(part)
                except DatasetError as exc:
                    problem = str(exc)
            if problem is not None:
                part.unlink(missing_ok=True)
                failures.append((url, problem, False))
                if had_part:
                    continue  # the bad bytes may be the old partial ones: fetch it all again
                break  # bad bytes from this mirror: next mirror
            os.replace(part, target)
            return
    raise _MirrorsExhausted


def _check_deadline(deadline: float | None, source: DatasetSource) -> float:
    """The overall deadline in seconds: as given (> 0), or the default for the source."""
    if deadline is None:
        return 600.0 + sum((f.size or MAX_DOWNLOAD_BYTES) for f in source.files) / 50e3
    if isinstance(deadline, bool) or not isinstance(deadline, (int, float)) or \
            not deadline > 0:
        raise DatasetError(f"deadline must be a number of seconds > 0, got {deadline!r}")
    return float(deadline)


def mirrors_from_env(name: str) -> tuple[str, ...] | None:
    """The base URLs of ``$CLEARCONV_MIRRORS`` (commas or spaces between them; ``{name}``
    replaced by the dataset name), or None when it is unset or empty."""
    value = os.environ.get(MIRRORS_ENV, "")
    bases = tuple(b.replace("{name}", name) for b in value.replace(",", " ").split())
    return bases or None


def download(name: str, root: PathLike | None = None, mirrors: Sequence[str] | None = None,
             progress: bool = True, timeout: float = 30.0, retries: int = 2,
             checksums: Mapping[str, str] | None = None, backoff: float = 1.0,
             deadline: float | None = None) -> Path:
    """Download a dataset's files into ``root`` and verify them; return ``root``.

    Args:
        name: ``"mnist"``, ``"fashion-mnist"``, ``"kmnist"`` or ``"cifar10"``.
        root: the folder the files go into (created if needed); default
            :func:`default_root` (``$CLEARCONV_DATA/<name>`` or
            ``~/.cache/clearconv/<name>``).
        mirrors: base URLs (``http://`` or ``https://``) to try in order instead of the
            known ones; each file is fetched from ``<base>/<file name>``. None: those of
            ``$CLEARCONV_MIRRORS`` if set (:func:`mirrors_from_env`), else the known ones.
        progress: show a tqdm progress bar per file, on stderr.
        timeout: seconds a connection or a read may stall before the attempt fails.
        retries: extra attempts per mirror after a dropped connection, a timeout or an
            HTTP 5xx; each resumes the ``.part`` file.
        checksums: file name -> ``"md5:<hex>"`` / ``"sha256:<hex>"`` / bare hex, to
            replace the published values (for a private mirror, and for tests).
        backoff: seconds to wait before retry ``k`` are ``backoff * k``.
        deadline: seconds the whole call may take, all files, mirrors and retries
            together (a server trickling bytes is cut off); the ``.part`` files are
            kept for the next run to resume. None: 600 s plus 20 s per MB published
            (about 50 kB/s).

    Size budget: a file of published size is written up to exactly that many bytes,
    any other up to :data:`MAX_DOWNLOAD_BYTES`, whatever the server announces; more is
    refused and the ``.part`` deleted. Writes never follow a symbolic link in ``root``
    (a planted ``.part`` link is removed, the target is replaced, not written through).

    Returns:
        ``root`` as a Path, holding every file of the dataset, verified.

    Raises:
        DatasetError: an unknown name; the deadline passed; no mirror reachable ("no
            network: put the files in <root>, or use --data-dir"); or every mirror
            failed for a file (the message lists each URL and why).
        OSError: ``root`` cannot be written.
    """
    source = _source(name)
    root = Path(root) if root is not None else default_root(name)
    if mirrors is None:
        mirrors = mirrors_from_env(name)
    bases = tuple(source.mirrors if mirrors is None else mirrors)
    if not bases:
        raise DatasetError("mirrors must name at least one base URL")
    for base in bases:
        if not base.startswith(("http://", "https://")):
            raise DatasetError(f"mirror URLs must be http:// or https://, got {base!r}")
    if isinstance(retries, bool) or retries < 0:
        raise DatasetError(f"retries must be an int >= 0, got {retries!r}")
    sums = {f.name: f.checksum for f in source.files}
    if checksums is not None:
        unknown = set(checksums) - set(sums)
        if unknown:
            raise DatasetError(f"checksums for files that {name} does not have: "
                               f"{', '.join(sorted(unknown))}")
        sums.update(checksums)
    for file_name, value in sums.items():
        _parse_checksum(value, file_name)
    deadline = _check_deadline(deadline, source)
    ends = time.monotonic() + deadline

    root.mkdir(parents=True, exist_ok=True)
    for remote in source.files:
        target = root / remote.name
        if target.is_file() and _verify(target, sums[remote.name], remote.name) is None:
            continue
        failures: list[tuple[str, str, bool]] = []
        try:
            # The published size applies only with the published checksum.
            size = None if checksums and remote.name in checksums else remote.size
            _download_file(remote, root, bases, sums[remote.name], size, source.idx,
                           progress, timeout, retries, backoff, failures, ends)
        except _Deadline:
            raise DatasetError(f"downloading {name} took longer than the deadline of "
                               f"{deadline:g} s ({remote.name} not complete; its .part file "
                               f"is kept in {root}: run again to resume)") from None
        except _MirrorsExhausted:
            names = ", ".join(f.name for f in source.files)
            if all(unreachable for _, _, unreachable in failures):
                raise DatasetError(
                    f"no network: could not reach any mirror of {name} "
                    f"({'; '.join(f'{u}: {why}' for u, why, _ in failures)}). "
                    f"Put the files ({names}) in {root}, or use --data-dir to point at a "
                    "folder that holds them."
                ) from None
            raise DatasetError(
                f"could not download {remote.name} of {name}: "
                + "; ".join(f"{u}: {why}" for u, why, _ in failures)
                + f". Put the files ({names}) in {root} by hand, or use --data-dir."
            ) from None
    return root

