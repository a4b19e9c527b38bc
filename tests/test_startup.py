"""Fast start (issue 15): ``import clearconv`` and ``clearconv --help`` import none of the
heavy optional parts, and a small prediction in a fresh process does not load Numba,
while a big batch and training do. Each check runs in a fresh interpreter (this test
session has loaded the compiled kernels already, see conftest.py)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from clearconv.kernels import jit

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("numba", "matplotlib", "onnx", "onnxruntime", "torch", "scipy")


def _fresh(code: str, env: dict[str, str] | None = None) -> dict:
    """Run ``code`` in a new interpreter; it prints one JSON object as its last line."""
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                         text=True, check=True, env=env).stdout
    return json.loads(out.strip().splitlines()[-1])


LOADED = f"json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules))"


def test_import_clearconv_imports_no_heavy_optional_part():
    assert _fresh(f"import json, sys; import clearconv; print({LOADED})") == []


@pytest.mark.parametrize("argv", [["--help"], ["train", "--help"], ["explain", "--help"],
                                  ["predict", "--help"]])
def test_cli_help_imports_no_heavy_optional_part(argv):
    code = (f"import contextlib, io, json, sys\nfrom clearconv.cli import main\n"
            f"with contextlib.redirect_stdout(io.StringIO()):\n"
            f"    try:\n        main({argv!r})\n    except SystemExit:\n        pass\n"
            f"print({LOADED})")
    assert _fresh(code) == []


def test_python_dash_m_clearconv_runs_the_command():
    out = subprocess.run([sys.executable, "-m", "clearconv", "--help"], cwd=ROOT,
                         capture_output=True, text=True, check=True).stdout
    assert "usage: clearconv" in out


PREDICT = """
import json, sys
import numpy as np
from clearconv.train import recipe
model = recipe("mnist").build_model((1, 28, 28), 10, seed=0)
x = np.random.default_rng(0).random((N, 1, 28, 28), dtype=np.float32)
model.predict(x)
print(json.dumps({"numba": "numba" in sys.modules}))
"""


@pytest.mark.skipif(not jit.AVAILABLE, reason="Numba not installed (or CLEARCONV_JIT=0): "
                                               "nothing to keep from loading")
def test_small_prediction_does_not_load_numba_and_a_big_batch_does():
    small = _fresh(PREDICT.replace("N,", "1,"))
    assert small["numba"] is False, small
    big = _fresh(PREDICT.replace("N,", "64,"))
    assert big["numba"] is True, big


@pytest.mark.skipif(not jit.AVAILABLE, reason="Numba not installed (or CLEARCONV_JIT=0)")
def test_training_loads_the_compiled_kernels_first_whatever_the_batch():
    code = ("import json, sys\nimport numpy as np\nfrom clearconv.train import zoo\n"
            "from clearconv.kernels import jit\n"
            "m = zoo.digits_cnn(rng=0)\n"
            "x = np.random.default_rng(0).random((4, 1, 8, 8), dtype=np.float32)\n"
            "m.fit(x, np.arange(4), epochs=1, batch_size=2, verbose=0, seed=0)\n"
            "print(json.dumps({'loaded': jit.loaded(), 'numba': 'numba' in sys.modules}))")
    assert _fresh(code) == {"loaded": True, "numba": True}


def test_the_choice_says_why_a_small_call_takes_numpy():
    code = ("import json\nfrom clearconv.functional import conv2d_algorithm\n"
            "c = conv2d_algorithm((1, 1, 28, 28), (8, 1, 3, 3), padding=1)\n"
            "print(json.dumps({'name': c.name, 'text': str(c)}))")
    choice = _fresh(code)
    assert choice["name"] == "im2col-split"
    if jit.AVAILABLE:
        assert "Numba not loaded yet" in choice["text"]
    else:
        assert "needs Numba" in choice["text"]


def test_cli_help_does_not_import_the_figure_code():
    code = ("import contextlib, io, json, sys\nfrom clearconv.cli import main\n"
            "with contextlib.redirect_stdout(io.StringIO()):\n"
            "    try:\n        main(['explain', '--help'])\n    except SystemExit:\n        pass\n"
            "print(json.dumps('clearconv.explain' in sys.modules))")
    assert _fresh(code) is False
