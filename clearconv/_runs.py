"""What ``clearconv train`` checks so that no run is lost or mixed (used by the CLI).

* :func:`check_output_file` / :func:`check_output_folder`: every path a run writes is
  checked writable before any data loads or any training starts, and the message names
  the user's path (not a hidden temporary file).
* :class:`RunFolder`: a checkpoint folder belongs to one run. A lock (``.clearconv.lock``,
  an ``flock`` that the system releases when the process dies, ``kill -9`` included) is
  held while the run trains, so a second run in the same folder is refused; a new run in
  a folder that holds another run's checkpoint is refused unless ``--overwrite`` is
  given; the run's id is kept with the checkpoint; temporary files of a killed
  checkpoint write are removed once the lock is held.
* :func:`resume_conflicts`: the options given beside ``--resume`` that contradict the
  checkpoint.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import uuid
from typing import Any

from .errors import ClearConvError

#: the lock file of a checkpoint folder
LOCK_NAME = ".clearconv.lock"
#: free bytes a run's output folder needs at least (a model file is a few MB)
MIN_FREE_BYTES = 16 * 1024 * 1024
#: a temporary file of an atomic write older than this (seconds) is a killed write's
STALE_SECONDS = 3600.0


def new_run_id() -> str:
    """A fresh run id (32 hex digits), kept with the run's checkpoint."""
    return uuid.uuid4().hex


def _check_folder_writable(folder: str, shown: str) -> None:
    """A file can be made in ``folder`` (created if missing) and its disk is not full;
    else ClearConvError naming ``shown`` (the user's path)."""
    try:
        os.makedirs(folder, exist_ok=True)
    except FileExistsError:
        raise ClearConvError(f"cannot write {shown}: {folder} is a file, not a folder") \
            from None
    except OSError as exc:
        raise ClearConvError(f"cannot write {shown}: cannot create the folder {folder} "
                             f"({exc.strerror or exc})") from None
    try:
        fd, probe = tempfile.mkstemp(prefix=".clearconv-probe.", suffix=".tmp", dir=folder)
    except OSError as exc:
        raise ClearConvError(f"cannot write {shown}: {exc.strerror or exc} (in {folder})") \
            from None
    os.close(fd)
    with contextlib.suppress(OSError):
        os.unlink(probe)
    with contextlib.suppress(OSError):
        free = shutil.disk_usage(folder).free
        if free < MIN_FREE_BYTES:
            raise ClearConvError(f"cannot write {shown}: the disk holding {folder} has only "
                                 f"{free} bytes free")


def check_output_file(path: str | None, what: str) -> None:
    """Refuse, before the run starts, an output file that cannot be written: a folder in
    its place, a parent that cannot be made, a read-only folder, a full disk. Temporary
    files of a killed write of it (``.<name>.*.tmp``, older than :data:`STALE_SECONDS`)
    are removed."""
    if not path:
        return
    if os.path.isdir(path):
        raise ClearConvError(f"cannot write the {what} {path}: it is a folder (give a file "
                             "name)")
    if os.path.exists(path) and not os.access(path, os.W_OK):
        # os.replace would still succeed in a writable folder; keep the user's intent
        raise ClearConvError(f"cannot write the {what} {path}: the file is read-only")
    folder = os.path.dirname(os.path.abspath(path))
    _check_folder_writable(folder, f"the {what} {path}")
    from .io.files import remove_stale_temporaries

    # a killed write of this file left its temporary behind; one an hour old is no
    # other process's write in progress
    remove_stale_temporaries(path, older_than=STALE_SECONDS)


def check_output_folder(path: str | None, what: str) -> None:
    """Refuse, before the run starts, an output folder that cannot be made or written."""
    if not path:
        return
    if os.path.exists(path) and not os.path.isdir(path):
        raise ClearConvError(f"cannot write the {what} {path}: it is a file, not a folder")
    _check_folder_writable(os.path.abspath(path), f"the {what} {path}")


class RunFolder:
    """Hold a checkpoint folder for one run (see the module docstring).

    ``fresh``: a new run (refused if the folder holds a checkpoint, unless ``overwrite``);
    False: a resumed run. Use as a context manager; the lock is released at exit.
    """

    def __init__(self, directory: str, fresh: bool, overwrite: bool = False) -> None:
        self.directory = directory
        self.fresh = fresh
        self.overwrite = overwrite
        self._fd: int | None = None

    def __enter__(self) -> RunFolder:
        from .train.checkpoint import FILENAME, checkpoint_path

        check_output_folder(self.directory, "checkpoint folder")
        self._lock()
        try:
            ck = checkpoint_path(self.directory)
            if self.fresh and os.path.exists(ck) and not self.overwrite:
                raise ClearConvError(
                    f"{self.directory} already holds the checkpoint of another run: continue "
                    f"it with --resume {self.directory}, or start a new run there with "
                    f"--overwrite (its {FILENAME} is then replaced), or use another "
                    f"--checkpoint-dir")
            from .io.files import remove_stale_temporaries

            remove_stale_temporaries(ck)   # of a killed write: the lock is ours now
        except BaseException:
            self._unlock()
            raise
        return self

    def __exit__(self, *exc: Any) -> None:
        self._unlock()

    def _lock(self) -> None:
        path = os.path.join(self.directory, LOCK_NAME)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            import fcntl
        except ImportError:  # pragma: no cover - Windows: no flock; the lock is advisory
            self._fd = fd
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.read(fd, 64).decode("ascii", "replace").strip() or "another process"
            os.close(fd)
            raise ClearConvError(f"another training ({holder}) is using {self.directory} "
                                 "now: wait for it to end, or use another "
                                 "--checkpoint-dir") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()}".encode())
        self._fd = fd

    def _unlock(self) -> None:
        if self._fd is not None:
            os.close(self._fd)   # closing releases the flock
            self._fd = None


#: the ``clearconv train`` options whose value --resume may change: --epochs trains on
#: to that many epochs (for a recipe without a schedule); --out, --metrics and --quiet
#: concern only what is written and shown
SAFE_ON_RESUME = ("epochs",)


def resume_conflicts(given: dict[str, Any], saved: dict[str, Any]) -> list[str]:
    """``"--lr 0.5 (the checkpoint's run has 0.001)"`` for each option given beside
    --resume whose value differs from the saved run's."""
    return [f"--{name.replace('_', '-')} {value!r} (the checkpoint's run has "
            f"{saved.get(name)!r})" for name, value in given.items()
            if value != saved.get(name)]
