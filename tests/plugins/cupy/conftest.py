"""Fixtures of the CuPy backend's tests: the backend's host code with emulated kernels on the CPU."""

from __future__ import annotations

import pytest

from .emulation.emulator import gxx


@pytest.fixture(scope="session")
def emulated():
    """The test-only backend running the CuPy backend's host code and kernels on the CPU."""
    if gxx() is None:
        pytest.skip("g++ is not installed: the kernels cannot be emulated on the CPU")
    from .emulation.backend import EmulatedCupyBackend

    return EmulatedCupyBackend()
