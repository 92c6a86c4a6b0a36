"""One arena room-tick through the real game service, without sockets.

    .venv/bin/python bench/roomtick.py

A room of 8 playing `arena` in a `GameService` on a manual clock: per
room-tick, 3 `move` frames are received (what 8 players moving at 20 Hz send
per 64 Hz tick), then the tick runs (actions and onTick in Lua, the delta
published to 8 members) and each member's frame is taken. This is the
service's share of a room-tick in the arena benchmark, without the event
loop and the sockets; its figures move by a few percent run to run, where
the arena's move by ten. Prints one JSON line: µs per room-tick, the best of
`--repeat` runs of `--number` room-ticks, then the median of `--rounds` such
figures (`bench/ab.py`'s way of judging a change applies here too: compare
runs of the old and new code taken in turns).
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


def arena_room_tick():
    """A function running one room-tick as described above."""
    service, clock = make_game(tick_rate=64)
    sessions = [service.open_session("app", f"p{i}", None, None) for i in range(8)]
    create = {"roomId": "r", "scriptName": "arena"}
    send(service, sessions[0], {"type": "create_room", "requestId": 1, "config": create})
    for session in sessions[1:]:
        send(service, session, {"type": "join_room", "requestId": 1, "roomId": "r"})
    tick(service, clock)
    for session in sessions:
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

    def room_tick() -> None:
        for _ in range(3):
            i = next(turn)
            service.receive(sessions[i % 8], moves[i])
        clock.now = max(clock.now, service.next_deadline())
        service.run_ticks(clock.now)
        for session in service.take_pending():
            session.take_frame()

    return room_tick


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--number", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    room_tick = arena_room_tick()
    figures = [
        min(timeit.repeat(room_tick, number=args.number, repeat=args.repeat)) / args.number * 1e6
        for _ in range(args.rounds)
    ]
    print(
        json.dumps(
            {
                "bench": "roomtick",
                "core": _accel.IMPL,
                "us_per_room_tick": round(statistics.median(figures), 1),
                "rounds": [round(f, 1) for f in figures],
            }
        )
    )


if __name__ == "__main__":
    main()
