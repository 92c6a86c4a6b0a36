"""Arena room-ticks through the real game service, without sockets.

    .venv/bin/python bench/roomtick.py [--rooms 48]

Rooms of 8 playing `arena` in a `GameService` on a manual clock: per
room-tick, 3 `move` frames are received (a little over the arena's 2.5:
8 players moving at 20 Hz, 64 ticks a second), then the tick runs (actions and onTick in Lua, the delta
published to 8 members) and each member's frame is taken. This is the
service's share of a room-tick in the arena benchmark, without the event
loop and the sockets; its figures move by a few percent run to run, where
the arena's move by ten (over 6 or more alternated pairs: `bench/ab.py
--bench roomtick --rounds 6` compares two versions with it). With `--rooms
1` (the default) one room's data likely stays in the CPU's caches; `--rooms
48` ticks 48 rooms together, as the arena does at 384 players. `--gap-ms 4`
sleeps after each tick group, as the server idles between its ticks: on a
virtual machine the work after an idle stretch runs slower. Prints one
JSON line: µs per room-tick and the part of it in the Lua calls, from the
fastest of `--repeat` timings, then the median of `--rounds` such figures.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from pathlib import Path
from time import perf_counter, sleep

import msgspec

import gameserver
from gameserver import _accel

# The test kit of the tree `gameserver` comes from (bench/ab.py runs this
# file on an older tree too).
sys.path.insert(0, str(Path(gameserver.__file__).resolve().parent.parent / "tests" / "unit"))
from service_kit import frames, make_game, send, tick  # noqa: E402


def arena_tick_group(rooms: int):
    """The service, and a function running one tick of its `rooms` arena
    rooms as described above."""
    service, clock = make_game(tick_rate=64)
    seats = []  # the sessions of each room's 8 players
    for r in range(rooms):
        sessions = [service.open_session("app", f"p{r}-{i}", None, None) for i in range(8)]
        create = {"roomId": f"r{r}", "scriptName": "arena"}
        send(service, sessions[0], {"type": "create_room", "requestId": 1, "config": create})
        for session in sessions[1:]:
            send(service, session, {"type": "join_room", "requestId": 1, "roomId": f"r{r}"})
        seats += sessions
    tick(service, clock)
    for session in seats:
        frames(service, session)
        session.messages = None  # no rate limit: this sends faster than players may
    moves = [
        msgspec.msgpack.encode(
            {
                "type": "action",
                "action": {"type": "move", "data": {"x": i * 37 % 1000, "y": i * 91 % 1000 + 0.5}},
            }
        )
        for i in range(1000)
    ]
    turn = itertools.cycle(range(1000))

    def tick_group() -> None:
        for r in range(rooms):
            for _ in range(3):
                i = next(turn)
                service.receive(seats[r * 8 + i % 8], moves[i])
        # Each room ticks once: with tick phases (config.tick_phases), over
        # several deadlines.
        ticks = service.scheduler.stats
        target = ticks.ticks + rooms
        while ticks.ticks < target:
            clock.now = max(clock.now, service.next_deadline())
            service.run_ticks(clock.now)
        for session in service.take_pending():
            session.take_frame()

    return service, tick_group


def timing(service, tick_group, groups: int, gap: float) -> tuple[float, float]:
    """µs per room-tick of `groups` tick groups, and of it in the Lua calls;
    with a `gap` (seconds) of sleep after each group, not counted."""
    lua, ticks = service.stats.script_seconds, service.scheduler.stats.ticks
    elapsed = 0.0
    for _ in range(groups):
        started = perf_counter()
        tick_group()
        elapsed += perf_counter() - started
        if gap:
            sleep(gap)
    room_ticks = service.scheduler.stats.ticks - ticks
    return elapsed / room_ticks * 1e6, (service.stats.script_seconds - lua) / room_ticks * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--rooms",
        type=int,
        default=1,
        help="rooms ticking together (the arena at 384 players has 48)",
    )
    parser.add_argument("--number", type=int, default=2000, help="room-ticks per timing")
    parser.add_argument(
        "--gap-ms",
        type=float,
        default=0.0,
        help="sleep this long after each tick group, as the server idles between them "
        "(the sleep is not counted)",
    )
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    service, tick_group = arena_tick_group(args.rooms)
    groups = max(1, args.number // args.rooms)
    figures = [
        min(timing(service, tick_group, groups, args.gap_ms / 1000) for _ in range(args.repeat))
        for _ in range(args.rounds)
    ]
    middle = sorted(figures)[len(figures) // 2]
    print(
        json.dumps(
            {
                "bench": "roomtick",
                "core": _accel.IMPL,
                "rooms": args.rooms,
                "gap_ms": args.gap_ms,
                "us_per_room_tick": round(middle[0], 1),
                "lua_us_per_room_tick": round(middle[1], 1),  # of the same timing
                "rounds": [round(f[0], 1) for f in figures],
            }
        )
    )


if __name__ == "__main__":
    main()
