"""Shared fixture and stub report for the classroom exercises.

Each lesson folder holds `exercise.py` (stubs a student fills in), `solution.py` (the reference answer) and
`test_exercise.py`. The tests ask for the `ex` fixture, which is the student's `exercise.py` by default, or
`solution.py` when `MINIMAC_SOLUTION=1` (CI runs the tests that way to prove they can pass):

    pytest lessons/02_rmsnorm                      # checks your exercise.py
    pytest lessons/02_rmsnorm -k stage2            # only the tests of stage 2
    MINIMAC_SOLUTION=1 pytest lessons/02_rmsnorm   # checks the reference solution

A stub raises `NotImplementedError("Stage 2: rms_norm")`. A test that reaches one is reported as skipped, without
a traceback, and the run ends with one line per unwritten stage, e.g. `stage 2 not written yet: rms_norm`, and
a failing exit status (the exercise is not done). Against the solution, a NotImplementedError is an ordinary failure.
"""
import importlib.util
import os
import pathlib
import re

import pytest

STUB = re.compile(r"Stage (\d+): ([\w.]+)")
_unwritten: dict[int, list[str]] = {}  # stage -> stub names a test ran into, in the order met


def solution_mode() -> bool:
    return os.environ.get("MINIMAC_SOLUTION") == "1"


def load_lesson_module(folder: pathlib.Path, solution: bool):
    name = "solution" if solution else "exercise"
    path = folder / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"lesson_{folder.name}_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def ex(request):
    return load_lesson_module(pathlib.Path(request.path).parent, solution_mode())


def _skip_if_stub(error: NotImplementedError) -> None:
    """Skip the running test if `error` comes from an exercise stub ("Stage N: name"); otherwise do nothing."""
    m = STUB.match(str(error))
    if m is None or solution_mode():
        return
    stage, name = int(m.group(1)), m.group(2)
    names = _unwritten.setdefault(stage, [])
    if name not in names:
        names.append(name)
    pytest.skip(f"stage {stage} not written yet: {name}")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item):
    try:
        return (yield)
    except NotImplementedError as e:   # a fixture built something from a stub
        _skip_if_stub(e)
        raise


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    try:
        return (yield)
    except NotImplementedError as e:
        _skip_if_stub(e)
        raise


def pytest_terminal_summary(terminalreporter):
    for stage in sorted(_unwritten):
        terminalreporter.write_line(f"stage {stage} not written yet: {', '.join(_unwritten[stage])}")


def pytest_sessionfinish(session):
    if _unwritten and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
