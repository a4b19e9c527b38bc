"""Data-parallel training on MPI: N processes train one model as one process would.

Launch the command line under ``mpiexec`` (``mpiexec -n 4 clearconv train ...``), or pass
``distributed=`` to :meth:`~clearconv.Sequential.fit` in your own script and launch that
with ``mpiexec -n 4 python -m mpi4py script.py``::

    from mpi4py import MPI
    from clearconv.train.distributed import DataParallel

    model.fit(x, y, batch_size=64, epochs=5, seed=0,
              distributed=DataParallel(MPI.COMM_WORLD))

Every rank loads the whole training set (the same arrays) and builds the same model; the
recipe is Horovod's (Sergeev and Del Balso, 2018):

1. **Start equal.** After the callbacks' ``on_train_begin`` (where
   :class:`~clearconv.train.callbacks.BackupAndRestore` may restore a checkpoint), rank 0's
   weights, optimizer state, position, history and callback states are broadcast to all.
2. **Same order, own shard.** Every rank draws the epoch's permutation from the same
   generator state, so all hold the same order. The *global batch* of step ``s`` is
   ``order[s*B:(s+1)*B]`` with ``B = batch_size * ranks`` (``batch_size`` is per rank, as
   in Horovod and PyTorch's DDP); rank ``r`` takes the ``r``-th of ``ranks`` contiguous
   pieces (``np.array_split``: their sizes differ by at most one). Every sample is trained
   on exactly once per epoch; the last, smaller batch is split the same way, and a rank
   may get no sample of it (it then contributes a zero gradient).
3. **Average the gradients.** Each rank computes the mean-loss gradient of its piece
   (``n_r`` samples), weights it by ``n_r / n`` (``n`` the global batch) and packs it
   into one flat buffer, after which come the step's loss sum, correct count, sample
   count and, per rank, a NaN/Inf flag and a Ctrl-C flag; one in-place ``Allreduce``
   sums the buffers of all ranks. The result is the gradient of the mean loss over the
   global batch: N ranks at batch b compute what one process computes at batch N*b, up
   to the order of the sum. (A loss with ``reduction='sum'`` is weighted by 1: the
   pieces' sums add up to the global batch's. A class-weighted cross-entropy's mean is
   taken per piece, then weighted by the piece sizes.)
4. **The same update everywhere.** Every rank runs the optimizer on the same gradient, so
   the weights stay equal; a checksum compared after every epoch proves it (should an
   MPI library's reduction differ between ranks in the last bit, rank 0's state is
   broadcast again and a warning says so).

Randomness. *Augmentation* is drawn for the whole global batch from (seed, epoch, step),
as in one process, and each rank keeps its rows: a sample gets the same augmentation
whatever the number of ranks, which is what keeps N ranks equal to one process with
augmentation on (each rank augments the global batch; cheap next to a step). *Dropout*
masks are drawn per (seed, epoch, step, rank, layer): each rank's samples get their own.

Batch norm. By default each rank normalises its piece with the piece's own statistics and
keeps its own running statistics (rank 0's are saved), as PyTorch's DDP does.
``DataParallel(comm, sync_batch_norm=True)`` normalises with the statistics of the whole
global batch instead (PyTorch's ``SyncBatchNorm``): per layer and step, one ``Allreduce``
of each piece's count, sum and sum of squares (shifted by the running mean, the same on
every rank) in the forward and one of the two gradient sums, weighted by the piece's size,
in the backward; with it N ranks at batch b train as one process at batch N*b, running
statistics included. A rank with no sample of a short last batch still takes part, with
zeros.

Metrics and output. The loss and accuracy of every step and the evaluation on the
validation data (split between the ranks, then summed) are global; rank 0 alone prints
(one progress bar) and writes files. The epoch's logs hold ``allreduce_seconds``, the
time spent in the gradient ``Allreduce``.

Faults. Checkpoints are written by rank 0 only, atomically, after a barrier. A NaN/Inf on
any rank stops every rank at the same step with a :class:`~clearconv.errors.NumericalError`
naming the rank, the layer and the step. Ctrl-C on any rank stops all at the same step
(after saving, with a backup callback). An unexpected exception on one rank prints the
rank and the error and aborts the whole job (``MPI_Abort``) instead of leaving the others
waiting; ``mpiexec`` stops the job when a process is killed (``kill -9``).

Learning rate. The global batch grows with the ranks; ``lr_scaling="linear"`` multiplies
the learning rate by the number of ranks (Goyal et al., 2017), ramped up linearly from
the unscaled rate over ``warmup_epochs`` epochs. It is off by default: the optimizer's
rate is used as given. The factor applies around each optimizer step, on top of any
schedule.

Threads. Each rank splits its work between ``threads`` threads (default: the cores it may
run on, divided by the ranks on the same machine that share them) and the BLAS runs as
many for the run.

Resuming. With the same number of ranks a resumed run is bit-identical to an
uninterrupted one. With another number the run continues from the same sample of the
interrupted epoch; the global batch (and so the steps per epoch, the order of the
gradient sums and, with ``lr_scaling``, the learning rate) changes from there on.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import sys
import time
import traceback
import warnings
import zlib
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar

import numpy as np

from ..errors import ClearConvError, DistributedError, NumericalError
from ..kernels import threads

if TYPE_CHECKING:
    from ..layers.parameter import Parameter
    from .loop import Trainer
    from .sequential import Sequential

T = TypeVar("T")

#: environment variables by which MPI launchers announce the number of processes
#: (MPICH's and Intel MPI's hydra, Open MPI, PMIx, Slurm)
_SIZE_VARIABLES = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "PMIX_SIZE", "MPI_LOCALNRANKS")

LR_SCALINGS = (None, "linear")


def launched_by_mpi() -> bool:
    """True when this process is one of several started by an MPI launcher (mpiexec,
    mpirun, srun), judged by the launcher's environment variables."""
    for name in _SIZE_VARIABLES:
        try:
            if int(os.environ.get(name, "1")) > 1:
                return True
        except ValueError:
            continue
    return False


