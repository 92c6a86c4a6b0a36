"""Arena room-ticks through the real game service, without sockets.

    .venv/bin/python bench/roomtick.py [--rooms 48]

Rooms of 8 playing `arena` in a `GameService` on a manual clock: per
room-tick, 3 `move` frames are received (what 8 players moving at 20 Hz send
per 64 Hz tick), then the tick runs (actions and onTick in Lua, the delta
published to 8 members) and each member's frame is taken. This is the
service's share of a room-tick in the arena benchmark, without the event
loop and the sockets; its figures move by a few percent run to run, where
the arena's move by ten. With `--rooms 1` (the default) one room's data
stays in the CPU's caches; `--rooms 48` ticks 48 rooms together, as the
arena does at 384 players, and each room finds its data evicted by the
others. Prints one JSON line: µs per room-tick, the best of `--repeat`
timings, then the median of `--rounds` such figures (`bench/ab.py --bench
roomtick` compares two versions with it, in turns).
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import sys
import timeit
from pathlib import Path

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
        clock.now = max(clock.now, service.next_deadline())
        service.run_ticks(clock.now)
        for session in service.take_pending():
            session.take_frame()

    return service, tick_group


GC_ON = "import gc; gc.enable()"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--rooms",
        type=int,
        default=1,
        help="rooms ticking together (the arena at 384 players has 48): "
        "their data no longer fits the CPU's caches",
    )
    parser.add_argument("--number", type=int, default=2000, help="room-ticks per timing")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    service, tick_group = arena_tick_group(args.rooms)
    groups = max(1, args.number // args.rooms)
    figures = [
        # timeit turns the garbage collector off; the server runs with it.
        min(timeit.repeat(tick_group, GC_ON, number=groups, repeat=args.repeat))
        / (groups * args.rooms)
        * 1e6
        for _ in range(args.rounds)
    ]
    print(
        json.dumps(
            {
                "bench": "roomtick",
                "core": _accel.IMPL,
                "rooms": args.rooms,
                "us_per_room_tick": round(statistics.median(figures), 1),
                # Wall time in the Lua calls, over every room-tick run (the arena reports the same).
                "lua_us_per_room_tick": round(
                    service.stats.script_seconds / service.scheduler.stats.ticks * 1e6, 1
                ),
                "rounds": [round(f, 1) for f in figures],
            }
        )
    )


if __name__ == "__main__":
    main()
