"""Sequential: a stack of layers with forward, backward, summary, fit / evaluate / predict.

PyTorch-style underneath (``parameters()``, ``zero_grad``/``step`` on an optimizer,
``train_step``) and Keras-style on top (``fit`` returning a :class:`History`,
``evaluate``, ``predict``, callbacks). The training loss is the model's ``loss_fn``
(:mod:`clearconv.train.losses`): softmax cross-entropy on the raw outputs (logits) and
integer labels unless ``fit(..., loss=...)`` names another, which the model then keeps
(and saves).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from ..errors import ClearConvError, ModelFileError, NumericalError, ShapeError
from ..functional import softmax_forward
from ..io import files as io
from ..kernels.allocator import tune_allocator
from ..kernels.threads import region
from ..layers import Layer
from ..layers.base import weight_budget
from ..layers.parameter import Parameter
from . import fusion
from .callbacks import BackupAndRestore, Callback
from .loop import History, Trainer
from .losses import Loss, get_loss


class Sequential:
    """A model that applies its layers in order.

    Parameters
    ----------
    *layers : Layer
        e.g. ``Conv2D(1, 16, 3, padding='same'), ReLU(), MaxPool2D(2), Flatten(), Dense(...)``.
    input_shape : (C, H, W), optional
        Per-sample input shape. When given, every layer's shape is checked now (a channel
        mismatch is reported before any data flows) and ``summary()`` needs no argument.
        ``fit`` records it from the data otherwise.
    fuse : bool, default True
        Run a ReLU next to a MaxPool2D, and a Conv2D before such a pair, as one op each;
        a BatchNorm2D and its ReLU as one pass; a Conv2D's batch norm folded into its
        weights for inference; a Residual block's sum and its ReLU in one step
        (:mod:`clearconv.train.fusion`: the same values and gradients, the fold equal to
        rounding, fewer passes over memory). ``summary()`` shows what runs fused.

    Examples
    --------
    >>> from clearconv.layers import Conv2D, ReLU, MaxPool2D, Flatten, Dense
    >>> model = Sequential(Conv2D(1, 4, 3, padding="same", rng=0), ReLU(), MaxPool2D(2),
    ...                    Flatten(), Dense(4 * 4 * 4, 10, rng=0), input_shape=(1, 8, 8))
    >>> model.predict(np.zeros((5, 1, 8, 8), np.float32)).shape
    (5, 10)
    """

    def __init__(self, *layers: Layer, input_shape: Sequence[int] | None = None,
                 fuse: bool = True) -> None:
        if len(layers) == 1 and isinstance(layers[0], (list, tuple)):
            layers = tuple(layers[0])
        for i, layer in enumerate(layers):
            if not isinstance(layer, Layer):
                raise ClearConvError(f"layer {i} is not a clearconv Layer: {layer!r}")
        self.layers: list[Layer] = list(layers)
        self.fuse = bool(fuse)
        self._steps: tuple[tuple[Any, ...], list[Any]] | None = None
        self.input_shape: tuple[int, ...] | None = None
        self.stop_training = False
        #: the mode, as PyTorch's ``module.training``: see :meth:`train`
        self.training = True
        self.classes: list[str] | None = None
        self._out_shape: tuple[int, ...] | None = None   # of the last training forward
        #: the loss ``fit`` trains with and ``evaluate`` reports (:mod:`clearconv.train.losses`)
        self.loss_fn: Loss = get_loss(None)
        self._last_correct: int | None = None
        #: the dataset the model was trained on (``clearconv train`` sets it), or None
        self.trained_on: str | None = None
        #: the per-epoch history of its training (``History.history``: lists per key),
        #: saved with the model so that ``explain`` can draw its curves; or None
        self.train_history: dict[str, list[float]] | None = None
        self._name_parameters()
        if input_shape is not None:
            self.build(input_shape)

    # ---------------------------------------------------------------- structure
    def _name_parameters(self) -> None:
        for i, layer in enumerate(self.layers):
            for local, p in layer.named_parameters():
                p.name = f"{i}.{local}"

    def build(self, input_shape: Sequence[int]) -> list[tuple[int, ...]]:
        """Record the per-sample input shape and check every layer against it.

        Returns the per-sample output shape of each layer; raises ShapeError naming the
        layer whose input does not fit.
        """
        shape = tuple(int(s) for s in input_shape)
        shapes = []
        for i, layer in enumerate(self.layers):
            try:
                shape = tuple(layer.output_shape(shape))
            except ClearConvError as e:
                raise ShapeError(f"layer {i} ({type(layer).__name__}): {e}") from None
            shapes.append(shape)
        self.input_shape = tuple(int(s) for s in input_shape)
        return shapes

    def parameters(self) -> list[Parameter]:
        """All trainable parameters, layer by layer (names like ``'0.weight'``)."""
        return [p for layer in self.layers for p in layer.parameters()]

    def zero_grad(self) -> None:
        for p in self.parameters():
            p.zero_grad()

    def named_buffers(self) -> list[tuple[str, np.ndarray]]:
        """The saved state that is not trained, ``[('1.running_mean', array), ...]``
        (batch norm's running statistics, PyTorch's names, inside blocks too)."""
        return [(f"{i}.{local}", b) for i, layer in enumerate(self.layers)
                for local, b in layer.named_buffers()]

    def train(self, mode: bool = True) -> Sequential:
        """Training mode (the default) or, with ``mode=False``, evaluation mode, for every
        layer, inside blocks too (PyTorch's ``model.train()``); returns self.

        The mode decides how a pass that records for backward behaves (``train_step``,
        ``forward(x, training=True)``): in training mode dropout drops and batch norm
        normalises with the batch's statistics (and updates its running ones); in
        evaluation mode dropout is the identity and batch norm uses the running
        statistics, while gradients still flow. Inference (``model(x)``, ``predict``,
        ``evaluate``) always runs as evaluation. ``fit`` trains in training mode and puts
        back the mode it found.
        """
        self.training = bool(mode)
        for layer in self.layers:
            layer.train(mode)
        return self

    def eval(self) -> Sequential:
        """Evaluation mode: ``train(False)``."""
        return self.train(False)

    @property
    def dtype(self) -> np.dtype:
        params = self.parameters()
        return params[0].value.dtype if params else np.dtype(np.float32)

    def astype(self, dtype: np.dtype | type | str) -> Sequential:
        """Convert every parameter to ``dtype`` in place (float32 or float64); returns self."""
        for layer in self.layers:
            layer.astype(np.dtype(dtype))
        return self

    def summary(self, input_shape: Sequence[int] | None = None, print_fn: Any = print) -> str:
        """Print (and return) each layer's output shape, parameter count and the algorithm
        it runs (conv and pooling layers; a run of fused layers is marked), and the total.

        ``input_shape`` is per sample, (C, H, W); defaults to the recorded one. The
        algorithm column is what the registry picks for these shapes in a training batch
        (``clearconv.kernels.tuning.PLAN_BATCH`` images: a prediction of a few images
        before the compiled kernels are loaded runs NumPy instead;
        :func:`clearconv.functional.conv2d_algorithm` says why).
        """
        shape, rows, total = self._summary_rows(input_shape)
        widths = [max(len(r[c]) for r in rows) for c in range(4)]
        line = "-" * (sum(widths) + 9)
        out_lines = [f"Input: (N, {', '.join(map(str, shape))})", line]
        for j, r in enumerate(rows):
            out_lines.append(f"{r[0]:<{widths[0]}}   {r[1]:<{widths[1]}}   "
                             f"{r[2]:>{widths[2]}}   {r[3]}".rstrip())
            if j == 0:
                out_lines.append(line)
        out_lines += [line, f"Total params: {total:,}"]
        text = "\n".join(out_lines)
        if print_fn is not None:
            print_fn(text)
        return text

    def _summary_rows(self, input_shape: Sequence[int] | None
                      ) -> tuple[Sequence[int], list[tuple[str, str, str, str]], int]:
        """The summary's table: (input shape, header row + one row per layer, total)."""
        shape = input_shape if input_shape is not None else self.input_shape
        if shape is None:
            raise ClearConvError("summary needs the input shape: pass input_shape=(C, H, W) "
                                 "or build the model with input_shape")
        shapes = self.build(shape) if input_shape is None else self._shapes(shape)
        runs = fusion.describe(self.steps(), tuple(int(s) for s in shape), self.dtype)
        rows = [("Layer (type)", "Output shape", "Param #", "Algorithm")]
        total = 0
        inputs = [tuple(int(s) for s in shape), *shapes[:-1]]
        for i, (layer, out) in enumerate(zip(self.layers, shapes)):
            n = sum(p.value.size for p in layer.parameters())
            total += n
            rows.append((f"{i}: {type(layer).__name__}", _shape_text(out), f"{n:,}",
                         runs.get(i, "")))
            rows += _branch_rows(layer, str(i), inputs[i], 1)
        return shape, rows, total

    def _repr_html_(self) -> str:
        """The summary as an HTML table, which Jupyter shows for a model (the layers
        alone while the input shape is unknown)."""
        from html import escape

        if self.input_shape is None:
            items = "".join(f"<li>{i}: {escape(repr(layer))}</li>"
                            for i, layer in enumerate(self.layers))
            return (f"<div><b>Sequential</b>, {len(self.layers)} layers (input shape not "
                    f"set yet)<ol start=0 style='font-family:monospace'>{items}</ol></div>")
        shape, rows, total = self._summary_rows(None)
        head = "".join(f"<th style='text-align:left'>{escape(c)}</th>" for c in rows[0])
        body = "".join("<tr>" + "".join(
            f"<td style='text-align:{'right' if j == 2 else 'left'}'>{escape(c)}</td>"
            for j, c in enumerate(r)) + "</tr>" for r in rows[1:])
        return (f"<div><b>Sequential</b>: input (N, {', '.join(map(str, shape))})"
                f"<table style='font-family:monospace'><thead><tr>{head}</tr></thead>"
                f"<tbody>{body}</tbody></table>Total params: {total:,}</div>")

    def _shapes(self, shape: Sequence[int]) -> list[tuple[int, ...]]:
        saved = self.input_shape
        try:
            return self.build(shape)
        finally:
            self.input_shape = saved

    # ---------------------------------------------------------------- math
    def _as_input(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x)
        if x.dtype != self.dtype:
            x = x.astype(self.dtype)
        if self.input_shape is not None and x.shape[1:] != self.input_shape:
            expected = ", ".join(map(str, self.input_shape))
            raise ShapeError(f"model expects input of shape (N, {expected}), got {x.shape}")
        if x.ndim == 0 or x.shape[0] == 0:
            raise ShapeError(f"model got an empty batch (input of shape {x.shape}): pass at "
                             "least one sample")
        return x

    def steps(self) -> list[Any]:
        """What forward runs, in order: the layers, with runs of them fused into one op
        where ``fuse`` (see :mod:`clearconv.train.fusion`). The same step objects from one
        forward to the next backward (they hold the caches)."""
        key = (self.fuse, *map(id, self.layers))
        if self._steps is None or self._steps[0] != key:
            self._steps = (key, fusion.plan(self.layers, self.fuse))
        return self._steps[1]

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        """Apply every layer: (N, *input_shape) -> (N, K) outputs (logits)."""
        x = self._as_input(x)
        with region():
            for step in self.steps():
                x = step.forward(x, training)
        if training:
            self._out_shape = x.shape
        return x

    __call__ = forward

    def backward(self, dout: np.ndarray, input_grad: bool = True) -> np.ndarray | None:
        """Back-propagate dL/d(output) through every layer (after ``forward(training=True)``),
        adding into each parameter's ``grad``; returns dL/d(input) (e.g. for saliency maps).

        ``input_grad=False`` lets the first layer skip dL/d(input) when it can (returns
        None then): training needs only the parameter gradients.
        """
        expected = getattr(self, "_out_shape", None)
        if expected is not None and np.shape(dout) != expected:
            raise ShapeError(f"backward: the gradient has shape {np.shape(dout)}, the last "
                             f"forward's output had {expected}")
        order = self.steps()
        with region():
            for step in reversed(order[1:]):
                dout = step.backward(dout)
            first = order[0]
            if not input_grad and first.skips_input_grad:
                return first.backward(dout, input_grad=False)  # type: ignore[call-arg]
            return first.backward(dout)

    def loss(self, x: np.ndarray, y: np.ndarray) -> float:
        """The loss (``loss_fn``, by default the mean softmax cross-entropy) of
        ``forward(x)`` (inference mode) against the targets y."""
        return self.loss_fn.forward(self.forward(x), y)[0]

    def loss_and_backward(self, x: np.ndarray, y: np.ndarray, training: bool = False) -> float:
        """Forward, loss, and backward into every ``.grad``; returns the loss.

        With ``training=False`` (for gradient checks) the pass runs in evaluation mode
        (:meth:`eval`: dropout is the identity, batch norm uses its running statistics),
        recording for backward, and the mode is put back after: it computes the gradient
        of :meth:`loss`. With ``training=True`` it runs in the model's mode.
        """
        x = self._as_input(x)
        mode = self.training
        if not training:
            self.eval()
        try:
            with region():
                for step in self.steps():
                    x = step.forward(x, True)
                self._out_shape = x.shape
                loss, cache = self.loss_fn.forward(x, y)
                self.backward(self.loss_fn.backward(cache))
        finally:
            if not training:
                self.train(mode)
        return loss

    def train_step(self, x: np.ndarray, y: np.ndarray, optimizer: Any) -> float:
        """One mini-batch of gradient descent: forward, loss, backward, optimizer update.

        Returns the batch loss. Raises :class:`~clearconv.errors.NumericalError` (and
        applies no update) when the loss or a gradient is NaN/Inf.
        """
        tune_allocator()
        with region():
            return self._train_step(x, y, optimizer)

    def _train_step(self, x: np.ndarray, y: np.ndarray, optimizer: Any) -> float:
        loss, problem = self.compute_gradients(x, y)
        if problem is not None:
            raise NumericalError(f"{problem}; no update was applied")
        optimizer.step()
        return loss

    def compute_gradients(self, x: np.ndarray, y: np.ndarray) -> tuple[float, str | None]:
        """Zero every ``.grad``, then forward (training mode), loss and backward into them.

        Returns the batch's loss (``loss_fn``'s value: the mean, or the sum for
        ``reduction='sum'``) and, when the loss or a gradient is NaN/Inf, what went wrong
        (None when all is finite); nothing is updated. ``train_step`` is this plus the
        optimizer's step; data-parallel training (:mod:`clearconv.train.distributed`)
        averages the gradients over the processes in between. The count of the batch's
        samples classified right is kept for the accuracy (None for a loss that is not a
        classifier's).
        """
        self.zero_grad()
        logits = self.forward(x, training=True)
        self._last_correct = self.loss_fn.correct(logits, y)
        loss, cache = self.loss_fn.forward(logits, y)
        if not np.isfinite(loss):
            return loss, f"the loss is {loss} ({self._nonfinite_source(x)})"
        self.backward(self.loss_fn.backward(cache), input_grad=False)
        for p in self.parameters():
            if not np.isfinite(p.grad).all():
                layer = type(self.layers[int(p.name.split('.')[0])]).__name__
                return loss, f"the gradient of parameter {p.name} ({layer}) has NaN/Inf"
        return loss, None

    def _nonfinite_source(self, x: np.ndarray) -> str:
        """Name the first layer whose output is NaN/Inf for input x (inference mode)."""
        h = self._as_input(x)
        if not np.isfinite(h).all():
            return "the input batch holds NaN/Inf"
        for i, layer in enumerate(self.layers):
            h = layer.forward(h)
            if not np.isfinite(h).all():
                return f"layer {i} ({type(layer).__name__}) produced NaN/Inf"
        return "the logits are finite; the loss overflowed"

    # ---------------------------------------------------------------- Keras-style API
    def fit(self, x: np.ndarray, y: np.ndarray, epochs: int = 1, batch_size: int = 32,
            optimizer: Any = None, validation_data: tuple[np.ndarray, np.ndarray] | None = None,
            shuffle: bool = True, callbacks: Iterable[Callback] = (), verbose: int = 1,
            seed: int | None = None, checkpoint_dir: str | None = None,
            resume: bool = False, augment: Any = None, distributed: Any = None,
            loss: Loss | str | None = None) -> History:
        """Train with mini-batch gradient descent.

        Parameters
        ----------
        x : ndarray (N, C, H, W) (or (N, features) for dense-only models), already scaled
        y : the targets: integer labels (N,) for cross-entropy; for ``loss='mse'`` or
            ``'bce_with_logits'`` floats of the model's output shape (N, ...), e.g.
            ``y = x`` for an autoencoder
        epochs : the total number of epochs of the run (a resumed run trains the rest)
        batch_size : int
        optimizer : a :mod:`clearconv.optim` optimizer; default Adam(lr=1e-3)
        validation_data : (x_val, y_val), evaluated after every epoch
        shuffle : draw each epoch's batches as a permutation (without replacement)
        callbacks : EarlyStopping, ModelCheckpoint, TerminateOnNaN, LearningRateScheduler,
            BackupAndRestore, or your own (:mod:`clearconv.train.callbacks`)
        verbose : 0 silent, 1 a progress bar per epoch with loss and samples/s, 2 a line per epoch
        seed : seeds the shuffling (and dropout layers without their own rng)
        checkpoint_dir : shorthand for ``callbacks=[..., BackupAndRestore(checkpoint_dir,
            resume=resume)]``: write ``checkpoint.npz`` there when training begins, after
            every epoch (model, optimizer, callbacks' state, RNG states, position;
            atomically), and on Ctrl-C before stopping
        resume : continue from the checkpoint in ``checkpoint_dir`` if there is one; the
            result is bit-identical to an uninterrupted run (same data, seed, callbacks,
            threads)
        augment : optional ``aug(x_batch, rng) -> x_batch`` applied to each training batch
            (see :mod:`clearconv.data.augment`); its generator is seeded by
            (seed, epoch, step), so augmented runs are reproducible and resumable
        distributed : train data-parallel on the processes of an MPI job: a
            :class:`~clearconv.train.distributed.DataParallel` or an mpi4py communicator
            (``MPI.COMM_WORLD``). Every process calls ``fit`` with the same data; each
            trains on its share of every global batch of ``batch_size`` x processes samples
            and the gradients are averaged (:mod:`clearconv.train.distributed`)
        loss : a :class:`~clearconv.train.losses.Loss` (``CrossEntropyLoss(label_smoothing=
            0.1)``, ``MSELoss()``, ``BCEWithLogitsLoss(pos_weight=...)``) or its name
            (``'cross_entropy'``, ``'mse'``, ``'bce_with_logits'``); reduction 'mean' or
            'sum'. The model keeps it as ``loss_fn`` (``evaluate`` reports it, ``save``
            records it). None: the model's ``loss_fn`` (softmax cross-entropy unless set;
            on resume, the checkpoint's)

        Notes
        -----
        The epochs run in training mode (:meth:`train`: dropout on, batch norm with batch
        statistics), the validation in evaluation mode; the model's mode is put back after.

        Returns
        -------
        History with per-epoch ``loss`` (a mean per sample), ``accuracy`` (for
        cross-entropy on (N, C) outputs), ``val_loss``, ``val_accuracy``, ``seconds`` and
        what callbacks add to the logs (``lr``). The loop itself is
        :class:`clearconv.train.loop.Trainer`.

        Raises
        ------
        NumericalError when a loss or gradient turns NaN/Inf (naming the layer, epoch and
        step; no update is applied) unless a TerminateOnNaN callback stops quietly.
        KeyboardInterrupt after saving a checkpoint, when ``checkpoint_dir`` is set.
        """
        if resume and checkpoint_dir is None:
            raise ClearConvError("resume=True needs checkpoint_dir")
        callbacks = list(callbacks)
        if checkpoint_dir is not None:
            callbacks.append(BackupAndRestore(checkpoint_dir, resume=resume))
        mode = self.training
        self.train()        # trains in training mode, puts back the mode it found
        try:
            return Trainer(self, x, y, epochs=epochs, batch_size=batch_size,
                           optimizer=optimizer, validation_data=validation_data,
                           shuffle=shuffle, callbacks=callbacks, verbose=verbose, seed=seed,
                           augment=augment, distributed=distributed, loss=loss).run()
        finally:
            self.train(mode)

    def predict(self, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """Raw model outputs (logits) for x, computed in batches: (N, K)."""
        x = np.asarray(x)
        if len(x) == 0:
            raise ShapeError("predict needs at least one sample, got 0")
        outs = [self.forward(x[i:i + batch_size]) for i in range(0, len(x), batch_size)]
        return np.concatenate(outs)

    def predict_proba(self, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """Class probabilities softmax(logits), (N, K)."""
        return softmax_forward(self.predict(x, batch_size), axis=1)[0]

    def predict_classes(self, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """The most probable class of each sample, (N,)."""
        return self.predict(x, batch_size).argmax(axis=1)

    def evaluate(self, x: np.ndarray, y: np.ndarray, batch_size: int = 256) -> dict[str, float]:
        """The loss (``loss_fn``, a mean per sample) and, for a classifier (cross-entropy on
        (N, C) outputs), the accuracy over (x, y), in batches:
        ``{'loss': ..., 'accuracy': ...}`` (``{'loss': ...}`` for regression)."""
        x = np.asarray(x)
        y = np.asarray(y)
        if len(x) != len(y) or len(x) == 0:
            raise ShapeError(f"evaluate needs matching non-empty x and y, got {len(x)} samples "
                             f"and {len(y)} labels")
        self.loss_fn.check_training()
        total_loss, correct = 0.0, 0
        for i in range(0, len(x), batch_size):
            logits = self.forward(x[i:i + batch_size])
            loss, _ = self.loss_fn.forward(logits, y[i:i + batch_size])
            total_loss += self.loss_fn.per_sample(loss, len(logits)) * len(logits)
            right = self.loss_fn.correct(logits, y[i:i + batch_size])
            correct = None if right is None or correct is None else correct + right
        if correct is None:
            return {"loss": total_loss / len(x)}
        return {"loss": total_loss / len(x), "accuracy": correct / len(x)}

    # ---------------------------------------------------------------- state and files
    def state_dict(self) -> dict[str, np.ndarray]:
        """``{'0.weight': array, '0.bias': array, '1.running_mean': array, ...}``: layer by
        layer, its parameters, then its buffers (:meth:`named_buffers`), as PyTorch. The
        live arrays; copy to keep."""
        state: dict[str, np.ndarray] = {}
        for i, layer in enumerate(self.layers):
            state.update(_layer_state(layer, str(i)))
        return state

    def load_state_dict(self, state: dict[str, np.ndarray], strict: bool = True) -> None:
        """Copy arrays into the parameters and buffers (in place).

        ``strict``: every key must match a parameter or buffer and vice versa. Shapes must
        match always; the errors name the keys and shapes.
        """
        params: dict[str, Any] = {p.name: p for p in self.parameters()}
        params.update({name: _Buffer(b) for name, b in self.named_buffers()})
        missing = sorted(set(params) - set(state))
        unexpected = sorted(set(state) - set(params))
        if strict and (missing or unexpected):
            raise ClearConvError(f"state_dict does not match the model: missing keys {missing}, "
                                 f"unexpected keys {unexpected}")
        for name, value in state.items():
            if name not in params:
                continue
            p = params[name]
            value = np.asarray(value)
            if value.shape != p.value.shape:
                raise ShapeError(f"state_dict[{name!r}] has shape {value.shape}, the model's "
                                 f"parameter has {p.value.shape}")
            p.value[...] = value

    def get_config(self) -> dict[str, Any]:
        """The architecture as JSON-able data."""
        return {"class": "Sequential",
                "layers": [{"type": type(layer).__name__, "config": layer.get_config()}
                           for layer in self.layers],
                "input_shape": list(self.input_shape) if self.input_shape else None,
                "dtype": str(self.dtype),
                "classes": self.classes,
                **({} if self.fuse else {"fuse": False}),
                **({} if self.loss_fn.is_default else {"loss": self.loss_fn.get_config()}),
                **({"trained_on": self.trained_on} if self.trained_on else {}),
                **({"train_history": self.train_history} if self.train_history else {})}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Sequential:
        """Rebuild a model (fresh weights) from :meth:`get_config` output."""
        try:
            if config.get("class") != "Sequential":
                raise ClearConvError(f"not a Sequential config: class {config.get('class')!r}")
            if not isinstance(config.get("layers"), list) or not config["layers"]:
                raise ClearConvError(f"'layers' must be a non-empty list of layers, got "
                                     f"{config.get('layers')!r:.60}")
            layers = []
            for spec in config["layers"]:
                if not isinstance(spec, dict) or not isinstance(spec.get("config"), dict):
                    raise ClearConvError(f"each layer must be {{'type': ..., 'config': {{...}}}}, "
                                         f"got {spec!r:.60}")
                kind = spec["type"]
                if kind not in Layer.registry:
                    raise ClearConvError(f"unknown layer type {kind!r}")
                layers.append(Layer.registry[kind].from_config(spec["config"]))
            model = cls(*layers, fuse=bool(config.get("fuse", True)))
            dtype = config.get("dtype", "float32")
            if dtype not in ("float32", "float64"):
                raise ClearConvError(f"dtype must be 'float32' or 'float64', got {dtype!r}")
            model.astype(dtype)
            if config.get("input_shape"):
                model.build(config["input_shape"])
            model.classes = _check_classes(config.get("classes"), model)
            model.loss_fn = get_loss(config.get("loss"))
            trained_on = config.get("trained_on")
            if trained_on is not None and not isinstance(trained_on, str):
                raise ClearConvError(f"trained_on must be a dataset name, got {trained_on!r}")
            model.trained_on = trained_on
            model.train_history = _checked_history(config.get("train_history"))
            return model
        except (KeyError, TypeError, AttributeError, ValueError, OverflowError,
                RecursionError) as e:
            raise ModelFileError(f"invalid model architecture: {e}") from None

    def save(self, path: str) -> None:
        """Save architecture (JSON) and weights (arrays) to one ``.npz`` file, atomically.

        No pickle is involved: :func:`clearconv.load` reads it with ``allow_pickle=False``.
        """
        io.save_arrays(path, {"model": self.get_config()},
                       {k: np.asarray(v, order="C") for k, v in self.state_dict().items()})

    def to_onnx(self, path: str, **kwargs: Any) -> None:
        """Export to ONNX (needs ``pip install clearconv[onnx]``); see
        :func:`clearconv.io.onnx.to_onnx` for the options."""
        from ..io.onnx import to_onnx

        to_onnx(self, path, **kwargs)

    def __repr__(self) -> str:
        inner = ",\n".join(f"  ({i}) {layer!r}" for i, layer in enumerate(self.layers))
        return f"Sequential(\n{inner}\n)"


def _checked_history(history: Any) -> dict[str, list[float]] | None:
    """A model file's training history: ``{key: [number per epoch]}``, or None."""
    if history is None:
        return None
    if not isinstance(history, dict) or not all(
            isinstance(k, str) and isinstance(v, list)
            and all(isinstance(e, (int, float)) and not isinstance(e, bool) for e in v)
            for k, v in history.items()):
        raise ClearConvError("train_history must map names to lists of numbers")
    return {k: [float(e) for e in v] for k, v in history.items()}


def _shape_text(shape: tuple[int, ...]) -> str:
    return str(("N",) + tuple(shape)).replace("'", "")


def _branch_rows(layer: Layer, prefix: str, in_shape: tuple[int, ...], depth: int
                 ) -> list[tuple[str, str, str, str]]:
    """Summary rows of the layers inside a block, each branch from the block's input,
    indented by depth."""
    rows = []
    branches = getattr(layer, "branches", None)
    for name, chain in (branches() if branches is not None else {}).items():
        shape = in_shape
        if not chain:
            rows.append((f"{'  ' * depth}{prefix}.{name}: identity", _shape_text(shape), "0",
                         ""))
        for j, inner in enumerate(chain):
            shape = tuple(inner.output_shape(shape))
            n = sum(p.value.size for p in inner.parameters())
            label = f"{'  ' * depth}{prefix}.{name}.{j}: {type(inner).__name__}"
            rows.append((label, _shape_text(shape), f"{n:,}", ""))
            rows += _branch_rows(inner, f"{prefix}.{name}.{j}", shape, depth + 1)
    return rows


def _layer_state(layer: Layer, prefix: str) -> list[tuple[str, np.ndarray]]:
    """A layer's state_dict entries, leaf layer by leaf layer inside blocks (PyTorch's
    order): each one's parameters, then its buffers."""
    subs = layer.sublayers()
    if subs:
        return [kv for name, sub in subs for kv in _layer_state(sub, f"{prefix}.{name}")]
    return [*((f"{prefix}.{local}", p.value) for local, p in layer.named_parameters()),
            *((f"{prefix}.{local}", b) for local, b in layer.named_buffers())]


class _Buffer:
    """A buffer seen as a Parameter by load_state_dict (its ``value`` is the live array)."""

    __slots__ = ("value",)

    def __init__(self, value: np.ndarray) -> None:
        self.value = value


def _check_classes(classes: Any, model: Sequential) -> list[str] | None:
    """A saved model's class names: None, or one string per output of the model."""
    if classes is None:
        return None
    if not isinstance(classes, list) or not all(isinstance(c, str) for c in classes):
        raise ClearConvError(f"'classes' must be a list of strings, got {classes!r:.60}")
    if model.input_shape is not None:
        out = model._shapes(model.input_shape)[-1]
        if len(out) == 1 and out[0] != len(classes):
            raise ClearConvError(f"'classes' names {len(classes)} classes but the model has "
                                 f"{out[0]} outputs")
    return classes


def _check_weights(path: str, arrays: dict[str, np.ndarray]) -> None:
    """Weights are real floating-point numbers, all finite: anything else is refused
    (a complex array would lose its imaginary part, a string or bool one is no weight,
    and a NaN or Inf would print ``nan`` for every prediction)."""
    for name, a in arrays.items():
        if name.endswith(".num_batches_tracked"):     # batch norm's step counter
            if a.dtype.kind not in "iu" or a.shape != () or int(a) < 0:
                raise ModelFileError(f"{path}: buffer {name!r} must be one non-negative "
                                     f"integer, got dtype {a.dtype}, shape {a.shape}")
            continue
        if a.dtype.kind != "f":
            raise ModelFileError(f"{path}: weight {name!r} has dtype {a.dtype}; weights are "
                                 "float16, float32 or float64")
        if not np.isfinite(a).all():
            raise ModelFileError(f"{path}: weight {name!r} holds NaN or infinite values")


def _announced_weights(config: dict[str, Any]) -> int:
    """The weight count of the Dense and Conv2D layers of an architecture, without
    building it (a layer whose config is invalid counts 0: building it reports why)."""
    from ..shapes import conv2d_params, dense_params

    counts = {
        "Dense": lambda c: dense_params(c["in_features"], c["out_features"], False),
        "Conv2D": lambda c: conv2d_params(c["in_channels"], c["out_channels"],
                                          c["kernel_size"], False),
    }
    total = 0
    layers = config.get("layers")
    for spec in layers if isinstance(layers, list) else ():
        kind = spec.get("type") if isinstance(spec, dict) else None
        count = counts.get(kind) if isinstance(kind, str) else None
        try:
            total += count(spec["config"]) if count is not None else 0
        except (KeyError, TypeError, ValueError):  # ClearConvError is a ValueError
            pass
    return total


def load(path: str) -> Sequential:
    """Load a model saved with :meth:`Sequential.save`.

    Raises ModelFileError for a corrupt, truncated, foreign or unsafe file (never unpickles).
    """
    config, arrays = io.load_arrays(path)
    if not isinstance(config.get("model"), dict):
        raise ModelFileError(f"{path}: a clearconv array file, but it holds no model "
                             f"architecture")
    # building allocates every weight: refuse an architecture far bigger than the file
    # first (a small mismatch is left to load_state_dict, whose message names the keys)
    announced, held = _announced_weights(config["model"]), sum(a.size for a in arrays.values())
    if announced > 2 * held + (1 << 20):
        raise ModelFileError(f"{path}: the architecture announces {announced} weights but the "
                             f"file holds {held} values")
    _check_weights(path, arrays)
    # every layer's weights as built count against what the file holds, whatever form
    # its sizes were written in ([40000, 1] is 40000)
    with weight_budget(2 * held + (1 << 20), f"{path}: the architecture is larger than "
                                             f"the {held} weights the file holds"):
        model = Sequential.from_config(config["model"])
    try:
        model.load_state_dict(arrays, strict=True)
    except ClearConvError as e:
        raise ModelFileError(f"{path}: weights do not match the architecture: {e}") from None
    return model
