"""Every classroom exercise's tests pass against its reference solution, and an untouched exercise says what is left.

Students run `pytest lessons/NN_topic` against their own `exercise.py`; here we run the same tests with
`MINIMAC_SOLUTION=1` so a teacher knows each exercise can be passed. An untouched exercise prints one line per
unwritten stage (lessons/conftest.py), and `-k stageN` selects a stage in every lesson.
"""
import ast
import os
import pathlib
import re
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).parent.parent
LESSONS = sorted(p for p in (ROOT / "lessons").iterdir() if (p / "test_exercise.py").exists())
STUB = re.compile(r'NotImplementedError\("([^"]*)"\)')


def _pytest(lesson: pathlib.Path, *args: str, solution: bool) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "MINIMAC_SOLUTION"}
    if solution:
        env["MINIMAC_SOLUTION"] = "1"
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(lesson), *args],
                          env=env, capture_output=True, text=True, cwd=ROOT, check=False)


@pytest.mark.parametrize("lesson", LESSONS, ids=[p.name for p in LESSONS])
def test_lesson_solution_passes(lesson: pathlib.Path):
    for name in ("README.md", "exercise.py", "solution.py"):
        assert (lesson / name).exists(), f"{lesson.name} has no {name}"
    proc = _pytest(lesson, solution=True)
    assert proc.returncode == 0, \
        f"{lesson.name} solution fails its tests:\n{proc.stdout[-3000:]}\n{proc.stderr[-2000:]}"


@pytest.mark.parametrize("lesson", LESSONS, ids=[p.name for p in LESSONS])
def test_lesson_stubs_and_tests_are_staged(lesson: pathlib.Path):
    """Every stub says its stage ("Stage 2: name"), every test is named test_stageN_..., and each stage has tests."""
    stubs = STUB.findall((lesson / "exercise.py").read_text())
    assert stubs, f"{lesson.name}: the exercise leaves no stub to write"
    bad = [s for s in stubs if not re.match(r"Stage \d+: [\w.]+", s)]
    assert not bad, f"{lesson.name}: stub messages {bad} do not read 'Stage N: name'"
    tree = ast.parse((lesson / "test_exercise.py").read_text())
    tests = [f.name for f in tree.body if isinstance(f, ast.FunctionDef) and f.name.startswith("test_")]
    unstaged = [t for t in tests if not re.match(r"test_stage\d+_", t)]
    assert not unstaged, f"{lesson.name}: tests {unstaged} have no stage in their name, so -k stageN misses them"
    stub_stages = {int(re.match(r"Stage (\d+)", s).group(1)) for s in stubs}
    test_stages = {int(re.match(r"test_stage(\d+)_", t).group(1)) for t in tests}
    assert stub_stages <= test_stages, f"{lesson.name}: stages {sorted(stub_stages - test_stages)} have no test"


def test_untouched_exercise_prints_one_line_per_stage():
    lesson = ROOT / "lessons" / "03_rope"
    proc = _pytest(lesson, solution=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, "unwritten stages leave the exercise failing"
    for line in ("stage 1 not written yet: inv_frequencies, rope_tables",
                 "stage 2 not written yet: rotate_half, apply_rope",
                 "stage 3 not written yet: apply_rope_interleaved, interleaved_permutation",
                 "stage 4 not written yet: RotaryEmbedding.__init__"):
        assert line in out.splitlines(), f"missing {line!r} in:\n{out}"
    assert "Traceback" not in out and "NotImplementedError" not in out, out
    assert len(out.splitlines()) < 10, out
    one = _pytest(lesson, "-k", "stage2", solution=False)
    assert [ln for ln in one.stdout.splitlines() if "not written yet" in ln] == \
        ["stage 2 not written yet: rotate_half, apply_rope"], one.stdout
