"""Files in and out: the model file format, ONNX export, PyTorch interop.

* :mod:`clearconv.io.files`: one ``.npz`` of arrays plus a JSON config, written
  atomically, read without pickle (:func:`save_arrays`, :func:`load_arrays`,
  :func:`atomic_write`); models and checkpoints are stored this way.
* :mod:`clearconv.io.onnx`: :func:`~clearconv.io.onnx.to_onnx` (needs ``clearconv[onnx]``).
* :mod:`clearconv.io.torch`: :func:`~clearconv.io.torch.from_torch` and
  :func:`~clearconv.io.torch.to_torch` (needs ``clearconv[torch]``).

The two converters are imported on first use, so ``import clearconv`` needs neither
onnx nor torch.
"""

from .files import CONFIG_KEY, FORMAT_NAME, FORMAT_VERSION, atomic_write, load_arrays, save_arrays

__all__ = ["CONFIG_KEY", "FORMAT_NAME", "FORMAT_VERSION", "atomic_write", "load_arrays",
           "save_arrays"]
