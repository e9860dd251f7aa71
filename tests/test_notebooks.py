"""The lesson notebooks: each executes top to bottom in fast mode, and its committed outputs belong to its code.

`MINIMAC_FAST=1` shrinks sizes and steps. A notebook that raises fails its test. Notebooks that take longer than
about a minute even in fast mode are listed in SLOW and run only in the opt-in pass (`pytest -m slow`).
Notebooks are committed with their outputs, made by `python scripts/run_notebooks.py` (fast mode), which stores a
hash of the code cells in the metadata; `test_committed_outputs_match_the_code` recomputes it, so a code cell edited
without running the script again fails here (markdown edits do not count).
"""
import importlib.util
import pathlib

import pytest

ROOT = pathlib.Path(__file__).parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
# Measured on the 2-core CI machine: these compile full training steps (or build the cached base model) and take
# minutes even in fast mode; their lessons' exercises still run by default (tests/test_lessons.py).
SLOW: set[str] = {"07_pretraining", "08_lora", "11_learner", "13_learning_rate_and_neuromodulation",
                  "appendix_speed"}


def _script():
    spec = importlib.util.spec_from_file_location("run_notebooks", ROOT / "scripts" / "run_notebooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _param(path: pathlib.Path):
    marks = [pytest.mark.slow] if path.stem in SLOW else []
    return pytest.param(path, id=path.stem, marks=marks)


@pytest.mark.parametrize("path", [_param(p) for p in NOTEBOOKS])
def test_notebook_runs(path: pathlib.Path):
    pytest.importorskip("nbformat")
    pytest.importorskip("nbclient")
    nb, _ = _script().execute(path)      # MINIMAC_FAST=1, from notebooks/, the file itself untouched
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.output_type == "error"]
    assert not errors, f"{path.name}: {errors[0]['ename']}: {errors[0]['evalue']}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_committed_outputs_match_the_code(path: pathlib.Path):
    nbformat = pytest.importorskip("nbformat")
    nb = nbformat.read(path, as_version=4)
    why = _script().stale(nb)
    assert why is None, f"{path.name}: committed outputs are stale ({why}); run python scripts/run_notebooks.py {path}"
    assert any(o.get("output_type") == "display_data" for c in nb.cells if c.cell_type == "code"
               for o in c.get("outputs", [])), f"{path.name} shows no figure: every lesson has at least one diagram"


def test_code_hash_sees_code_and_ignores_markdown():
    nbformat = pytest.importorskip("nbformat")
    run_notebooks = _script()
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# a"), nbformat.v4.new_code_cell("x = 1")])
    h = run_notebooks.code_hash(nb)
    nb.cells[0].source = "# another title"
    nb.cells[1].outputs = [nbformat.v4.new_output("stream", text="anything")]
    assert run_notebooks.code_hash(nb) == h
    nb.cells[1].source = "x = 2"
    assert run_notebooks.code_hash(nb) != h
    nb.metadata["minimac"] = {"code_sha256": h}
    nb.cells[1].execution_count = 1
    assert "changed" in run_notebooks.stale(nb)
    nb.metadata["minimac"]["code_sha256"] = run_notebooks.code_hash(nb)
    assert run_notebooks.stale(nb) is None
