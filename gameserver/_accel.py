"""The one place that picks the state-diff kernel: compiled, or pure Python.

Import the kernel from here, never from `_core` or `_core_py` directly::

    from gameserver._accel import IMPL, TickClock, commit, diff

`IMPL` is "cython" when the extension built by `setup.py build_ext` loaded
and "python" otherwise; the app logs it at start-up so that a silent
fallback (a missing or stale build) shows.  `GAMESERVER_PURE=1` in the
environment forces the pure-Python twin, e.g. to compare the two or to
debug with pdb.  Both behave identically; only speed differs.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

__all__ = [
    "IMPL",
    "escape_key",
    "unescape_key",
    "join_path",
    "split_path",
    "diff",
    "apply",
    "commit",
    "TickClock",
]

IMPL: str

if TYPE_CHECKING:
    # The type checker sees the compiled module through _core.pyi; the twin
    # has the same signatures.
    from gameserver._core import (
        TickClock,
        apply,
        commit,
        diff,
        escape_key,
        join_path,
        split_path,
        unescape_key,
    )
else:
    if os.environ.get("GAMESERVER_PURE", "") not in ("", "0"):
        from gameserver import _core_py as _impl

        IMPL = "python"
    else:
        try:
            from gameserver import _core as _impl

            IMPL = "cython"
        except ImportError:
            from gameserver import _core_py as _impl

            IMPL = "python"
    globals().update({name: getattr(_impl, name) for name in __all__ if name != "IMPL"})