def mpi() -> Any:
    """mpi4py's ``MPI`` module, imported on first use; ClearConvError if it is missing."""
    try:
        from mpi4py import MPI
    except ImportError:
        raise ClearConvError("data-parallel training needs mpi4py and an MPI library: "
                             "pip install 'clearconv[mpi]'") from None
    return MPI


def piece(n: int, rank: int, size: int) -> slice:
    """Rank ``rank``'s contiguous piece of a global batch of ``n`` samples split between
    ``size`` ranks: ``np.array_split``'s pieces (the first ``n % size`` get one more)."""
    base, extra = divmod(n, size)
    start = rank * base + min(rank, extra)
    return slice(start, start + base + (rank < extra))


def linear_scaling(global_step: int, steps_per_epoch: int, size: int,
                   warmup_epochs: float) -> float:
    """The linear scaling rule's learning-rate factor: ``size``, reached linearly from 1
    over ``warmup_epochs`` epochs of ``steps_per_epoch`` steps (Goyal et al., 2017)."""
    ramp = warmup_epochs * steps_per_epoch
    progress = 1.0 if ramp <= 0 else min(1.0, global_step / ramp)
    return 1.0 + (size - 1) * progress


class StepTotals(NamedTuple):
    """What one step of training reports, summed over the ranks."""

    loss: float            # the mean loss over the global batch
    correct: int           # samples of the global batch classified right
    seen: int              # samples in the global batch
    problem: str | None    # what was NaN/Inf (and on which rank), None when all is finite
    interrupted: bool      # Ctrl-C was pressed on some rank


class SingleProcess:
    """The group of one process: what :class:`~clearconv.train.loop.Trainer` uses without
    ``distributed=``. Every method is the identity of its :class:`DataParallel` twin."""

    rank, size, root = 0, 1, True
    comm_seconds: float | None = None     # DataParallel: seconds in Allreduce this epoch

    def piece(self, n: int) -> slice:
        """This rank's contiguous piece of a global batch of ``n`` samples."""
        return slice(0, n)

    def reduce_step(self, model: Sequential, loss: float, correct: int, seen: int,
                    total: int, problem: str | None, interrupted: bool) -> StepTotals:
        """The step's totals; with several ranks, summed over them (see DataParallel)."""
        return StepTotals(loss, correct, seen, problem, interrupted)

    def evaluate(self, model: Sequential, x: np.ndarray, y: np.ndarray,
                 batch_size: int) -> dict[str, float]:
        return model.evaluate(x, y, batch_size=batch_size)

    def lr_factor(self, global_step: int, steps_per_epoch: int) -> float:
        return 1.0

    def seed_dropouts(self, dropouts: dict[str, Any], seed: int, epoch: int,
                      step: int) -> None:
        """Dropout keeps its own generators in one process (saved in checkpoints)."""

    @contextlib.contextmanager
    def running(self, trainer: Trainer) -> Iterator[None]:
        yield

    def begin(self, trainer: Trainer) -> None:
        pass

    def end_epoch(self, trainer: Trainer) -> None:
        pass

    def barrier(self) -> None:
        pass

    def interrupted(self, local: bool) -> bool:
        """Whether to stop for Ctrl-C now: this process's flag."""
        return local

    def together(self, fn: Callable[[], T]) -> T:
        return fn()


