"""Shared fixtures: fail early with a clear message if tinygrad cannot run here."""
import pytest

from minimac.device import check_device


@pytest.fixture(scope="session", autouse=True)
def _device():
    return check_device()
