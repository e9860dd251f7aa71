"""Shared fixture for the classroom exercises.

Each lesson folder holds `exercise.py` (stubs a student fills in), `solution.py` (the reference answer) and
`test_exercise.py`. The tests ask for the `ex` fixture, which is the student's `exercise.py` by default, or
`solution.py` when `MINIMAC_SOLUTION=1` (CI runs the tests that way to prove they can pass):

    pytest lessons/02_rmsnorm                      # checks your exercise.py
    MINIMAC_SOLUTION=1 pytest lessons/02_rmsnorm   # checks the reference solution
"""
import importlib.util
import os
import pathlib

import pytest


def load_lesson_module(folder: pathlib.Path, solution: bool):
    name = "solution" if solution else "exercise"
    path = folder / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"lesson_{folder.name}_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def ex(request):
    return load_lesson_module(pathlib.Path(request.path).parent, os.environ.get("MINIMAC_SOLUTION") == "1")
