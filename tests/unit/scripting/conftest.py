"""Fixtures for the scripting tests: scripts that are closed afterwards, and rooms."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from lua_mirror import Room, steps_source

from gameserver.scripting import LuaRoomScript


@pytest.fixture
def make_script() -> Iterator[Callable[..., LuaRoomScript]]:
    scripts: list[LuaRoomScript] = []

    def make(
        source: str,
        *,
        name: str = "test.lua",
        memory_limit: int = 16 << 20,
        instruction_limit: int = 200_000,
        **options: Any,
    ) -> LuaRoomScript:
        script = LuaRoomScript(
            name,
            source,
            room_id="room-1",
            memory_limit=memory_limit,
            instruction_limit=instruction_limit,
            **options,
        )
        scripts.append(script)
        return script

    yield make
    for script in scripts:
        script.close()


@pytest.fixture
def make_room(make_script: Callable[..., LuaRoomScript]) -> Callable[..., Room]:
    def make(*steps: str, prelude: str = "") -> Room:
        return Room(make_script(steps_source(*steps, prelude=prelude)))

    return make
