"""The documentation site builds with every warning an error (``mkdocs build --strict``,
the README's command): every docstring of the API reference parses (numpy-style
sections: ``Parameters``, ``Returns``, ``Examples``, ``Notes``, ...), every page of the
navigation exists. Needs the docs extra (``pip install -e ".[docs]"``, which .ci/run
installs)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_mkdocs_build_strict(tmp_path):
    pytest.importorskip("mkdocs", reason="the docs extra is not installed "
                                         "(pip install -e '.[docs]')")
    pytest.importorskip("mkdocstrings", reason="the docs extra is not installed")
    run = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir",
                          str(tmp_path / "site")], cwd=ROOT, capture_output=True, text=True)
    warnings = [line for line in run.stderr.splitlines() if "WARNING" in line
                and "NO_MKDOCS_2_WARNING" not in line]
    assert run.returncode == 0, "\n".join(warnings) or run.stderr[-3000:]
    assert (tmp_path / "site" / "MATH" / "index.html").is_file()
    assert (tmp_path / "site" / "api" / "functional" / "index.html").is_file()
