"""Micro-benchmark of room scripts: µs per room-tick for arena and tag at 8
players, and what the budget machinery costs on an empty hook and a loop.

    .venv/bin/python bench/script_micro.py

Prints one JSON line. Each figure includes the one Lua call per tick and per
action (or per batch of actions, as a room makes it) and the room-command
check that follows each call.
"""

from __future__ import annotations

import json
import timeit
from pathlib import Path

from gameserver.scripting.lua_room import LuaRoomScript

SCRIPTS = Path(__file__).resolve().parent.parent / "scripts"
LIMITS = {"memory_limit": 32 << 20, "instruction_limit": 1_000_000}


def room_with_8_players(name: str) -> LuaRoomScript:
    script = LuaRoomScript(
        f"{name}.lua", (SCRIPTS / f"{name}.lua").read_text(), room_id="r", **LIMITS
    )
    script.init({"tickRate": 64, "metadata": {}})
    for i in range(8):
        script.player_join({"clientId": f"p{i}", "joinedAt": 0, "metadata": {}})
    script.tick(1 / 64, 1)
    script.take_commands()
    return script


def per_call_us(fn, number: int) -> float:
    return round(timeit.timeit(fn, number=number) / number * 1e6, 1)


def main() -> None:
    arena = room_with_8_players("arena")

    def arena_two_moves_and_tick() -> None:
        for player, x in (("p1", 1), ("p2", 3)):
            arena.action(player, {"type": "move", "data": {"x": x, "y": 2}}, 3)
            arena.take_commands()
        arena.tick(1 / 64, 3)
        arena.take_commands()

    moves = [
        ("p1", {"type": "move", "data": {"x": 1, "y": 2}}),
        ("p2", {"type": "move", "data": {"x": 3, "y": 2}}),
    ]

    def arena_two_moves_in_one_call_and_tick() -> None:  # two calls: a room before D.step
        arena.actions(moves, 3)
        arena.take_commands()
        arena.tick(1 / 64, 3)
        arena.take_commands()

    def arena_two_moves_and_tick_in_one_step() -> None:  # what a room does: one call
        arena.step(moves, 1 / 64, 3)

    def arena_tick() -> None:
        arena.tick(1 / 64, 4)
        arena.take_commands()

    tag = room_with_8_players("tag")
    for i in range(8):
        tag.action(f"p{i}", {"type": "steer", "data": {"vx": 50 + i, "vy": -40}}, 2)
    tick = iter(range(10, 10**9))

    def tag_tick() -> None:  # every player moves: the state changes every tick
        tag.tick(1 / 64, next(tick))
        tag.take_commands()

    empty = LuaRoomScript("e.lua", "function onTick(room) end", room_id="r", **LIMITS)
    loop = LuaRoomScript(
        "l.lua",
        "function onTick(room) local x = 0 for i = 1, 100000 do x = x + i end end",
        room_id="r",
        **LIMITS,
    )
    print(
        json.dumps(
            {
                "bench": "script_micro",
                "arena_2_moves_and_tick_us": per_call_us(arena_two_moves_and_tick, 20000),
                "arena_2_moves_in_one_call_and_tick_us": per_call_us(
                    arena_two_moves_in_one_call_and_tick, 20000
                ),
                "arena_2_moves_and_tick_in_one_step_us": per_call_us(
                    arena_two_moves_and_tick_in_one_step, 20000
                ),
                "arena_tick_only_us": per_call_us(arena_tick, 20000),
                "tag_tick_8_moving_us": per_call_us(tag_tick, 5000),
                "empty_hook_tick_us": per_call_us(lambda: empty.tick(1 / 64, 1), 20000),
                "loop_100k_iterations_us": per_call_us(lambda: loop.tick(1 / 64, 1), 200),
            }
        )
    )


if __name__ == "__main__":
    main()
