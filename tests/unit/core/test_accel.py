"""gameserver._accel picks the kernel in one place, and says which it picked."""

from __future__ import annotations

import importlib
import os
from collections.abc import Iterator

import pytest

from gameserver import _accel, _core_py

API = ["escape_key", "unescape_key", "join_path", "split_path", "diff", "apply", "commit"]
API += ["TickClock"]


def built() -> bool:
    try:
        importlib.import_module("gameserver._core")
    except ImportError:
        return False
    return True


@pytest.fixture
def reload_accel(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    """Lets a test set GAMESERVER_PURE and reload; restores the module after."""
    yield monkeypatch
    monkeypatch.undo()
    importlib.reload(_accel)


def test_exports_the_whole_api() -> None:
    assert sorted(_accel.__all__) == sorted(["IMPL", *API])
    for name in _accel.__all__:
        assert getattr(_accel, name) is not None
    assert sorted(_core_py.__all__) == sorted(API)


def test_picks_cython_when_built() -> None:
    forced = os.environ.get("GAMESERVER_PURE", "") not in ("", "0")
    expected = "cython" if built() and not forced else "python"
    assert expected == _accel.IMPL  # (ruff takes IMPL for a constant)
    modules = {"cython": "gameserver._core", "python": "gameserver._core_py"}
    assert _accel.diff.__module__ == modules[expected]


@pytest.mark.parametrize("value", ["1", "yes"])
def test_gameserver_pure_forces_python(reload_accel: pytest.MonkeyPatch, value: str) -> None:
    reload_accel.setenv("GAMESERVER_PURE", value)
    importlib.reload(_accel)
    assert _accel.IMPL == "python"
    for name in API:
        assert getattr(_accel, name) is getattr(_core_py, name)


@pytest.mark.parametrize("value", ["", "0"])
def test_gameserver_pure_unset_or_zero_does_not(
    reload_accel: pytest.MonkeyPatch, value: str
) -> None:
    reload_accel.setenv("GAMESERVER_PURE", value)
    importlib.reload(_accel)
    expected = "cython" if built() else "python"
    assert expected == _accel.IMPL  # (ruff takes IMPL for a constant)


def test_both_implementations_have_the_same_api() -> None:
    if not built():
        pytest.skip("gameserver._core is not built")
    compiled = importlib.import_module("gameserver._core")
    assert sorted(compiled.__all__) == sorted(_core_py.__all__)
    for name in API:
        assert callable(getattr(compiled, name))
