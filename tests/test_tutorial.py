"""docs/tutorial.ipynb runs from top to bottom (executed by nbclient in a fresh kernel)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat", reason="needs nbformat (the test extra)")
nbclient = pytest.importorskip("nbclient", reason="needs nbclient (the test extra)")
pytest.importorskip("ipykernel", reason="needs ipykernel (the test extra)")
pytest.importorskip("ipywidgets", reason="needs ipywidgets (the test extra): tqdm's notebook bar")

ROOT = Path(__file__).resolve().parents[1]


def test_tutorial_notebook_runs(tmp_path, monkeypatch):
    nb = nbformat.read(str(ROOT / "docs" / "tutorial.ipynb"), as_version=4)
    # the kernel imports this checkout's clearconv and writes into tmp_path
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    client = nbclient.NotebookClient(nb, timeout=600, kernel_name="python3",
                                     resources={"metadata": {"path": str(tmp_path)}})
    client.execute()
    outputs = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    text = "".join(o.get("text", "") for o in outputs)
    assert "true convolution = -cross here: True" in text and "accuracy" in text
    html = [o for o in outputs if "text/html" in o.get("data", {})]
    assert any("Total params" in o["data"]["text/html"] for o in html)   # Sequential's table
    assert (tmp_path / "explorer.html").is_file()
    fit = next(c for c in nb.cells if "model.fit(" in c.source)
    widgets = [o for o in fit.outputs if "application/vnd.jupyter.widget-view+json" in
               o.get("data", {})]
    assert widgets, "fit's progress bar is not the notebook form (tqdm.auto with ipywidgets)"


def test_tutorial_is_what_the_generator_writes():
    import sys

    sys.path.insert(0, str(ROOT / "tools"))
    try:
        import make_tutorial
    finally:
        sys.path.pop(0)
    written = nbformat.read(str(ROOT / "docs" / "tutorial.ipynb"), as_version=4)
    assert [c.source for c in written.cells] == [c.source for c in make_tutorial.build().cells]
