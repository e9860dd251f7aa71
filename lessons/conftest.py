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
_unwritten: dict[str, dict[int, list[str]]] = {}  # lesson folder -> stage -> stub names met, in the order met


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


def _skip_if_stub(item, error: NotImplementedError) -> None:
    """Skip the running test if `error` comes from an exercise stub ("Stage N: name"); otherwise do nothing."""
    m = STUB.match(str(error))
    if m is None or solution_mode():
        return
    stage, name = int(m.group(1)), m.group(2)
    names = _unwritten.setdefault(item.path.parent.name, {}).setdefault(stage, [])
    if name not in names:
        names.append(name)
    pytest.skip(f"stage {stage} not written yet: {name}")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item):
    try:
        return (yield)
    except NotImplementedError as e:   # a fixture built something from a stub
        _skip_if_stub(item, e)
        raise


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    try:
        return (yield)
    except NotImplementedError as e:
        _skip_if_stub(item, e)
        raise


def pytest_terminal_summary(terminalreporter):
    for lesson, stages in sorted(_unwritten.items()):
        prefix = f"{lesson}: " if len(_unwritten) > 1 else ""   # one lesson, the usual case: just its stages
        for stage in sorted(stages):
            terminalreporter.write_line(f"{prefix}stage {stage} not written yet: {', '.join(stages[stage])}")


def pytest_sessionfinish(session):
    if _unwritten and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
