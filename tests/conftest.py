"""Shared fixtures: fail early with a clear message if tinygrad cannot run here; the fast path switched on, as the
command-line programs and the learner do (tests/test_speed_paths.py compares it with the plain path)."""
import pytest

import minimac.fast
from minimac.device import check_device

minimac.fast.install()


@pytest.fixture(scope="session", autouse=True)
def _device():
    return check_device()
