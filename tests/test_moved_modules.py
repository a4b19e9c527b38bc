"""Modules that moved when the package was grouped by purpose keep their old names for
one release (clearconv._moved), as the same module objects, with a DeprecationWarning."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

import clearconv
from clearconv import _moved


@pytest.mark.parametrize("old", sorted(_moved.MOVED))
def test_old_import_path_gives_the_moved_module(old):
    new = importlib.import_module(f"clearconv.{_moved.MOVED[old]}")
    if old in _moved.KEPT:
        assert importlib.import_module(f"clearconv.{old}") is new
        assert getattr(clearconv, old) is new
        return
    with pytest.warns(DeprecationWarning, match=f"clearconv.{old} moved to clearconv"):
        assert getattr(clearconv, old) is new


@pytest.mark.parametrize("old", sorted(set(_moved.MOVED) - _moved.KEPT))
def test_old_import_statement_works_in_a_fresh_process(old):
    new = _moved.MOVED[old]
    code = (f"import warnings; warnings.simplefilter('error', DeprecationWarning)\n"
            f"import clearconv.{new} as new\n"
            f"try:\n    import clearconv.{old}\nexcept DeprecationWarning as e:\n    print(e)\n"
            f"warnings.simplefilter('ignore')\n"
            f"import clearconv.{old} as old\nassert old is new, (old, new)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert f"clearconv.{old} moved to clearconv.{new}" in out


def test_optim_keeps_its_short_name_without_a_warning(recwarn):
    from clearconv.optim import Adam

    from clearconv.train.optim import Adam as Adam2

    assert Adam is Adam2
    assert not [w for w in recwarn if issubclass(w.category, DeprecationWarning)]


def test_unknown_attribute_still_raises():
    with pytest.raises(AttributeError, match="no attribute 'nothing_here'"):
        clearconv.nothing_here  # noqa: B018
