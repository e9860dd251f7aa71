"""Execute every lesson notebook top to bottom, in fast mode (`MINIMAC_FAST=1` shrinks sizes and steps).

A notebook that raises fails its test. Notebooks that take longer than about a minute even in fast mode are
listed in SLOW and run only in the opt-in pass (`pytest -m slow`).
"""
import os
import pathlib

import pytest

NOTEBOOKS = sorted((pathlib.Path(__file__).parent.parent / "notebooks").glob("*.ipynb"))
# Measured on the 2-core CI machine: these four compile a full training step and take 40-120 s even in fast mode;
# their lessons' exercises still run by default (tests/test_lessons.py).
SLOW: set[str] = {"07_pretraining", "08_lora", "13_learning_rate_and_neuromodulation", "11_learner"}


def _param(path: pathlib.Path):
    marks = [pytest.mark.slow] if path.stem in SLOW else []
    return pytest.param(path, id=path.stem, marks=marks)


@pytest.mark.parametrize("path", [_param(p) for p in NOTEBOOKS])
def test_notebook_runs(path: pathlib.Path, monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    monkeypatch.setenv("MINIMAC_FAST", "1")
    nb = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(nb, timeout=600, kernel_name="python3",
                                     resources={"metadata": {"path": str(path.parent)}})
    client.execute()
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.output_type == "error"]
    assert not errors, f"{path.name}: {errors[0]['ename']}: {errors[0]['evalue']}"


def test_every_notebook_is_committed_without_outputs():
    nbformat = pytest.importorskip("nbformat")
    for path in NOTEBOOKS:
        nb = nbformat.read(path, as_version=4)
        dirty = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and (c.get("outputs") or c.get("execution_count"))]
        assert not dirty, f"{path.name} has outputs in cells {dirty}: clear them before committing"
