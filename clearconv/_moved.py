"""Old import paths of modules that moved when the package was grouped by purpose (0.2).

``import clearconv.zoo``, ``from clearconv.model import Sequential`` and ``clearconv.zoo``
as an attribute keep working for one release, with a DeprecationWarning that names the
new place; ``clearconv.optim`` and ``clearconv.losses`` stay as the short, PyTorch-like
names of :mod:`clearconv.train.optim` and :mod:`clearconv.train.losses` (no warning). The
README's "Layout" section lists them.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import warnings
from types import ModuleType

#: old module name (under clearconv.) -> new one
MOVED = {
    "model": "train.sequential",
    "callbacks": "train.callbacks",
    "checkpoint": "train.checkpoint",
    "zoo": "train.zoo",
    "optim": "train.optim",
    "losses": "train.losses",
    "parameter": "layers.parameter",
    "export_onnx": "io.onnx",
    "interop": "io.torch",
    "images": "data.images",
    "runtime": "kernels",
}
#: old names that stay without a warning
KEPT = frozenset({"optim", "losses"})


def resolve(old: str) -> ModuleType:
    """The module that ``clearconv.<old>`` now is (imported on first use)."""
    new = MOVED[old]
    if old not in KEPT:
        warnings.warn(f"clearconv.{old} moved to clearconv.{new}; the old name works until "
                      f"clearconv 0.3", DeprecationWarning, stacklevel=3)
    return importlib.import_module(f"clearconv.{new}")


class _Finder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Resolves ``import clearconv.<old>`` to the moved module itself (same object)."""

    def find_spec(self, fullname: str, path: object = None, target: object = None
                  ) -> importlib.machinery.ModuleSpec | None:
        package, _, old = fullname.partition(".")
        if package == "clearconv" and old in MOVED:
            return importlib.util.spec_from_loader(fullname, self)
        return None

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> None:
        return None

    def exec_module(self, module: ModuleType) -> None:
        # the import system returns whatever sys.modules holds after this call
        sys.modules[module.__name__] = resolve(module.__name__.partition(".")[2])


def install() -> None:
    if not any(isinstance(f, _Finder) for f in sys.meta_path):
        sys.meta_path.append(_Finder())