class DataParallel(SingleProcess):
    """Train on every process of an MPI communicator as one (see the module docstring).

    Parameters
    ----------
    comm : an mpi4py communicator; default ``MPI.COMM_WORLD``
    lr_scaling : None (the default: the optimizer's learning rate as given) or
        ``"linear"``: multiplied by the number of ranks
    warmup_epochs : with ``lr_scaling``, reach the scaled rate linearly over this many
        epochs (fractions allowed), starting from the unscaled one
    threads : threads per rank; default: ``CLEARCONV_NUM_THREADS`` if set, else the cores
        this process may run on divided by the ranks of this machine sharing them (at
        least 1)
    sync_batch_norm : batch norm in training mode normalises with the statistics of the
        whole global batch (PyTorch's ``SyncBatchNorm``): per layer, one ``Allreduce`` of
        the count, sum and sum of squares of each rank's piece per forward and one of the
        two gradient sums per backward, each weighted by the piece's size, so that N
        ranks at batch b train as one process at batch N*b. Off by default: each rank
        then normalises its piece with its own statistics and keeps its own running
        statistics (rank 0's are the ones saved), as PyTorch's DDP without SyncBatchNorm
    """

    def __init__(self, comm: Any = None, *, lr_scaling: str | None = None,
                 warmup_epochs: float = 0.0, threads: int | None = None,
                 sync_batch_norm: bool = False) -> None:
        if lr_scaling not in LR_SCALINGS:
            raise ClearConvError(f"lr_scaling must be one of {LR_SCALINGS}, got {lr_scaling!r}")
        warmup_epochs = float(warmup_epochs)
        if not warmup_epochs >= 0.0:
            raise ClearConvError(f"warmup_epochs must be >= 0, got {warmup_epochs}")
        if threads is not None and (isinstance(threads, bool) or int(threads) < 1):
            raise ClearConvError(f"threads must be an int >= 1, got {threads!r}")
        self.MPI = mpi()
        self.comm = self.MPI.COMM_WORLD if comm is None else comm
        self.rank, self.size = self.comm.Get_rank(), self.comm.Get_size()
        self.root = self.rank == 0
        self.lr_scaling, self.warmup_epochs = lr_scaling, warmup_epochs
        self.threads = None if threads is None else int(threads)
        self._buffer: np.ndarray | None = None
        self._interrupt_agreed = False
        self.comm_seconds = 0.0          # in the gradient Allreduce, this epoch
        self.steps_reduced = 0           # steps reduced this epoch
        self.sync_batch_norm = bool(sync_batch_norm)
        self._sync = _StatsSync(self.comm, self.MPI) if self.sync_batch_norm else None

    def __repr__(self) -> str:
        return (f"DataParallel(rank {self.rank} of {self.size}, lr_scaling="
                f"{self.lr_scaling!r}, warmup_epochs={self.warmup_epochs}, "
                f"sync_batch_norm={self.sync_batch_norm})")

    # ------------------------------------------------------------------ sharding
    def piece(self, n: int) -> slice:
        return piece(n, self.rank, self.size)

    # ------------------------------------------------------------------ one step
    def reduce_step(self, model: Sequential, loss: float, correct: int, seen: int,
                    total: int, problem: str | None, interrupted: bool) -> StepTotals:
        """Sum the weighted gradients and the step's totals over the ranks, in one
        in-place Allreduce of one flat buffer; every parameter's ``.grad`` then holds the
        mean-loss gradient of the global batch of ``total`` samples (this rank's piece
        had ``seen``)."""
        if self._sync is not None:
            self._sync.step_done(model)
        params = model.parameters()
        buf = self._step_buffer(params)
        size = len(buf) - 3 - 2 * self.size
        # a mean loss: the global batch's mean is the pieces' means weighted by their
        # sizes; a summed one ('sum'): the pieces' sums add up
        weight = seen / total if model.loss_fn.reduction == "mean" else 1.0
        offset = 0
        for p in params:
            k = p.grad.size
            np.multiply(p.grad.reshape(-1), weight, out=buf[offset:offset + k])
            offset += k
        tail = buf[size:]
        tail[:] = 0.0
        tail[0], tail[1], tail[2] = (loss * seen if seen else 0.0), correct, seen
        tail[3 + 2 * self.rank] = problem is not None
        tail[4 + 2 * self.rank] = interrupted
        t0 = time.perf_counter()
        self.comm.Allreduce(self.MPI.IN_PLACE, buf, op=self.MPI.SUM)
        self.comm_seconds += time.perf_counter() - t0
        self.steps_reduced += 1
        offset = 0
        for p in params:
            k = p.grad.size
            p.grad[...] = buf[offset:offset + k].reshape(p.grad.shape)
            offset += k
        flags = tail[3:].reshape(self.size, 2)
        failed = np.flatnonzero(flags[:, 0]).tolist()
        message = None
        if failed:
            first = failed[0]
            text = self.comm.bcast(problem if self.rank == first else None, root=first)
            message = f"on rank {first} of {self.size}, {text}"
        elif not np.isfinite(buf[:size]).all():
            message = "the gradient summed over the ranks overflowed to Inf"
        self._interrupt_agreed = bool(flags[:, 1].any())
        return StepTotals(float(tail[0]) / total, int(round(float(tail[1]))), total, message,
                          self._interrupt_agreed)

    def _step_buffer(self, params: list[Parameter]) -> np.ndarray:
        """One flat buffer for every gradient and the tail, allocated once per run."""
        n = sum(p.grad.size for p in params) + 3 + 2 * self.size
        dtype = params[0].grad.dtype if params else np.dtype(np.float64)
        if self._buffer is None or self._buffer.size != n or self._buffer.dtype != dtype:
            self._buffer = np.zeros(n, dtype)
        return self._buffer

    def lr_factor(self, global_step: int, steps_per_epoch: int) -> float:
        """The learning-rate multiplier at ``global_step`` (1 without ``lr_scaling``)."""
        if self.lr_scaling is None:
            return 1.0
        return linear_scaling(global_step, steps_per_epoch, self.size, self.warmup_epochs)

    def seed_dropouts(self, dropouts: dict[str, Any], seed: int, epoch: int,
                      step: int) -> None:
        """A generator per (seed, epoch, step, rank, layer) for every dropout layer."""
        for key, layer in dropouts.items():
            layer.rng = np.random.default_rng(
                [seed, epoch, step, self.rank, zlib.crc32(key.encode())])

    # ------------------------------------------------------------------ evaluation
    def evaluate(self, model: Sequential, x: np.ndarray, y: np.ndarray,
                 batch_size: int) -> dict[str, float]:
        """Loss and accuracy over (x, y): each rank evaluates its piece, the sums are
        added up over the ranks."""
        part = self.piece(len(x))
        sums = np.zeros(3)
        if part.stop > part.start:
            n = part.stop - part.start
            result = model.evaluate(x[part], y[part], batch_size=batch_size)
            sums[:] = result["loss"] * n, round(result.get("accuracy", 0.0) * n), n
        self.comm.Allreduce(self.MPI.IN_PLACE, sums, op=self.MPI.SUM)
        if not model.loss_fn.reports_accuracy(tuple(model.build(x.shape[1:])[-1])):
            return {"loss": sums[0] / sums[2]}
        return {"loss": sums[0] / sums[2], "accuracy": sums[1] / sums[2]}

    # ------------------------------------------------------------------ the run
    @contextlib.contextmanager
    def running(self, trainer: Trainer) -> Iterator[None]:
        """The run's threads, and the abort on an error raised on this rank alone."""
        if self.threads is not None:
            n = self.threads
        elif os.environ.get("CLEARCONV_NUM_THREADS", "").strip():
            n = threads.get_num_threads()           # the user's choice, per process
        else:
            n = self._default_threads()
        previous = threads.get_num_threads()
        threads.set_num_threads(n)
        norms = [la for layer in trainer.model.layers for la in layer.walk()
                 if hasattr(la, "synced_idle_step")] if self._sync is not None else []
        for layer in norms:
            layer.sync = self._sync
        try:
            with _blas_limited(n), self.abort_on_error():
                yield
        finally:
            threads.set_num_threads(previous)
            for layer in norms:
                layer.sync = None

    @contextlib.contextmanager
    def abort_on_error(self) -> Iterator[None]:
        """Errors every rank raises together (NaN/Inf, Ctrl-C, a check that failed on
        some rank) propagate; any other error is printed with the rank and aborts the
        job, since the other ranks would otherwise wait for this one forever."""
        try:
            yield
        except (NumericalError, DistributedError, KeyboardInterrupt):
            raise
        except BaseException as e:  # noqa: BLE001 - every other error ends the job
            self.abort(e)

    def abort(self, error: BaseException) -> None:
        """Print ``error`` with this rank's number and abort every process of the job."""
        sys.stderr.write(f"clearconv: rank {self.rank} of {self.size} failed: "
                         f"{type(error).__name__}: {error}\n")
        if not isinstance(error, ClearConvError):
            traceback.print_exception(error, file=sys.stderr)
        sys.stderr.write(f"clearconv: aborting all {self.size} processes\n")
        sys.stderr.flush()
        self.comm.Abort(1)

    def _default_threads(self) -> int:
        """The cores this process may run on, shared with the ranks of this machine whose
        cores overlap them."""
        mine = _cores()
        node = self.comm.Split_type(self.MPI.COMM_TYPE_SHARED)
        try:
            everyone = node.allgather(sorted(mine))
        finally:
            node.Free()
        sharing = sum(1 for cores in everyone if mine & set(cores))
        return max(1, len(mine) // max(sharing, 1))

    def together(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` on every rank; if it raised a ClearConvError on any, raise a
        DistributedError naming each failed rank and its error on all of them."""
        result, error = None, None
        try:
            result = fn()
        except ClearConvError as e:
            error = f"{type(e).__name__}: {e}"
        errors = self.comm.allgather(error)
        failed = [(r, e) for r, e in enumerate(errors) if e is not None]
        if failed:
            raise DistributedError("; ".join(f"rank {r}: {e}" for r, e in failed))
        return result  # type: ignore[return-value]

    def begin(self, trainer: Trainer) -> None:
        """Check that every rank holds the same run, then give all rank 0's state."""
        self._check_same_run(trainer)
        if self.root:
            trainer.state.extra.setdefault("dropout_seed", trainer.seed if trainer.seed
                                           is not None else secrets.randbits(63))
        snapshot = self.comm.bcast(trainer.snapshot() if self.root else None, root=0)
        if not self.root:
            self.together(lambda: trainer.adopt(snapshot))
        else:
            self.together(lambda: None)
        self._interrupt_agreed = False

    def _check_same_run(self, trainer: Trainer) -> None:
        """DistributedError unless every rank has the same model, data and settings."""
        model = trainer.model
        mine = {
            "model": zlib.crc32(repr(model.get_config()).encode()),
            "samples": len(trainer.x), "sample shape": tuple(trainer.x.shape[1:]),
            "images": _checksum(trainer.x), "labels": _checksum(trainer.y),
            "batch_size": trainer.batch_size, "epochs": trainer.epochs,
            "seed": trainer.seed, "dtype": str(model.dtype),
        }
        everyone = self.comm.allgather(mine)   # the same list on every rank: all raise alike
        first = everyone[0]
        for r, theirs in enumerate(everyone):
            diff = [f"{k} {theirs[k]!r} there, {first[k]!r} on rank 0" for k in mine
                    if theirs[k] != first[k]]
            if diff:
                raise DistributedError(
                    f"rank {r} runs another training than rank 0 ({'; '.join(diff)}; "
                    f"'model', 'images' and 'labels' are checksums): every rank must load "
                    f"the same data and build the same model")

    def end_epoch(self, trainer: Trainer) -> None:
        """Compare the weights' checksums; should they differ, give all rank 0's state."""
        crcs = [_checksum(p.value) for p in trainer.model.parameters()]
        if len({tuple(c) for c in self.comm.allgather(crcs)}) > 1:
            if self.root:
                warnings.warn("the ranks' weights differed after an epoch (the MPI library's "
                              "reduction is not the same on every rank); rank 0's were "
                              "broadcast to all", RuntimeWarning, stacklevel=2)
            snapshot = self.comm.bcast(trainer.snapshot() if self.root else None, root=0)
            if not self.root:
                trainer.adopt(snapshot)
        self.comm_seconds, self.steps_reduced = 0.0, 0

    def barrier(self) -> None:
        self.comm.Barrier()

    def interrupted(self, local: bool) -> bool:
        """Whether some rank pressed Ctrl-C, as agreed at the last step (all ranks stop
        at the same step; ``local`` is sent with the next one)."""
        return self._interrupt_agreed


class _StatsSync:
    """The reductions of synchronised batch norm: what each BN layer's ``sync`` is.

    Each call is one in-place ``Allreduce`` (sum) of a float64 buffer. The calls a step
    makes are recorded, so that a rank that makes fewer can make the rest with zeros
    (:meth:`step_done`)."""

    def __init__(self, comm: Any, mpi_module: Any) -> None:
        self.comm, self.MPI = comm, mpi_module
        self.calls: list[int] = []            # buffer sizes of this step's reductions
        self.last: list[int] = []             # ... of the last complete step
        self.seconds = 0.0

    def _sum(self, buf: np.ndarray) -> np.ndarray:
        self.calls.append(buf.size)
        t0 = time.perf_counter()
        self.comm.Allreduce(self.MPI.IN_PLACE, buf, op=self.MPI.SUM)
        self.seconds += time.perf_counter() - t0
        return buf

    def forward_sums(self, count: int, s1: np.ndarray, s2: np.ndarray
                     ) -> tuple[float, np.ndarray, np.ndarray]:
        """(M, S1, S2) summed over the ranks."""
        c = s1.size
        buf = self._sum(np.concatenate([[float(count)], s1, s2]).astype(np.float64))
        return float(buf[0]), buf[1:1 + c], buf[1 + c:]

    def backward_sums(self, g1: np.ndarray, g2: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The two (already weighted) gradient sums, summed over the ranks."""
        c = g1.size
        buf = self._sum(np.concatenate([g1, g2]).astype(np.float64))
        return buf[:c], buf[c:]

    def step_done(self, model: Sequential) -> None:
        """The end of a step's reductions: a rank whose step made fewer than the others
        (no sample of a short last batch: none; a NaN loss: no backward) sends zeros into
        the rest, in order (the last step's record, or before any, the layers' order)."""
        expected = self.last or _reduction_sizes(model)
        if not self.calls:          # no sample: every layer's forward reduction, with zeros
            for layer in _batch_norms(model):
                layer.synced_idle_step()
        for size in expected[len(self.calls):]:
            self._sum(np.zeros(size))
        self.last, self.calls = self.calls, []


def _batch_norms(model: Sequential) -> list[Any]:
    from ..layers.normalization import _BatchNorm

    return [la for layer in model.layers for la in layer.walk() if isinstance(la, _BatchNorm)
            and (la.training or not la.track_running_stats)]


def _reduction_sizes(model: Sequential) -> list[int]:
    """The buffer sizes of a training step's batch-norm reductions, in order: one
    (1 + 2C) per layer in forward order (blocks: branch by branch), then one 2C per layer
    in backward order (reversed, each block's branches in turn)."""
    from ..layers.normalization import _BatchNorm

    def backward(chain: list[Any]) -> list[int]:
        out: list[int] = []
        for layer in reversed(chain):
            if isinstance(layer, _BatchNorm) and (layer.training or
                                                  not layer.track_running_stats):
                out.append(2 * layer.num_features)
            branches = getattr(layer, "branches", None)
            if branches is not None:
                for inner in branches().values():
                    out += backward(inner)
        return out

    forward = [1 + 2 * la.num_features for la in _batch_norms(model)]
    return forward + backward(list(model.layers))


def as_group(distributed: Any) -> SingleProcess:
    """What ``fit(distributed=...)`` accepts: None (one process), a
    :class:`DataParallel`, or an mpi4py communicator (wrapped in a DataParallel)."""
    if distributed is None:
        return SingleProcess()
    if isinstance(distributed, SingleProcess):
        return distributed
    if hasattr(distributed, "Allreduce") and hasattr(distributed, "Get_rank"):
        return DataParallel(distributed)
    raise ClearConvError(f"distributed must be None, a DataParallel or an mpi4py "
                         f"communicator, got {type(distributed).__name__}")


def _checksum(a: np.ndarray) -> int:
    """CRC-32 of an array's bytes (a 60,000-image MNIST in float32: about 0.1 s)."""
    return zlib.crc32(np.ascontiguousarray(a).view(np.uint8))


def _cores() -> set[int]:
    try:
        return set(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not on Linux
        return set(range(os.cpu_count() or 1))


@contextlib.contextmanager
def _blas_limited(n: int) -> Iterator[None]:
    """The BLAS at ``n`` threads while the run lasts (threadpoolctl), so that ranks
    sharing a machine do not oversubscribe its cores."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - threadpoolctl is a dependency
        yield
        return
    with threadpool_limits(limits=n, user_api="blas"):
        yield


__all__ = ["DataParallel", "SingleProcess", "StepTotals", "as_group", "launched_by_mpi",
           "linear_scaling", "mpi", "piece"]
