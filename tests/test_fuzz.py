"""Fuzzing the loaders with hostile and broken files (issue 6, item 5).

Each loader that reads a file a user may have downloaded from anywhere is a *target*:

========  ==========================================  ======================================
target    call                                        documented errors
========  ==========================================  ======================================
model     ``clearconv.load(path)``                    ModelFileError, FileNotFoundError
arrays    ``clearconv.io.load_arrays(path)``          ModelFileError, FileNotFoundError
idx       ``clearconv.data.read_idx(path)``           DatasetError
cifar     ``clearconv.data.read_cifar_batch(src)``    DatasetError
image     ``clearconv.data.images.load_image(path, ...)``  ImageFileError, FileNotFoundError
folder    ``clearconv.data.load_image_folder(...)``   DatasetError
archive   ``load_cifar10(archive.tar.gz, "test")``    DatasetError
checkpoint  ``fit(resume=True)``, ``--resume`` options  ClearConvError
download  ``download(...)`` from a local HTTP server  DatasetError
========  ==========================================  ======================================

Hypothesis draws *recipes*: a valid seed file (a real saved model, IDX files raw and
gzipped, a protocol-2 CIFAR batch, small PNG/JPEG/GIF/BMP images made with Pillow),
structured edits (zip members swapped, dropped, renamed or recompressed, ``.npy`` and IDX
headers rewritten with huge dimensions or odd dtypes, the model's JSON config edited,
pickle opcodes and gadgets inserted, image dimensions rewritten) and byte-level edits
(flips, truncations, insertions, deletions, interesting integers), or fully random bytes.
Every input must end in success or a documented error, within a time limit (no hang)
and a memory limit (no blow-up, measured with ``tracemalloc`` and the process RSS), and
must never run code (the pickle-gadget tests check that a marker file is not created).

The number of examples per target comes from ``CLEARCONV_FUZZ_EXAMPLES`` (default 150,
a short derandomised run for CI); ``python tools/fuzz.py --examples 10000`` runs the same
fuzzers for longer, randomised, and prints the totals. ``tests/fuzz_corpus/<target>/``
holds the crashing inputs found so far; :func:`test_corpus_input` replays each one.
"""

from __future__ import annotations

import builtins
import contextlib
import dataclasses
import faulthandler
import gzip
import hashlib
import io
import json
import math
import os
import pickle
import shlex
import shutil
import signal
import struct
import tarfile
import tempfile
import threading
import time
import traceback
import tracemalloc
import warnings
import zipfile
import zlib
from collections.abc import Callable, Sequence
from functools import cache
from pathlib import Path
from typing import Any

import hypothesis
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import clearconv
import clearconv.train.zoo
from clearconv import io as ccio
from clearconv.data import DatasetError, load_image_folder, read_cifar_batch, read_idx
from clearconv.errors import ClearConvError, ModelFileError

try:
    import resource
except ImportError:  # pragma: no cover - not on Windows: the RSS check is skipped there
    resource = None

try:
    from PIL import Image

    from clearconv.data import images as ccimages
except ImportError:  # pragma: no cover - Pillow is installed wherever images are read
    Image = None
    ccimages = None

#: examples per target in this test file; tools/fuzz.py passes its own count
FUZZ_EXAMPLES = int(os.environ.get("CLEARCONV_FUZZ_EXAMPLES", "150"))
#: Hypothesis deadline per example (ms): none, as no test may depend on the clock (a busy
#: machine is slow, not wrong); runaway inputs are caught by TIME_LIMIT_S of CPU time
DEADLINE_MS = None
#: CPU time (of this process: user + system, not wall-clock, so other load does not
#: count) one input may use: more is reported as a hang
TIME_LIMIT_S = 10.0
#: peak Python/NumPy allocation (tracemalloc) allowed for one input of a few KB
TRACED_LIMIT = 64 << 20
#: growth of the process's peak RSS allowed for one input (catches C allocations too)
RSS_LIMIT = 256 << 20

CORPUS = Path(__file__).with_name("fuzz_corpus")


# =========================================================================== outcomes

@dataclasses.dataclass(frozen=True)
class Case:
    """One fuzz input: the bytes, a call variant (options), and how it was made."""

    data: bytes
    variant: int = 0
    recipe: str = ""

    def __repr__(self) -> str:  # short: Hypothesis prints failing examples
        digest = hashlib.sha1(self.data).hexdigest()[:12]
        return (f"Case(<{len(self.data)} bytes sha1 {digest}>, variant={self.variant}, "
                f"recipe={self.recipe[:300]!r})")


@dataclasses.dataclass(frozen=True)
class Outcome:
    """``kind`` is "success", "documented" (an allowed error) or "failure"."""

    kind: str
    detail: str
    seconds: float = 0.0
    traceback: str = ""

    @property
    def failed(self) -> bool:
        return self.kind == "failure"


class InputTimeout(BaseException):
    """Raised in the main thread by SIGPROF when one input uses TIME_LIMIT_S of CPU time."""


def _on_alarm(signum: int, frame: Any) -> None:
    raise InputTimeout


@contextlib.contextmanager
def _time_limit(seconds: float):
    """Interrupt the input after ``seconds`` of this process's CPU time (SIGPROF, main
    thread only). A hang that blocks without using CPU (or a C-level one that never returns
    to Python) is ended by faulthandler with a traceback after a generous wall-clock
    bound instead: the last resort against a suite that would never finish."""
    main = threading.current_thread() is threading.main_thread() and hasattr(signal, "SIGPROF")
    faulthandler.dump_traceback_later(max(600.0, 60 * seconds), exit=True)
    if main:
        previous = signal.signal(signal.SIGPROF, _on_alarm)
        signal.setitimer(signal.ITIMER_PROF, seconds)
    try:
        yield
    finally:
        if main:
            signal.setitimer(signal.ITIMER_PROF, 0)
            signal.signal(signal.SIGPROF, previous)
        faulthandler.cancel_dump_traceback_later()


def _rss_peak() -> int:
    """The process's peak resident set size in bytes (Linux reports KiB, macOS bytes)."""
    if resource is None:
        return 0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if os.uname().sysname == "Darwin" else peak * 1024


def _where(exc: BaseException) -> str:
    """``file:line`` of the innermost frame of ``exc``, to tell distinct failures apart."""
    frames = traceback.extract_tb(exc.__traceback__)
    if not frames:
        return "?"
    frame = frames[-1]
    return f"{Path(frame.filename).name}:{frame.lineno}"


def run_case(target: Target, case: Case, workdir: Path | None = None,
             trace_memory: bool = True) -> Outcome:
    """Run one input through ``target`` under the time and memory limits; classify it."""
    own = workdir is None
    workdir = Path(tempfile.mkdtemp(prefix="clearconv-fuzz-")) if own else workdir
    trace_memory = trace_memory and target.trace_memory
    started_trace = trace_memory and not tracemalloc.is_tracing()
    if started_trace:
        tracemalloc.start()
    try:
        if trace_memory:
            tracemalloc.reset_peak()
            base = tracemalloc.get_traced_memory()[0]
        rss = _rss_peak()
        t0 = time.perf_counter()
        try:
            with warnings.catch_warnings(), _time_limit(TIME_LIMIT_S):
                warnings.simplefilter("ignore")
                target.run(workdir, case)
            outcome = Outcome("success", "ok")
        except InputTimeout:
            outcome = Outcome("failure", f"hang: {TIME_LIMIT_S:g} s of CPU time and running")
        except target.documented as exc:
            outcome = Outcome("documented", type(exc).__name__)
        except KeyboardInterrupt:
            raise
        except BaseException as exc:  # noqa: BLE001 - any other type breaks the contract
            outcome = Outcome("failure", f"{type(exc).__name__} at {_where(exc)}: "
                                         f"{str(exc)[:200]}", 0.0, traceback.format_exc())
        seconds = time.perf_counter() - t0
        if not outcome.failed and trace_memory:
            peak = tracemalloc.get_traced_memory()[1] - base
            if peak > TRACED_LIMIT:
                outcome = Outcome("failure", f"memory: {peak / 2**20:.0f} MiB allocated "
                                             f"(tracemalloc) for a {len(case.data)}-byte input")
        if not outcome.failed and _rss_peak() - rss > RSS_LIMIT:
            grown = (_rss_peak() - rss) / 2**20
            outcome = Outcome("failure", f"memory: peak RSS grew by {grown:.0f} MiB")
        return dataclasses.replace(outcome, seconds=seconds)
    finally:
        if started_trace:
            tracemalloc.stop()
        if own:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            for child in workdir.iterdir():
                if child.is_dir() and not child.is_symlink():
                    shutil.rmtree(child, ignore_errors=True)
                else:
                    child.unlink(missing_ok=True)


# =========================================================================== byte edits

#: integers that tend to break parsers (sizes, signs, overflows)
INTERESTING = (0, 1, 2, 3, 4, 7, 8, 16, 0x7F, 0x80, 0xFF, 0x100, 0x3FF, 0x7FFF, 0x8000,
               0xFFFF, 0x10000, 10**6, 2**24, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF, 10**12,
               2**40, 2**62, 2**63 - 1, 2**64 - 1, -1, -2**31)
_INT_FORMATS = ("<B", "<H", ">H", "<I", ">I", "<Q", ">Q")

