"""Where room scripts come from: `name` → Lua source.

The built-in set is the repository's `scripts/` folder; `--scripts-dir`
folders come first, so a game can ship its own `arena.lua`. Files are read
when a room is created, so editing a script needs no restart (running rooms
keep the version they started with).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from gameserver.errors import RoomError

__all__ = ["ScriptLibrary", "SCRIPT_NAME"]

SCRIPT_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
MAX_SCRIPT_BYTES = 1024 * 1024


class ScriptLibrary:
    def __init__(self, dirs: Sequence[Path]) -> None:
        self.dirs = tuple(dirs)

    def source(self, name: str) -> str:
        """The source of script `name`, or RoomError `script_not_found`."""
        if SCRIPT_NAME.fullmatch(name):
            for folder in self.dirs:
                path = folder / f"{name}.lua"
                if path.is_file():
                    if path.stat().st_size > MAX_SCRIPT_BYTES:
                        raise RoomError(
                            f"script {name!r} is larger than {MAX_SCRIPT_BYTES} bytes",
                            code="script_not_found",
                        )
                    return path.read_text(encoding="utf-8", errors="replace")
        raise RoomError(f"no script named {name[:64]!r}", code="script_not_found")

    def names(self) -> list[str]:
        found = {
            path.stem
            for folder in self.dirs
            if folder.is_dir()
            for path in folder.glob("*.lua")
            if SCRIPT_NAME.fullmatch(path.stem)
        }
        return sorted(found)
