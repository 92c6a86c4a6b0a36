"""Where room scripts come from: `name` → Lua source.

An app's uploaded scripts (the admin API; the active version of each) come
first; then the `--scripts-dir` folders, then the built-in set (the
repository's `scripts/` folder), so a game can ship its own `arena.lua`.
Sources are read when a room is created, so a new version or an edited file
needs no restart (running rooms keep the version they started with).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from gameserver.errors import RoomError, ScriptError
from gameserver.scripting.lua_room import LuaRoomScript
from gameserver.storage.base import ScriptStore

__all__ = ["ScriptLibrary", "SCRIPT_NAME", "compile_error"]

SCRIPT_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
MAX_SCRIPT_BYTES = 1024 * 1024


class ScriptLibrary:
    def __init__(self, dirs: Sequence[Path], store: ScriptStore | None = None) -> None:
        self.dirs = tuple(dirs)
        self.store = store

    def source(self, name: str, app_id: str | None = None) -> str:
        """The source of script `name` for `app_id`, or RoomError `script_not_found`."""
        if self.store is not None and app_id is not None:
            active = self.store.active_version(app_id, name)
            if active is not None:
                uploaded = self.store.version(app_id, name, active)
                if uploaded is not None:
                    return uploaded.source
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


def compile_error(
    name: str, source: str, *, memory_limit: int, instruction_limit: int
) -> ScriptError | None:
    """Load `source` in a throwaway sandbox: the error a room would get, or None."""
    try:
        LuaRoomScript(
            f"{name}.lua",
            source,
            room_id="compile-check",
            memory_limit=memory_limit,
            instruction_limit=instruction_limit,
        ).close()
    except ScriptError as exc:
        return exc
    return None
