"""The `core` fixture: every test here runs on both kernel implementations."""

from __future__ import annotations

from types import ModuleType

import pytest

from gameserver import _core_py

try:
    from gameserver import _core
except ImportError:  # not built: `python setup.py build_ext --inplace`
    _core = None


# Session scope: the modules are immutable, and hypothesis refuses
# function-scoped fixtures under @given.
@pytest.fixture(scope="session", params=["cython", "python"])
def core(request: pytest.FixtureRequest) -> ModuleType:
    if request.param == "python":
        return _core_py
    if _core is None:
        pytest.skip("gameserver._core is not built (python setup.py build_ext --inplace)")
    return _core


@pytest.fixture(scope="session")
def both() -> tuple[ModuleType, ModuleType]:
    """(cython, python), for tests that check the two agree."""
    if _core is None:
        pytest.skip("gameserver._core is not built (python setup.py build_ext --inplace)")
    return _core, _core_py