_pos = st.one_of(st.integers(0, 63), st.integers(0, 2**32))
BYTE_OP = st.one_of(
    st.tuples(st.just("flip"), _pos, st.integers(0, 7)),
    st.tuples(st.just("set"), _pos, st.integers(0, 255)),
    st.tuples(st.just("truncate"), _pos),
    st.tuples(st.just("insert"), _pos, st.binary(min_size=1, max_size=24)),
    st.tuples(st.just("delete"), _pos, st.integers(1, 64)),
    st.tuples(st.just("int"), _pos, st.sampled_from(INTERESTING), st.sampled_from(_INT_FORMATS)),
    st.tuples(st.just("dup"), _pos, _pos, st.integers(1, 256)),
)
BYTE_OPS = st.lists(BYTE_OP, max_size=4)


def pack_int(value: int, fmt: str) -> bytes:
    """``value`` as ``fmt`` (e.g. ``"<I"``), wrapped to the field width (-1 -> all ones)."""
    bits = 8 * struct.calcsize(fmt)
    return struct.pack(fmt, value % (1 << bits))


def apply_byte_ops(data: bytes, ops: Sequence[tuple]) -> bytes:
    """Apply byte-level edits; positions wrap around the current length."""
    b = bytearray(data)
    for op in ops:
        kind, n = op[0], len(b)
        if kind == "flip" and n:
            b[op[1] % n] ^= 1 << op[2]
        elif kind == "set" and n:
            b[op[1] % n] = op[2]
        elif kind == "truncate":
            del b[op[1] % (n + 1):]
        elif kind == "insert":
            i = op[1] % (n + 1)
            b[i:i] = op[2]
        elif kind == "delete" and n:
            i = op[1] % n
            del b[i:i + op[2]]
        elif kind == "int" and n:
            i = op[1] % n
            packed = pack_int(op[2], op[3])
            b[i:i + len(packed)] = packed
        elif kind == "dup" and n:
            i, j = op[1] % n, op[2] % (n + 1)
            b[j:j] = b[i:i + op[3]]
    return bytes(b)


def _random_bytes(max_size: int = 2048) -> st.SearchStrategy[bytes]:
    return st.binary(max_size=max_size)


def _cases(inputs: st.SearchStrategy[tuple[bytes, str]], variants: int) -> st.SearchStrategy[Case]:
    """Cases from (bytes, recipe) pairs and a call variant, or fully random bytes."""
    random = st.tuples(_random_bytes(), st.just("random bytes"))
    return st.builds(lambda pair, v: Case(pair[0], v, pair[1]),
                     st.one_of(inputs, inputs, inputs, random),
                     st.integers(0, variants - 1))


# =========================================================================== model files

