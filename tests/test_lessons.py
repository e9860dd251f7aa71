"""Every classroom exercise's tests pass against its reference solution.

Students run `pytest lessons/NN_topic` against their own `exercise.py`; here we run the same tests with
`MINIMAC_SOLUTION=1` so a teacher knows each exercise can be passed.
"""
import os
import pathlib
import subprocess
import sys

import pytest

LESSONS = sorted(p for p in (pathlib.Path(__file__).parent.parent / "lessons").iterdir() if (p / "test_exercise.py").exists())


@pytest.mark.parametrize("lesson", LESSONS, ids=[p.name for p in LESSONS])
def test_lesson_solution_passes(lesson: pathlib.Path):
    for name in ("README.md", "exercise.py", "solution.py"):
        assert (lesson / name).exists(), f"{lesson.name} has no {name}"
    env = {**os.environ, "MINIMAC_SOLUTION": "1"}
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(lesson)],
                          env=env, capture_output=True, text=True, cwd=lesson.parent.parent)
    assert proc.returncode == 0, f"{lesson.name} solution fails its tests:\n{proc.stdout[-3000:]}\n{proc.stderr[-2000:]}"


@pytest.mark.parametrize("lesson", LESSONS, ids=[p.name for p in LESSONS])
def test_lesson_exercise_starts_as_stubs(lesson: pathlib.Path):
    """The exercise file must leave work to do: at least one stub raises NotImplementedError."""
    assert "NotImplementedError" in (lesson / "exercise.py").read_text()