@cache
def model_seed() -> bytes:
    """A real model file: the zoo's digits CNN, saved."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "digits.npz"
        clearconv.train.zoo.digits_cnn(rng=0).save(str(path))
        return path.read_bytes()


def zip_members(blob: bytes) -> list[tuple[str, bytes]]:
    with zipfile.ZipFile(io.BytesIO(blob)) as z:
        return [(info.filename, z.read(info)) for info in z.infolist()]


def make_zip(members: Sequence[tuple[str, bytes]], deflated: frozenset[int] = frozenset()) -> bytes:
    """A zip of ``members`` (name, bytes), with valid CRCs; ``deflated``: indices compressed."""
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # duplicate names are wanted here
        with zipfile.ZipFile(buf, "w") as z:
            for i, (name, data) in enumerate(members):
                kind = zipfile.ZIP_DEFLATED if i in deflated else zipfile.ZIP_STORED
                z.writestr(zipfile.ZipInfo(name, (1980, 1, 1, 0, 0, 0)), data, compress_type=kind)
    return buf.getvalue()


def split_npy(blob: bytes) -> tuple[bytes, bytes] | None:
    """(header text, data) of a ``.npy`` blob, or None when it has no npy preamble."""
    if len(blob) < 10 or not blob.startswith(b"\x93NUMPY"):
        return None
    if blob[6] == 1:
        length, start = struct.unpack("<H", blob[8:10])[0], 10
    else:
        if len(blob) < 12:
            return None
        length, start = struct.unpack("<I", blob[8:12])[0], 12
    return blob[start:start + length], blob[start + length:]


def make_npy(header: bytes | str, data: bytes, version: int = 1) -> bytes:
    """A ``.npy`` blob with ``header`` (the dict literal) padded as NumPy pads it."""
    text = header.encode("latin-1", "replace") if isinstance(header, str) else header
    pre = 10 if version == 1 else 12
    pad = (-(pre + len(text) + 1)) % 64
    text = text + b" " * pad + b"\n"
    if version == 1 and len(text) < 65536:
        return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(text)) + text + data
    return b"\x93NUMPY" + bytes([version, 0]) + struct.pack("<I", len(text)) + text + data


def npy_header(descr: str, fortran: bool, shape: tuple) -> str:
    return f"{{'descr': {descr!r}, 'fortran_order': {fortran}, 'shape': {shape!r}, }}"


def npy_array(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array(buf, array, allow_pickle=False)
    return buf.getvalue()


DESCRS = ("<f4", "<f8", ">f4", ">f8", "|u1", "|i1", "|b1", "<i8", "<u8", "<f2", "<c16",
          "|O", "<U4", "|S3", "|S0", "|V8", "|V0", "<M8[s]", "<m8[D]", "bogus", "",
          "[('a', '<f4')]", "(2,)<f4", "<f4,<f4")
_SHAPE_DIMS = st.sampled_from((0, 1, 2, 3, 8, 10, 64, 3 * 3 * 16, 2**31, 10**12, 2**62,
                               2**63 - 1, 2**64, -1))
SHAPES = st.lists(_SHAPE_DIMS, max_size=5).map(tuple)
HEADER_TEXTS = st.one_of(
    st.sampled_from((
        "{}", "", "[]", "None", "{'descr': '<f4'}", "{'descr': '<f4', 'shape': (1,)}",
        "{'descr': '<f4', 'fortran_order': False, 'shape': (1,), 'extra': 1}",
        "{'descr': '<f4', 'fortran_order': 'yes', 'shape': (1,)}",
        "{'descr': '<f4', 'fortran_order': False, 'shape': [1]}",
        "{'descr': '<f4', 'fortran_order': False, 'shape': (1.5,)}",
        "{'descr': '<f4', 'fortran_order': False, 'shape': (10**12,)}",
        "{'descr': '<f4', 'fortran_order': False, 'shape': " + "(" * 500 + ")" * 500 + "}",
        "__import__('os').system('false')", "{'descr': 'O'}" + "x" * 70000,
        "(" * 100000,
    )),
    st.text(max_size=80),
)
#: JSON values that the model config should survive (or refuse) as any field
JSON_VALUES = st.recursive(
    st.one_of(
        st.none(), st.booleans(), st.sampled_from(INTERESTING), st.integers(),
        st.floats(), st.text(max_size=8),
        st.sampled_from(("float16", "float64", "object", "complex128", "V1000000000", "<U3",
                         "same", "valid", "Conv2D", "Dense", "MaxPool2D", "Flatten",
                         "Sequential", "Layer", "he", "torch", "__class__")),
    ),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner,
                                                                 max_size=3),
    max_leaves=6,
)
MEMBER_NAMES = ("__config__.npy", "__config__", "0.weight.npy", "0.bias.npy", "3.weight.npy",
                "7.weight.npy", "x.npy", "", "../evil.npy", "/abs.npy", "a/b.npy",
                "0.weight", "\u00e9.npy", "9" * 300 + ".npy")


def _json_paths(node: Any, prefix: tuple = ()) -> list[tuple]:
    """Every (path to a node) in a JSON tree, the root excluded."""
    out = []
    items = node.items() if isinstance(node, dict) else enumerate(node) \
        if isinstance(node, list) else ()
    for key, child in items:
        out.append(prefix + (key,))
        out.extend(_json_paths(child, prefix + (key,)))
    return out


def mutate_json(config: Any, where: int, action: str, value: Any) -> Any:
    """Replace, delete or wrap the node number ``where`` of ``config``."""
    paths = _json_paths(config)
    if not paths:
        return value
    path = paths[where % len(paths)]
    parent = config
    for key in path[:-1]:
        parent = parent[key]
    key = path[-1]
    if action == "delete":
        del parent[key]
    elif action == "wrap":
        parent[key] = [parent[key]]
    elif action == "deep":
        parent[key] = _deep_list(3000)
    else:
        parent[key] = value
    return config


def _deep_list(depth: int) -> Any:
    node: list = []
    for _ in range(depth):
        node = [node]
    return node


def _dump_json(config: Any) -> str:
    """JSON text, with deep nesting written iteratively (json.dumps would recurse)."""
    try:
        return json.dumps(config)
    except RecursionError:
        return "[" * 3000 + "]" * 3000


MODEL_OP = st.one_of(
    st.tuples(st.just("member_bytes"), st.integers(0, 99), BYTE_OPS),
    st.tuples(st.just("npy_fields"), st.integers(0, 99),
              st.one_of(st.none(), st.sampled_from(DESCRS)),
              st.one_of(st.none(), SHAPES), st.booleans(), st.sampled_from((1, 2, 3))),
    st.tuples(st.just("npy_text"), st.integers(0, 99), HEADER_TEXTS),
    st.tuples(st.just("swap"), st.integers(0, 99), st.integers(0, 99)),
    st.tuples(st.just("drop"), st.integers(0, 99)),
    st.tuples(st.just("dup"), st.integers(0, 99)),
    st.tuples(st.just("rename"), st.integers(0, 99), st.sampled_from(MEMBER_NAMES)),
    st.tuples(st.just("deflate"), st.integers(0, 99)),
    st.tuples(st.just("json"), st.integers(0, 10**6),
              st.sampled_from(("replace", "replace", "replace", "delete", "wrap", "deep")),
              JSON_VALUES),
    st.tuples(st.just("json_text"), BYTE_OPS),
    st.tuples(st.just("config_array"), st.sampled_from(("<f4", "|i1", "<u2", "|u1"))),
)


def build_model_file(ops: Sequence[tuple], tail: Sequence[tuple]) -> bytes:
    """A model file from the seed, edited member by member, rezipped, then byte-edited."""
    members = zip_members(model_seed())
    deflated: set[int] = set()

    def index(i: int) -> int:
        return i % len(members)

    def config_of() -> tuple[int, Any] | None:
        for j, (name, blob) in enumerate(members):
            if name == "__config__.npy":
                parts = split_npy(blob)
                if parts is not None:
                    try:
                        return j, json.loads(parts[1].decode("utf-8"))
                    except (UnicodeDecodeError, ValueError, RecursionError):
                        return None
        return None

    for op in ops:
        if not members:
            members.append(("__config__.npy", npy_array(np.zeros(0, np.uint8))))
        kind = op[0]
        if kind == "member_bytes":
            name, blob = members[index(op[1])]
            members[index(op[1])] = (name, apply_byte_ops(blob, op[2]))
        elif kind == "npy_fields":
            name, blob = members[index(op[1])]
            parts = split_npy(blob)
            if parts is None:
                continue
            try:
                old = __import__("ast").literal_eval(parts[0].decode("latin-1"))
            except (ValueError, SyntaxError, MemoryError, RecursionError, TypeError):
                old = {}
            old = old if isinstance(old, dict) else {}
            descr = op[2] if op[2] is not None else old.get("descr", "<f4")
            shape = op[3] if op[3] is not None else old.get("shape", ())
            header = npy_header(str(descr), op[4], tuple(shape) if isinstance(shape, (list, tuple))
                                else ())
            members[index(op[1])] = (name, make_npy(header, parts[1], op[5]))
        elif kind == "npy_text":
            name, blob = members[index(op[1])]
            parts = split_npy(blob)
            members[index(op[1])] = (name, make_npy(op[2], parts[1] if parts else blob))
        elif kind == "swap":
            i, j = index(op[1]), index(op[2])
            (ni, bi), (nj, bj) = members[i], members[j]
            members[i], members[j] = (ni, bj), (nj, bi)
        elif kind == "drop":
            del members[index(op[1])]
        elif kind == "dup":
            members.append(members[index(op[1])])
        elif kind == "rename":
            members[index(op[1])] = (op[2], members[index(op[1])][1])
        elif kind == "deflate":
            deflated.add(index(op[1]))
        elif kind in ("json", "json_text", "config_array"):
            found = config_of()
            if found is None:
                continue
            j, config = found
            if kind == "json":
                text = _dump_json(mutate_json(config, op[1], op[2], op[3]))
                raw = text.encode("utf-8", "surrogatepass")
            elif kind == "json_text":
                raw = apply_byte_ops(json.dumps(config).encode(), op[1])
            else:
                raw = json.dumps(config).encode()
                raw = raw[: len(raw) - len(raw) % np.dtype(op[1]).itemsize]
                members[j] = (members[j][0], npy_array(np.frombuffer(raw, op[1])))
                continue
            members[j] = (members[j][0], npy_array(np.frombuffer(raw, np.uint8)))
    return apply_byte_ops(make_zip(members, frozenset(deflated)), tail)


def model_inputs() -> st.SearchStrategy[tuple[bytes, str]]:
    return st.builds(lambda ops, tail: (build_model_file(ops, tail), repr((ops, tail))[:2000]),
                     st.lists(MODEL_OP, max_size=3), BYTE_OPS)


def _write_input(workdir: Path, case: Case, suffix: str) -> Path:
    path = workdir / f"input{suffix}"
    path.write_bytes(case.data)
    return path


def run_model(workdir: Path, case: Case) -> None:
    model = clearconv.load(str(_write_input(workdir, case, ".npz")))
    assert isinstance(model, clearconv.Sequential)


def run_arrays(workdir: Path, case: Case) -> None:
    config, arrays = ccio.load_arrays(_write_input(workdir, case, ".npz"))
    assert isinstance(config, dict)
    assert all(isinstance(a, np.ndarray) and not a.dtype.hasobject for a in arrays.values())


# =========================================================================== IDX files

def idx_bytes(array: np.ndarray, code: int) -> bytes:
    dtype = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}[code]
    header = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(dtype).tobytes()


@cache
def idx_seeds() -> tuple[bytes, ...]:
    """Valid IDX files: images (uint8, 3-D), labels (uint8, 1-D), int16, float32, float64."""
    rng = np.random.default_rng(0)
    return (
        idx_bytes(rng.integers(0, 256, (5, 4, 3)), 0x08),
        idx_bytes(rng.integers(0, 10, 7), 0x08),
        idx_bytes(rng.integers(-500, 500, (3, 2)), 0x0B),
        idx_bytes(rng.normal(size=(2, 3, 2, 1)), 0x0D),
        idx_bytes(rng.normal(size=4), 0x0E),
        idx_bytes(rng.integers(-100, 100, (2, 2)), 0x09),
    )


IDX_OP = st.one_of(
    st.tuples(st.just("type"), st.sampled_from((0x08, 0x09, 0x0B, 0x0C, 0x0D, 0x0E, 0x00,
                                                0x07, 0x0A, 0xFF))),
    st.tuples(st.just("ndim"), st.sampled_from((0, 1, 2, 3, 4, 5, 64, 255))),
    st.tuples(st.just("dim"), st.integers(0, 7), st.sampled_from(INTERESTING)),
    st.tuples(st.just("huge"), st.sampled_from(((10**4, 10**4, 10**4), (10**6, 10**6),
                                                (2**32 - 1,) * 3, (2**31, 2), (1, 10**9)))),
    st.tuples(st.just("prefix"), st.binary(min_size=2, max_size=2)),
    st.tuples(st.just("trail"), st.binary(min_size=1, max_size=16)),
)


def build_idx_file(seed: int, ops: Sequence[tuple], pre: Sequence[tuple], compress: str,
                   post: Sequence[tuple]) -> bytes:
    b = bytearray(idx_seeds()[seed % len(idx_seeds())])
    for op in ops:
        if op[0] == "type":
            b[2] = op[1]
        elif op[0] == "ndim":
            b[3] = op[1]
        elif op[0] == "dim":
            i = 4 + 4 * op[1]
            b[i:i + 4] = pack_int(op[2], ">I")
        elif op[0] == "huge":
            b[3] = len(op[1])
            b[4:4 + 4 * len(op[1])] = struct.pack(f">{len(op[1])}I", *op[1])
        elif op[0] == "prefix":
            b[0:2] = op[1]
        elif op[0] == "trail":
            b += op[1]
    raw = apply_byte_ops(bytes(b), pre)
    if compress == "gzip":
        raw = gzip.compress(raw, mtime=0)
    elif compress == "gzip-multi":  # two members: valid gzip, read as one stream
        half = len(raw) // 2
        raw = gzip.compress(raw[:half], mtime=0) + gzip.compress(raw[half:], mtime=0)
    return apply_byte_ops(raw, post)


def idx_inputs() -> st.SearchStrategy[tuple[bytes, str]]:
    def build(seed, ops, pre, compress, post):
        return (build_idx_file(seed, ops, pre, compress, post),
                repr((seed, ops, pre, compress, post))[:2000])
    return st.builds(build, st.integers(0, 5), st.lists(IDX_OP, max_size=3), BYTE_OPS,
                     st.sampled_from(("raw", "gzip", "gzip", "gzip-multi")), BYTE_OPS)


def run_idx(workdir: Path, case: Case) -> None:
    array = read_idx(_write_input(workdir, case, ".idx"))
    assert isinstance(array, np.ndarray) and array.flags.writeable


# =========================================================================== CIFAR batches

def cifar_batch(n: int = 3, seed: int = 0) -> dict[bytes, Any]:
    rng = np.random.default_rng(seed)
    return {
        b"batch_label": b"testing batch 1 of 1",
        b"labels": [int(v) for v in rng.integers(0, 10, n)],
        b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
        b"filenames": [f"img_{i}.png".encode() for i in range(n)],
    }


@cache
def cifar_seed() -> bytes:
    return pickle.dumps(cifar_batch(), protocol=2)


#: byte strings to splice into a pickle: gadgets, huge length prefixes, stray opcodes
PICKLE_SNIPPETS = (
    b"cos\nsystem\n", b"cposix\nsystem\n", b"cbuiltins\nexec\n", b"cbuiltins\neval\n",
    b"c__builtin__\neval\n", b"cnumpy\nload\n", b"cnumpy.core.multiarray\n_reconstruct\n",
    b"cnumpy\ndtype\n", b"cnumpy\nndarray\n", b"c_codecs\nencode\n",
    b"\x8c\x02os\x8c\x06system\x93", b"(", b"t", b"R", b"b", b".", b"}", b"]", b"N", b")",
    b"\x85", b"\x86", b"\x87", b"s", b"u", b"a", b"e", b"0", b"2", b"\x94",
    b"q\x00", b"h\x00", b"j\xff\xff\xff\x7f", b"r\xff\xff\xff\xff", b"g99999\n",
    b"B\xff\xff\xff\x7f", b"X\xff\xff\xff\xff", b"T\xff\xff\xff\x7f",
    b"\x8e\xff\xff\xff\xff\xff\xff\x00\x00", b"\x8d\x00\x00\x00\x00\x00\x01\x00\x00",
    b"\x95\xff\xff\xff\xff\xff\x00\x00\x00", b"\x96\xff\xff\xff\x7f\x00\x00\x00\x00",
    b"\x8a\xff\xff\xff\x7f", b"\x8b\xff\xff\xff\x7f", b"P0\n", b"Q",
    b"I99999999999999999999999999\n", b"F1e999\n", b"\x80\x05", b"\x80\xff",
)
_DTYPE_STATES = st.tuples(
    st.sampled_from((3, 2, 1, 0, 99)), st.sampled_from(("|", "<", ">", "=", "x")),
    st.just(None), st.sampled_from((None, ("a",), ("a", "b"))), st.just(None),
    st.sampled_from((-1, 0, 1, 8, 3072, 2**31)), st.sampled_from((-1, 0, 1, 8)),
    st.sampled_from((0, 1, 8, 0x3F, 0xFF)),
)


class _Reduce:
    """An object that pickles as ``func(*args)`` (a hand-made reduce)."""

    def __init__(self, func: Any, args: tuple, state: Any = None) -> None:
        self.func, self.args, self.state = func, args, state

    def __reduce__(self) -> tuple[Any, ...]:
        return (self.func, self.args) if self.state is None else (self.func, self.args,
                                                                   self.state)


CIFAR_OP = st.one_of(
    st.tuples(st.just("data_dtype"), st.sampled_from(("u1", "i1", "u2", "f4", "f8", "V1", "S1",
                                                      "b1", ">u2", "c8"))),
    st.tuples(st.just("data_shape"), st.sampled_from(((3, 3072), (3, 3071), (3, 3, 32, 32),
                                                      (0, 3072), (9216,), (1, 3072), ()))),
    st.tuples(st.just("labels"), JSON_VALUES),
    st.tuples(st.just("label"), st.integers(0, 9), st.one_of(
        st.sampled_from(INTERESTING), st.booleans(), st.floats(), st.none(), st.text(max_size=3))),
    st.tuples(st.just("drop_key"), st.sampled_from((b"data", b"labels", b"batch_label"))),
    st.tuples(st.just("str_keys")),
    st.tuples(st.just("top"), JSON_VALUES),
    st.tuples(st.just("dtype_state"), _DTYPE_STATES),
    st.tuples(st.just("reconstruct"),
              st.sampled_from(((0,), (10**12,), (2**30,), (-1,), (3, 3072))),
              st.sampled_from((b"b", b"B", b"", b"\xff" * 10))),
    st.tuples(st.just("protocol"), st.sampled_from((0, 1, 2, 2, 3, 4, 5))),
)


def build_cifar_file(ops: Sequence[tuple], splices: Sequence[tuple[int, bytes]],
                     tail: Sequence[tuple]) -> bytes:
    """A CIFAR batch pickle from a (possibly edited) batch dict, then opcode splices and
    byte edits."""
    obj: Any = cifar_batch()
    protocol = 2
    reconstruct = None
    for op in ops:
        kind = op[0]
        if kind not in ("top", "protocol") and not (
                isinstance(obj, dict) and isinstance(obj.get(b"data"), np.ndarray)):
            continue
        if kind == "data_dtype":
            data = obj[b"data"]
            data = (data.reshape(-1) if data.ndim == 0 else data).view(np.uint8)  # 0-d: no view
            obj[b"data"] = data.astype(op[1]) if op[1] not in ("V1", "S1") else data.view(op[1])
        elif kind == "data_shape":
            obj[b"data"] = np.resize(obj[b"data"], math.prod(op[1])).reshape(op[1])
        elif kind == "labels":
            obj[b"labels"] = op[1]
        elif kind == "label" and isinstance(obj.get(b"labels"), list) and obj[b"labels"]:
            obj[b"labels"][op[1] % len(obj[b"labels"])] = op[2]
        elif kind == "drop_key":
            obj.pop(op[1], None)
        elif kind == "str_keys":
            obj = {k.decode() if isinstance(k, bytes) else k: v for k, v in obj.items()}
        elif kind == "top":
            obj = op[1]
        elif kind == "dtype_state":
            # a dtype rebuilt with a hand-written state (flags, sizes, fields) by BUILD
            obj[b"data"] = _Reduce(np.dtype, ("u1", False, True), op[1])
        elif kind == "reconstruct":
            reconstruct = op[1:]
        elif kind == "protocol":
            protocol = op[1]
    if reconstruct is not None and isinstance(obj, dict):
        from clearconv.data.cifar import _reconstruct_function
        shape, char = reconstruct
        obj[b"data"] = _Reduce(_reconstruct_function(), (np.ndarray, shape, char))
    try:
        data = pickle.dumps(obj, protocol=protocol)
    except (pickle.PicklingError, TypeError, ValueError, RecursionError, OverflowError):
        data = cifar_seed()
    b = bytearray(data)
    for pos, snippet in splices:
        i = pos % (len(b) + 1)
        b[i:i] = snippet
    return apply_byte_ops(bytes(b), tail)


def cifar_inputs() -> st.SearchStrategy[tuple[bytes, str]]:
    splice = st.tuples(_pos, st.sampled_from(PICKLE_SNIPPETS))
    return st.builds(lambda ops, sp, tail: (build_cifar_file(ops, sp, tail),
                                            repr((ops, sp, tail))[:2000]),
                     st.lists(CIFAR_OP, max_size=3), st.lists(splice, max_size=2), BYTE_OPS)


def run_cifar(workdir: Path, case: Case) -> None:
    if case.variant == 0:
        images, labels = read_cifar_batch(_write_input(workdir, case, ""))
    else:
        images, labels = read_cifar_batch(io.BytesIO(case.data), name="fuzz")
    assert images.dtype == np.uint8 and not images.dtype.hasobject
    assert images.shape[1:] == (3, 32, 32) and labels.shape == (images.shape[0],)
    assert labels.dtype == np.int64


# =========================================================================== images

IMAGE_SUFFIX = {"png": ".png", "jpeg": ".jpg", "gif": ".gif", "bmp": ".bmp"}


@cache
def image_seeds() -> tuple[tuple[str, bytes], ...]:
    """(format, bytes) of small valid images made with Pillow: every mode a reader meets."""
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (5, 6, 3), dtype=np.uint8)
    grey = rng.integers(0, 256, (5, 6), dtype=np.uint8)
    out = []

    def save(img: Any, fmt: str, **kw: Any) -> None:
        buf = io.BytesIO()
        img.save(buf, format=fmt.upper(), **kw)
        out.append((fmt, buf.getvalue()))

    save(Image.fromarray(grey), "png")
    save(Image.fromarray(rgb), "png")
    save(Image.fromarray(np.dstack([rgb, grey])), "png")
    pal = Image.fromarray(rgb).convert("P", palette=Image.Palette.ADAPTIVE, colors=8)
    save(pal, "png", transparency=0)
    save(Image.fromarray(grey.astype(np.uint16) * 257), "png")
    save(Image.fromarray(grey > 128), "png")
    save(Image.fromarray(rgb), "jpeg", quality=80)
    save(Image.fromarray(grey), "jpeg")
    frames = [Image.fromarray(rgb).convert("P"), Image.fromarray(255 - rgb).convert("P")]
    buf = io.BytesIO()
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:])
    out.append(("gif", buf.getvalue()))
    save(Image.fromarray(rgb), "bmp")
    save(pal, "bmp")
    exif = Image.Exif()
    exif[0x0112] = 6
    save(Image.fromarray(rgb), "jpeg", exif=exif.tobytes())
    return tuple(out)


def _png_chunks(data: bytes) -> list[tuple[bytes, bytes]] | None:
    if not data.startswith(b"\x89PNG\r\n\x1a\n"):
        return None
    chunks, i = [], 8
    while i + 8 <= len(data):
        length = struct.unpack(">I", data[i:i + 4])[0]
        kind, body = data[i + 4:i + 8], data[i + 8:i + 8 + length]
        chunks.append((kind, body))
        i += 12 + length
    return chunks


def _png_join(chunks: Sequence[tuple[bytes, bytes]]) -> bytes:
    out = [b"\x89PNG\r\n\x1a\n"]
    for kind, body in chunks:
        out.append(struct.pack(">I", len(body)) + kind + body
                   + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF))
    return b"".join(out)


_DIMENSIONS = st.sampled_from((0, 1, 2, 255, 256, 9999, 10000, 30000, 65535, 2**24,
                               2**31 - 1, 2**32 - 1))
IMAGE_OP = st.one_of(
    st.tuples(st.just("dims"), _DIMENSIONS, _DIMENSIONS),
    st.tuples(st.just("png_ihdr"), st.sampled_from((0, 1, 2, 4, 8, 16, 3)),
              st.sampled_from((0, 2, 3, 4, 6, 1, 7))),
    st.tuples(st.just("png_chunk_bytes"), st.integers(0, 20), BYTE_OPS),
    st.tuples(st.just("png_drop"), st.integers(0, 20)),
    st.tuples(st.just("png_dup"), st.integers(0, 20)),
    st.tuples(st.just("png_bomb"), st.sampled_from((10**6, 3 * 10**7))),
)


def _set_dims(fmt: str, data: bytes, w: int, h: int) -> bytes:
    """Rewrite the width and height fields of a PNG, BMP, GIF or JPEG header."""
    b = bytearray(data)
    if fmt == "png" and len(b) >= 24:
        chunks = _png_chunks(data) or []
        if chunks and chunks[0][0] == b"IHDR" and len(chunks[0][1]) >= 8:
            body = pack_int(w, ">I") + pack_int(h, ">I") + chunks[0][1][8:]
            return _png_join([(b"IHDR", body)] + chunks[1:])
    elif fmt == "bmp" and len(b) >= 26:
        b[18:22] = pack_int(w, "<I")
        b[22:26] = pack_int(h, "<I")
    elif fmt == "gif" and len(b) >= 10:
        b[6:8] = pack_int(w, "<H")
        b[8:10] = pack_int(h, "<H")
    elif fmt == "jpeg":
        i = b.find(b"\xff\xc0")
        if i < 0:
            i = b.find(b"\xff\xc2")
        if i >= 0 and len(b) >= i + 9:
            b[i + 5:i + 7] = pack_int(h, ">H")
            b[i + 7:i + 9] = pack_int(w, ">H")
    return bytes(b)


def build_image_file(seed: int, ops: Sequence[tuple], tail: Sequence[tuple],
                     fix_crc: bool) -> tuple[str, bytes]:
    fmt, data = image_seeds()[seed % len(image_seeds())]
    for op in ops:
        chunks = _png_chunks(data) if fmt == "png" else None
        if op[0] == "dims":
            data = _set_dims(fmt, data, op[1], op[2])
        elif chunks is None:
            continue
        elif op[0] == "png_ihdr" and chunks and len(chunks[0][1]) >= 10:
            body = chunks[0][1]
            chunks[0] = (chunks[0][0], body[:8] + bytes([op[1], op[2]]) + body[10:])
            data = _png_join(chunks)
        elif op[0] == "png_chunk_bytes" and chunks:
            j = op[1] % len(chunks)
            chunks[j] = (chunks[j][0], apply_byte_ops(chunks[j][1], op[2]))
            data = _png_join(chunks)
        elif op[0] == "png_drop" and chunks:
            del chunks[op[1] % len(chunks)]
            data = _png_join(chunks)
        elif op[0] == "png_dup" and chunks:
            chunks.insert(op[1] % len(chunks), chunks[op[1] % len(chunks)])
            data = _png_join(chunks)
        elif op[0] == "png_bomb" and chunks:
            # IDAT holding many zero bytes (a few KB compressed) for a header as large
            idat = zlib.compress(b"\x00" * op[1], 9)
            side = math.isqrt(op[1])
            ihdr = struct.pack(">II", side - 1, side) + b"\x08\x00\x00\x00\x00"
            data = _png_join([(b"IHDR", ihdr), (b"IDAT", idat), (b"IEND", b"")])
    data = apply_byte_ops(data, tail)
    if fix_crc and fmt == "png":
        chunks = _png_chunks(data)
        if chunks:
            data = _png_join(chunks)
    return fmt, data


def image_inputs() -> st.SearchStrategy[tuple[bytes, str]]:
    def build(seed, ops, tail, fix):
        fmt, data = build_image_file(seed, ops, tail, fix)
        return data, repr((seed, fmt, ops, tail, fix))[:2000]
    return st.builds(build, st.integers(0, 99), st.lists(IMAGE_OP, max_size=2), BYTE_OPS,
                     st.booleans())


#: (mode, size) of the image calls; a case draws one, the corpus replays all
IMAGE_VARIANTS: tuple[tuple[str | None, tuple[int, int] | None], ...] = (
    (None, None), ("L", (8, 8)), ("RGB", None), (None, (3, 5)))


def _sniff_suffix(data: bytes) -> str:
    """The extension a user would give these bytes: by the magic number, else .png."""
    for magic, suffix in ((b"\xff\xd8", ".jpg"), (b"GIF8", ".gif"), (b"BM", ".bmp")):
        if data.startswith(magic):
            return suffix
    return ".png"


#: PIL.Image.MAX_IMAGE_PIXELS while fuzzing. The image readers refuse a header announcing
#: more pixels than this limit (Pillow's default, 89 M pixels, costs GBs by design: a
#: 281-byte PNG may announce 85 M pixels that Pillow decodes as zeros); a lower limit
#: lets RSS_LIMIT check that nothing allocates beyond what the limit allows.
FUZZ_MAX_PIXELS = 1 << 22


@contextlib.contextmanager
def _pixel_limit(limit: int):
    previous = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = limit
    try:
        yield
    finally:
        Image.MAX_IMAGE_PIXELS = previous


def run_image(workdir: Path, case: Case) -> None:
    mode, size = IMAGE_VARIANTS[case.variant % len(IMAGE_VARIANTS)]
    path = _write_input(workdir, case, _sniff_suffix(case.data))
    with _pixel_limit(FUZZ_MAX_PIXELS):
        array = ccimages.load_image(str(path), mode=mode, size=size)
    assert array.dtype == np.uint8 and array.ndim == 3 and array.shape[0] in (1, 3)
    if size is not None:
        assert array.shape[1:] == size


FOLDER_VARIANTS: tuple[tuple[str | None, tuple[int, int] | None], ...] = (
    (None, (8, 8)), ("L", None), ("RGB", (4, 6)), (None, None))


def run_folder(workdir: Path, case: Case) -> None:
    mode, size = FOLDER_VARIANTS[case.variant % len(FOLDER_VARIANTS)]
    root = workdir / "images"
    (root / "a").mkdir(parents=True)
    (root / "b").mkdir()
    (root / "a" / "seed.png").write_bytes(image_seeds()[0][1])
    (root / "b" / f"input{_sniff_suffix(case.data)}").write_bytes(case.data)
    with _pixel_limit(FUZZ_MAX_PIXELS):
        x, _y, classes = load_image_folder(root, size=size, mode=mode)
    assert x.dtype == np.uint8 and x.shape[0] == 2 and classes == ("a", "b")


# =========================================================================== targets

@dataclasses.dataclass(frozen=True)
class Target:
    name: str
    call: str
    documented: tuple[type[BaseException], ...]
    inputs: Callable[[], st.SearchStrategy[tuple[bytes, str]]]
    run: Callable[[Path, Case], None]
    variants: int = 1
    needs_pillow: bool = False
    #: check the tracemalloc peak: the NumPy loaders must refuse a header announcing a
    #: huge array before allocating it. Not for Pillow, whose readers may ask Python for
    #: a large read buffer that is never touched; the RSS limit covers them.
    trace_memory: bool = True

    def cases(self) -> st.SearchStrategy[Case]:
        return _cases(self.inputs(), self.variants)


TARGETS: dict[str, Target] = {t.name: t for t in (
    Target("model", "clearconv.load(path)", (ModelFileError, FileNotFoundError),
           model_inputs, run_model),
    Target("arrays", "clearconv.io.load_arrays(path)", (ModelFileError, FileNotFoundError),
           model_inputs, run_arrays),
    Target("idx", "clearconv.data.read_idx(path)", (DatasetError,), idx_inputs, run_idx),
    Target("cifar", "clearconv.data.read_cifar_batch(path or file object)", (DatasetError,),
           cifar_inputs, run_cifar, variants=2),
    Target("image", "clearconv.data.images.load_image(path, mode, size)",
           (getattr(ccimages, "ImageFileError", ClearConvError), FileNotFoundError),
           image_inputs, run_image,
           variants=len(IMAGE_VARIANTS), needs_pillow=True, trace_memory=False),
    Target("folder", "clearconv.data.load_image_folder(root, size, mode)", (DatasetError,),
           image_inputs, run_folder, variants=len(FOLDER_VARIANTS), needs_pillow=True,
           trace_memory=False),
)}


# =========================================================================== issue 12 targets
# the CIFAR archive, checkpoint and run-option fields, and the downloader

def _tar_member(name: str, data: bytes, kind: bytes = tarfile.REGTYPE, size: int | None = None,
                fmt: int = tarfile.GNU_FORMAT) -> bytes:
    """One tar member (header and padded data) with a type and announced size of choice."""
    info = tarfile.TarInfo(name)
    info.size, info.type = len(data), kind
    if kind in (tarfile.SYMTYPE, tarfile.LNKTYPE):
        info.linkname, info.size = "cifar-10-batches-py/data_batch_1", 0
    header = bytearray(info.tobuf(format=fmt))
    if size is not None and size != info.size:
        header[124:136] = (b"%011o\0" % size) if size < 8 ** 11 else \
            b"\x80" + size.to_bytes(11, "big")
        header[148:156] = b" " * 8
        header[148:156] = b"%06o\0 " % sum(header[:512])
    if kind == tarfile.GNUTYPE_SPARSE:
        header[386:398] = b"%011o\0" % max(0, (size or 1) - 1)
        header[398:410] = b"%011o\0" % 1
        header[483:495] = b"%011o\0" % (size or 1)
        header[148:156] = b" " * 8
        header[148:156] = b"%06o\0 " % sum(header[:512])
    body = data if kind not in (tarfile.SYMTYPE, tarfile.LNKTYPE) else b""
    return bytes(header) + body + b"\0" * (-len(body) % 512)


ARCHIVE_OP = st.one_of(
    st.tuples(st.just("member"), st.sampled_from(("data", "seed", "junk", "empty")),
              st.sampled_from((tarfile.REGTYPE, tarfile.GNUTYPE_SPARSE, tarfile.SYMTYPE,
                               tarfile.LNKTYPE, tarfile.DIRTYPE, tarfile.FIFOTYPE,
                               tarfile.CHRTYPE)),
              st.one_of(st.none(), st.sampled_from((0, 1, 2**20, 2**26, 2**33, 6 << 30,
                                                    2**62)))),
    st.tuples(st.just("many"), st.integers(1, 200)),
)


def build_cifar_archive(ops: Sequence[tuple], compress: str, tail: Sequence[tuple]) -> bytes:
    """A cifar-10-python.tar(.gz|.bz2) of test_batch and edited members, then byte edits."""
    parts = []
    for op in ops:
        if op[0] == "member":
            data = {"data": cifar_seed(), "seed": cifar_seed()[:200], "junk": b"\x00" * 700,
                    "empty": b""}[op[1]]
            parts.append(_tar_member(f"{CIFAR_DIR}/test_batch", data, op[2], op[3]))
        else:
            parts.extend(_tar_member(f"{CIFAR_DIR}/x{i}", b"x") for i in range(op[1]))
    parts.append(_tar_member(f"{CIFAR_DIR}/test_batch", cifar_seed()))
    raw = b"".join(parts) + b"\0" * 1024
    data = {"gz": gzip.compress(raw, mtime=0), "bz2": __import__("bz2").compress(raw),
            "none": raw}[compress]
    return apply_byte_ops(data, tail)


CIFAR_DIR = "cifar-10-batches-py"


def archive_inputs() -> st.SearchStrategy[tuple[bytes, str]]:
    return st.builds(lambda ops, c, tail: (build_cifar_archive(ops, c, tail),
                                           repr((ops, c, tail))[:2000]),
                     st.lists(ARCHIVE_OP, max_size=3), st.sampled_from(("gz", "bz2", "none")),
                     BYTE_OPS)


def run_archive(workdir: Path, case: Case) -> None:
    from clearconv.data import load_cifar10

    images, labels = load_cifar10(_write_input(workdir, case, ".tar.gz"), "test")
    assert images.dtype == np.uint8 and images.shape[1:] == (3, 32, 32)
    assert labels.shape == (images.shape[0],) and images.nbytes <= 64 << 20


# -------------------------------------------------------------- checkpoint and run fields

def _tiny_fit(checkpoint_dir: str | None, epochs: int = 1, resume: bool = False) -> Any:
    from clearconv.layers import Dense, Flatten

    rng = np.random.default_rng(0)
    x = rng.random((12, 1, 2, 2), np.float32)
    y = rng.integers(0, 3, 12)
    model = clearconv.Sequential(Flatten(), Dense(4, 3, rng=0), input_shape=(1, 2, 2))
    options = {"recipe": clearconv.train.recipe("digits", epochs=epochs).to_dict(),
               "seed": 0, "data": {"data_dir": None, "image_size": None}, "run_id": "0" * 32}
    callbacks = [] if checkpoint_dir is None else [
        clearconv.BackupAndRestore(checkpoint_dir, resume=resume, options=options)]
    model.fit(x, y, epochs=epochs, batch_size=4, verbose=0, seed=0, callbacks=callbacks,
              optimizer=clearconv.optim.SGD(model.parameters(), lr=0.1, momentum=0.9))
    return model


@cache
def checkpoint_seed() -> bytes:
    """A real checkpoint of a tiny run (its ``checkpoint.npz`` bytes)."""
    with tempfile.TemporaryDirectory() as tmp:
        _tiny_fit(tmp)
        return (Path(tmp) / "checkpoint.npz").read_bytes()


CHECKPOINT_FIELDS = ("epoch", "step", "epoch_rng", "layer_rngs", "totals", "history", "extra",
                     "optimizer", "callbacks", "options", "model")
CHECKPOINT_OP = st.one_of(
    st.tuples(st.just("set"), st.sampled_from(CHECKPOINT_FIELDS), JSON_VALUES),
    st.tuples(st.just("drop"), st.sampled_from(CHECKPOINT_FIELDS)),
    st.tuples(st.just("option"), st.sampled_from(("recipe", "seed", "data", "run_id", "out")),
              JSON_VALUES),
    st.tuples(st.just("recipe"), st.sampled_from(("epochs", "lr", "batch_size", "optimizer",
                                                  "model", "dataset", "val_split")),
              JSON_VALUES),
    st.tuples(st.just("lr"), st.sampled_from((-0.5, 0.0, float("nan"), float("inf"), 1e300))),
    st.tuples(st.just("array"), st.sampled_from(("optim/lr", "optim/step", "optim/velocity.0",
                                                 "model/1.weight")),
              st.sampled_from(("neg", "nan", "shape", "int", "drop"))),
)


def build_checkpoint(ops: Sequence[tuple], tail: Sequence[tuple]) -> bytes:
    members = dict(zip_members(checkpoint_seed()))
    parts = split_npy(members["__config__.npy"])
    assert parts is not None
    config = json.loads(parts[1])
    ck = config["checkpoint"]
    arrays = {n[:-4]: np.load(io.BytesIO(b)) for n, b in members.items()
              if n != "__config__.npy"}
    for op in ops:
        kind = op[0]
        if kind == "set":
            ck[op[1]] = op[2]
        elif kind == "drop":
            ck.pop(op[1], None)
        elif kind == "option" and isinstance(ck.get("options"), dict):
            ck["options"][op[1]] = op[2]
        elif kind == "recipe" and isinstance(ck.get("options"), dict) and \
                isinstance(ck["options"].get("recipe"), dict):
            ck["options"]["recipe"][op[1]] = op[2]
        elif kind == "lr" and isinstance(ck.get("optimizer"), dict) and \
                isinstance(ck["optimizer"].get("hyperparams"), dict):
            ck["optimizer"]["hyperparams"]["lr"] = op[1]
        elif kind == "array" and arrays.get(op[1]) is not None:
            a = arrays[op[1]]
            with np.errstate(invalid="ignore"):     # nan -> int: meant
                arrays[op[1]] = {"neg": -np.abs(a) - 1, "nan": np.full(a.shape, np.nan),
                                 "shape": a.ravel()[:1], "int": a.astype(np.int64),
                                 "drop": None}[op[2]]
    text = json.dumps(config, allow_nan=True).encode()
    out = [("__config__.npy", npy_array(np.frombuffer(text, np.uint8)))]
    out += [(f"{k}.npy", npy_array(np.asarray(v))) for k, v in arrays.items() if v is not None]
    return apply_byte_ops(make_zip(out), tail)


def checkpoint_inputs() -> st.SearchStrategy[tuple[bytes, str]]:
    return st.builds(lambda ops, tail: (build_checkpoint(ops, tail), repr((ops, tail))[:2000]),
                     st.lists(CHECKPOINT_OP, min_size=1, max_size=3),
                     st.one_of(st.just([]), st.just([]), st.lists(BYTE_OP, max_size=1)))


def run_checkpoint(workdir: Path, case: Case) -> None:
    """Variant 0: resume the tiny run from the checkpoint (it must train on, finitely);
    variant 1: the options ``clearconv train --resume`` reads (run.json's fields)."""
    folder = workdir / "ck"
    folder.mkdir(exist_ok=True)
    (folder / "checkpoint.npz").write_bytes(case.data)
    if case.variant == 0:
        model = _tiny_fit(str(folder), epochs=2, resume=True)
        assert all(np.isfinite(p.value).all() for p in model.parameters())
        return
    import argparse

    from clearconv import cli
    from clearconv.train import BackupAndRestore, Recipe

    saved = BackupAndRestore.saved_options(str(folder))
    if not {"recipe", "seed", "data"} <= set(saved):
        raise ClearConvError("no train options")
    args = argparse.Namespace(resume=str(folder), augment=None, dataset="digits", seed=0,
                              data_dir=None, image_size=None,
                              **{k: None for k in cli._RECIPE_FLAGS})
    r = cli._resumed_recipe(args, saved, Recipe)
    assert r.epochs >= 1 and r.lr > 0


# -------------------------------------------------------------- the downloader

DOWNLOAD_BODY = b"clearconv fuzz download " * 50
SERVER_OP = st.fixed_dictionaries({
    "status": st.sampled_from((200, 200, 200, 206, 301, 404, 416, 500, 503)),
    "length": st.one_of(st.none(), st.sampled_from(("exact", "short", "long", "huge", "neg",
                                                    "text"))),
    "body": st.sampled_from(("exact", "short", "long", "flood", "empty", "random")),
    "range": st.sampled_from(("none", "good", "bad")),
    "location": st.sampled_from((None, "/", "file:///etc/passwd", "http://127.0.0.1:9/x")),
})


class _FuzzServer:
    """One local HTTP server for the whole run; each case sets how it answers."""

    def __init__(self) -> None:
        import http.server

        self.plan: list[dict[str, Any]] = []
        server_self = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"

            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                plan = server_self.plan.pop(0) if server_self.plan else {
                    "status": 404, "length": None, "body": "empty", "range": "none",
                    "location": None}
                body = {"exact": DOWNLOAD_BODY, "short": DOWNLOAD_BODY[:100],
                        "long": DOWNLOAD_BODY * 3, "empty": b"",
                        "random": os.urandom(len(DOWNLOAD_BODY)),
                        "flood": b"\0" * (4 << 20)}[plan["body"]]
                try:
                    self.send_response(plan["status"])
                    length = {None: None, "exact": str(len(body)), "short": "10",
                              "long": str(10 * len(body)), "huge": str(2**62), "neg": "-5",
                              "text": "many"}[plan["length"]]
                    if length is not None:
                        self.send_header("Content-Length", length)
                    if plan["range"] == "good":
                        self.send_header("Content-Range", f"bytes 0-{len(body) - 1}/*")
                    elif plan["range"] == "bad":
                        self.send_header("Content-Range", "bytes 999-")
                    if plan["location"]:
                        self.send_header("Location", plan["location"])
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"


@cache
def fuzz_server() -> _FuzzServer:
    return _FuzzServer()


def download_inputs() -> st.SearchStrategy[tuple[bytes, str]]:
    return st.builds(lambda plans: (json.dumps(plans).encode(), repr(plans)[:2000]),
                     st.lists(SERVER_OP, min_size=1, max_size=4))


def run_download(workdir: Path, case: Case) -> None:
    """The case's bytes are the server's plan (JSON, one answer per request); random bytes
    make the server answer 404. Variant 1 plants a ``.part`` symlink in the cache first."""
    import importlib

    download = importlib.import_module("clearconv.data.download")
    keys = {"status", "length", "body", "range", "location"}
    try:
        plans = json.loads(case.data)
    except (ValueError, UnicodeDecodeError):
        plans = []
    server = fuzz_server()
    server.plan[:] = [p for p in plans if isinstance(p, dict) and set(p) == keys] \
        if isinstance(plans, list) else []
    root = workdir / "cache"
    root.mkdir(exist_ok=True)
    victim = workdir / "victim"
    victim.write_bytes(b"keep")
    if case.variant == 1:
        os.symlink(victim, root / "cifar-10-python.tar.gz.part")
    source = download.DatasetSource(
        mirrors=(server.url,), idx=False,
        files=(download.RemoteFile("cifar-10-python.tar.gz",
                                   "sha256:" + hashlib.sha256(DOWNLOAD_BODY).hexdigest(),
                                   len(DOWNLOAD_BODY) if case.variant != 2 else None),))
    saved, limit = dict(download.DATASETS), download.MAX_DOWNLOAD_BYTES
    download.DATASETS["cifar10"] = source
    download.MAX_DOWNLOAD_BYTES = 1 << 20
    try:
        try:
            download.download("cifar10", root=root, progress=False, timeout=5, retries=1,
                              backoff=0, deadline=20)
        finally:
            assert victim.read_bytes() == b"keep", "a planted .part symlink was followed"
        assert (root / "cifar-10-python.tar.gz").read_bytes() == DOWNLOAD_BODY
    finally:
        download.DATASETS.clear()
        download.DATASETS.update(saved)
        download.MAX_DOWNLOAD_BYTES = limit
        server.plan.clear()


TARGETS.update({t.name: t for t in (
    Target("archive", "clearconv.data.load_cifar10(archive.tar.gz, 'test')", (DatasetError,),
           archive_inputs, run_archive),
    Target("checkpoint", "fit(resume=True) / clearconv train --resume options",
           (ClearConvError,), checkpoint_inputs, run_checkpoint, variants=2),
    Target("download", "clearconv.data.download(...) from a local HTTP server",
           (DatasetError,), download_inputs, run_download, variants=3, trace_memory=False),
)})


def fuzzer(target: Target, examples: int, on_outcome: Callable[[Case, Outcome], None],
           derandomize: bool = True, deadline_ms: int | None = DEADLINE_MS,
           trace_memory: bool = True, seed: int | None = None) -> Callable[[], None]:
    """A Hypothesis test running ``examples`` inputs through ``target``; each outcome goes
    to ``on_outcome`` (which raises to fail the run, or records and returns). ``seed``
    fixes Hypothesis's random seed of a non-derandomised run."""
    workdir = Path(tempfile.mkdtemp(prefix=f"clearconv-fuzz-{target.name}-"))

    @settings(max_examples=examples, deadline=deadline_ms, derandomize=derandomize,
              database=None, suppress_health_check=list(HealthCheck), print_blob=True)
    @given(case=target.cases())
    def fuzz(case: Case) -> None:
        on_outcome(case, run_case(target, case, workdir, trace_memory))

    if seed is not None:
        fuzz = hypothesis.seed(seed)(fuzz)

    def run() -> None:
        try:
            fuzz()
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
    return run


def save_crash(folder: Path, target: Target, case: Case, outcome: Outcome) -> Path:
    """Write the input (and, beside it, a ``.txt`` with the failure) under folder/target."""
    out = folder / target.name
    out.mkdir(parents=True, exist_ok=True)
    kind = outcome.detail.split(" ", 1)[0].strip(":")
    stem = f"{kind}-{hashlib.sha1(case.data).hexdigest()[:12]}"
    path = out / (stem + ".bin")
    path.write_bytes(case.data)
    (out / (stem + ".txt")).write_text(f"{outcome.detail}\nvariant {case.variant}\n"
                                       f"recipe {case.recipe}\n\n{outcome.traceback}")
    return path


def _skip_without_pillow(target: Target) -> None:
    if target.needs_pillow and Image is None:
        pytest.skip("Pillow is not installed")


# =========================================================================== the short run

@pytest.mark.parametrize("name", list(TARGETS))
def test_fuzz(name: str, tmp_path: Path) -> None:
    """CLEARCONV_FUZZ_EXAMPLES inputs per target: success or a documented error only."""
    target = TARGETS[name]
    _skip_without_pillow(target)

    def check(case: Case, outcome: Outcome) -> None:
        if outcome.failed:
            saved = save_crash(tmp_path / "crashes", target, case, outcome)
            raise AssertionError(f"{target.call}: {outcome.detail} (input saved to {saved})\n"
                                 f"{outcome.traceback}")

    fuzzer(target, FUZZ_EXAMPLES, check)()


def test_seeds_load() -> None:
    """The unmutated seeds are valid: the fuzzers start from files the loaders accept."""
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for name, data in [("model", model_seed()), ("arrays", model_seed()),
                           ("cifar", cifar_seed())] + [("idx", s) for s in idx_seeds()]:
            for variant in range(TARGETS[name].variants):
                outcome = run_case(TARGETS[name], Case(data, variant), work)
                assert outcome.kind == "success", (name, outcome)
        gz = gzip.compress(idx_seeds()[0])
        assert run_case(TARGETS["idx"], Case(gz), work).kind == "success"
        if Image is not None:
            for fmt, data in image_seeds():
                for name in ("image", "folder"):
                    for variant in range(TARGETS[name].variants):
                        outcome = run_case(TARGETS[name], Case(data, variant), work)
                        assert outcome.kind in ("success", "documented"), (fmt, name, outcome)
                        # without a size, the images of a folder must agree in size: the
                        # last seed, EXIF-rotated, is 6x5 upright where seed.png is 5x6
                        sized = FOLDER_VARIANTS[variant][1] is not None
                        if name == "image" or sized or data != image_seeds()[-1][1]:
                            assert outcome.kind == "success", (fmt, name, variant, outcome)


# =========================================================================== the corpus

def corpus_files() -> list[Path]:
    if not CORPUS.is_dir():
        return []
    return sorted(p for p in CORPUS.glob("*/*") if p.is_file() and p.parent.name in TARGETS
                  and not p.name.startswith("."))


@pytest.mark.parametrize("path", corpus_files(), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_corpus_input(path: Path) -> None:
    """Each input that once crashed a loader now ends in success or a documented error,
    in every call variant."""
    target = TARGETS[path.parent.name]
    _skip_without_pillow(target)
    data = path.read_bytes()
    for variant in range(target.variants):
        outcome = run_case(target, Case(data, variant, f"corpus {path.name}"))
        assert not outcome.failed, f"{path} (variant {variant}): {outcome.detail}\n" \
                                   f"{outcome.traceback}"


def test_corpus_is_not_empty() -> None:
    assert corpus_files(), f"no inputs under {CORPUS}"


# =========================================================================== explicit attacks

MARKER_COMMAND = "touch {marker}"


class SystemGadget:
    """Unpickling this runs ``os.system("touch <marker>")``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return os.system, (MARKER_COMMAND.format(marker=shlex.quote(str(self.marker))),)


class ExecGadget:
    """Unpickling this runs ``builtins.exec("open(<marker>, 'w').close()")``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return builtins.exec, (f"open({str(self.marker)!r}, 'w').close()",)


def _object_npy(value: Any) -> bytes:
    array = np.empty(1, dtype=object)
    array[0] = value
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=True)
    return buf.getvalue()


def _model_with(extra: dict[str, bytes], replace: dict[str, bytes] | None = None) -> bytes:
    members = [(n, (replace or {}).get(n, b)) for n, b in zip_members(model_seed())]
    return make_zip(members + list(extra.items()))


@pytest.mark.parametrize("gadget", [SystemGadget, ExecGadget])
@pytest.mark.parametrize("where", ["extra member", "__config__", "whole file",
                                   "config object dtype"])
def test_model_file_pickle_bomb_is_refused(tmp_path: Path, gadget: type, where: str) -> None:
    marker = tmp_path / "pwned"
    bomb = gadget(marker)
    if where == "extra member":
        data = _model_with({"evil.npy": _object_npy(bomb)})
    elif where == "__config__":
        data = _model_with({}, {"__config__.npy": _object_npy({"model": bomb})})
    elif where == "whole file":
        data = pickle.dumps(bomb)
    else:
        header = npy_header("|O", False, (1,))
        data = _model_with({}, {"__config__.npy": make_npy(header, pickle.dumps([bomb]))})
    path = tmp_path / "model.npz"
    path.write_bytes(data)
    for loader in (clearconv.load, ccio.load_arrays):
        with pytest.raises(ModelFileError):
            loader(str(path))
    assert not marker.exists(), "the pickle in the model file ran code"


@pytest.mark.parametrize("gadget", [SystemGadget, ExecGadget])
@pytest.mark.parametrize("protocol", [0, 2, 4])
def test_cifar_batch_pickle_bomb_is_refused(tmp_path: Path, gadget: type, protocol: int) -> None:
    marker = tmp_path / "pwned"
    batch = cifar_batch()
    batch[b"data"] = gadget(marker)
    path = tmp_path / "data_batch_1"
    path.write_bytes(pickle.dumps(batch, protocol=protocol))
    with pytest.raises(DatasetError, match="refusing"):
        read_cifar_batch(path)
    with pytest.raises(DatasetError, match="refusing"):
        read_cifar_batch(io.BytesIO(path.read_bytes()))
    assert not marker.exists(), "the pickle in the CIFAR batch ran code"


@pytest.mark.parametrize("flags", [0x01, 0x08, 0x3F])
def test_cifar_dtype_state_cannot_mark_data_as_objects(flags: int) -> None:
    """BUILD on a dtype can set its flags: a uint8 dtype flagged as holding objects must
    not come back from the reader (NumPy then treats the bytes as object pointers)."""
    batch = cifar_batch()
    state = (3, "|", None, None, None, -1, -1, flags)
    batch[b"data"] = _Reduce(np.dtype, ("u1", False, True), state)
    payload = pickle.dumps(batch, protocol=2)
    # the data array's own dtype rebuilt with the flags: edit the plain dtype state
    good = pickle.dumps(cifar_batch(), protocol=2)
    flagged = good.replace(b"J\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00t",
                           b"J\xff\xff\xff\xffJ\xff\xff\xff\xffK" + bytes([flags]) + b"t")
    assert flagged != good
    for data in (payload, flagged):
        outcome = run_case(TARGETS["cifar"], Case(data, 1))
        assert not outcome.failed, outcome
        if outcome.kind == "success":
            images, _ = read_cifar_batch(io.BytesIO(data))
            assert not images.dtype.hasobject and images.dtype.flags == np.dtype(np.uint8).flags


def _peak_traced(func: Callable[[], Any]) -> tuple[int, BaseException | None]:
    """Peak bytes traced by tracemalloc while ``func`` runs and the exception it raised
    (a refusal "at once" is checked by what it allocates, never by the clock)."""
    started = not tracemalloc.is_tracing()
    if started:
        tracemalloc.start()
    tracemalloc.reset_peak()
    base = tracemalloc.get_traced_memory()[0]
    error = None
    try:
        func()
    except Exception as exc:  # noqa: BLE001 - returned for the caller to check
        error = exc
    peak = tracemalloc.get_traced_memory()[1] - base
    if started:
        tracemalloc.stop()
    return peak, error


@pytest.mark.parametrize("compress", [False, True])
@pytest.mark.parametrize("dims", [(10**4, 10**4, 10**4), (10**6, 10**6), (2**20, 2**10)])
def test_idx_header_claiming_huge_size_is_refused_before_allocation(
        tmp_path: Path, dims: tuple[int, ...], compress: bool) -> None:
    """10^12 elements (and 2^30 elements, which could be allocated) are refused at once."""
    raw = bytes([0, 0, 8, len(dims)]) + struct.pack(f">{len(dims)}I", *dims) + b"\x00" * 64
    path = tmp_path / "huge.idx"
    path.write_bytes(gzip.compress(raw) if compress else raw)
    peak, error = _peak_traced(lambda: read_idx(path))
    assert isinstance(error, DatasetError), error
    assert "announces" in str(error) or "absurd" in str(error)
    assert peak < 4 << 20, f"{peak} bytes allocated before refusing"


@pytest.mark.parametrize("shape", [(10**12,), (10**6, 10**6), (2**30,), (2**62, 4)])
@pytest.mark.parametrize("member", ["0.weight.npy", "__config__.npy", "extra.npy"])
@pytest.mark.parametrize("deflate", [False, True])
def test_model_member_claiming_huge_shape_is_refused_before_allocation(
        tmp_path: Path, shape: tuple[int, ...], member: str, deflate: bool) -> None:
    """A ``.npy`` header in a model file that claims a huge array (the data are a few
    bytes, or a deflate "bomb" of zeros) is refused without allocating it."""
    zeros = b"\x00" * (4 << 20) if deflate else b"\x00" * 64
    header = npy_header("|u1" if member.startswith("__config__") else "<f4", False, shape)
    members = dict(zip_members(model_seed()))
    members[member] = make_npy(header, zeros)
    names = list(members)
    data = make_zip([(n, members[n]) for n in names],
                    frozenset({names.index(member)}) if deflate else frozenset())
    path = tmp_path / "bomb.npz"
    path.write_bytes(data)
    for loader in (clearconv.load, ccio.load_arrays):
        peak, error = _peak_traced(lambda loader=loader: loader(str(path)))
        assert isinstance(error, ModelFileError), error
        assert peak < 16 << 20, f"{peak / 2**20:.0f} MiB allocated before refusing"


@pytest.mark.parametrize("field, value", [
    ("in_features", 10**6), ("out_features", 10**5), ("in_channels", 10**5),
    ("kernel_size", [3000, 3000]), ("dtype", "V1000000000"), ("dtype", "object"),
])
def test_model_config_claiming_huge_layers_is_refused_before_allocation(
        tmp_path: Path, field: str, value: Any) -> None:
    """The architecture in a model file builds fresh weights before the saved ones are
    copied in: a config announcing huge layers must be refused without building them."""
    members = dict(zip_members(model_seed()))
    parts = split_npy(members["__config__.npy"])
    assert parts is not None
    config = json.loads(parts[1])
    if field == "dtype":
        config["model"]["dtype"] = value
    else:
        for spec in config["model"]["layers"]:
            if field in spec["config"]:
                spec["config"][field] = value
    members["__config__.npy"] = npy_array(np.frombuffer(json.dumps(config).encode(), np.uint8))
    path = tmp_path / "huge-config.npz"
    path.write_bytes(make_zip(list(members.items())))
    peak, error = _peak_traced(lambda: clearconv.load(str(path)))
    assert isinstance(error, ModelFileError), error
    assert peak < 16 << 20, f"{peak / 2**20:.0f} MiB allocated before refusing"


def test_model_config_nested_too_deep_is_refused(tmp_path: Path) -> None:
    members = dict(zip_members(model_seed()))
    for text in ("[" * 100000 + "]" * 100000, '{"model": ' + "[" * 990 + "]" * 990 + "}"):
        members["__config__.npy"] = npy_array(np.frombuffer(text.encode(), np.uint8))
        path = tmp_path / "deep.npz"
        path.write_bytes(make_zip(list(members.items())))
        with pytest.raises(ModelFileError):
            clearconv.load(str(path))


@pytest.mark.skipif(Image is None, reason="Pillow is not installed")
@pytest.mark.parametrize("side", [30000, 65535, 2**31 - 1])
def test_image_header_claiming_huge_size_is_refused(tmp_path: Path, side: int) -> None:
    """A PNG header that announces side x side pixels, with almost no data behind it."""
    png = _set_dims("png", image_seeds()[1][1], side, side)
    path = tmp_path / "huge.png"
    path.write_bytes(png)
    peak, error = _peak_traced(lambda: ccimages.load_image(str(path)))
    assert isinstance(error, ccimages.ImageFileError), error
    # refused from the header, before a pixel buffer exists (Pillow's decompression-bomb
    # check names the announced size)
    assert f"Image size ({side * side} pixels) exceeds limit" in str(error)
    assert peak < 16 << 20, f"{peak / 2**20:.0f} MiB allocated before refusing"
    root = tmp_path / "folder"
    (root / "a").mkdir(parents=True)
    (root / "a" / "huge.png").write_bytes(png)
    with pytest.raises(DatasetError):
        load_image_folder(root)


@pytest.mark.skipif(Image is None, reason="Pillow is not installed")
def test_broken_image_error_is_a_clear_clearconv_error(tmp_path: Path) -> None:
    path = tmp_path / "broken.png"
    path.write_bytes(image_seeds()[1][1][:40])
    with pytest.raises(ccimages.ImageFileError, match="broken.png"):
        ccimages.load_image(str(path))
    assert issubclass(ccimages.ImageFileError, ClearConvError)
    with pytest.raises(FileNotFoundError):
        ccimages.load_image(str(tmp_path / "missing.png"))
