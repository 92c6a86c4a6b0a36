"""What permessage-deflate would buy and cost on the standard workload.

    .venv/bin/python bench/compression.py [--seconds 20]

Plays one `arena` room of 8 in process (the real GameService on a manual
clock, so the frames are byte for byte what the server sends; moves at
20 Hz per player with random positions, as bench/arena.py sends), and
collects what one member receives, in each encoding. Then, for each
encoding, it compresses that stream the two ways permessage-deflate
(RFC 7692) allows:

- `deflate_per_connection`: one compressor per connection, the window kept
  between frames (what browsers and websockets negotiate by default). Every
  frame is compressed once per member: the CPU is per player.
- `deflate_per_frame`: each frame alone (`server_no_context_takeover`), so
  one compressed frame could go to every member: the CPU is per room.

Prints one JSON line: bytes per player-second on the wire (WebSocket header
included) and compression CPU in µs per frame, with and without.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
import zlib
from pathlib import Path

import msgspec

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # this checkout's build

from gameserver.config import Config  # noqa: E402
from gameserver.scripting.library import ScriptLibrary  # noqa: E402
from gameserver.service import GameService  # noqa: E402

ROOM_SIZE = 8
MOVE_HZ = 20
TICK_HZ = 64


def ws_header(n: int) -> int:
    return 2 if n < 126 else 4 if n < 65536 else 10


def arena_frames(encoding: str, seconds: float, seed: int = 1) -> list[bytes]:
    """What one member of an 8-player arena room receives, frame by frame."""
    now = [100.0]
    config = Config(messages_per_second=1e9, message_burst=10**9)
    service = GameService(
        config,
        ScriptLibrary(config.scripts_dirs),
        clock=lambda: now[0],
        wall_ms=lambda: int(now[0] * 1000),
    )
    players = [service.open_session("app", f"p{i}", encoding, None) for i in range(ROOM_SIZE)]
    create = {"type": "create_room", "config": {"roomId": "r", "scriptName": "arena"}}
    service.receive(players[0], msgspec.msgpack.encode(create))
    for player in players[1:]:
        service.receive(player, msgspec.msgpack.encode({"type": "join_room", "roomId": "r"}))
    rng = random.Random(seed)
    listener = players[-1]
    frames: list[bytes] = []
    moves_per_tick = ROOM_SIZE * MOVE_HZ / TICK_HZ
    owed = 0.0
    for _ in range(int(seconds * TICK_HZ)):
        owed += moves_per_tick
        while owed >= 1:
            owed -= 1
            x = rng.randrange(1, 1000)
            move = {
                "type": "action",
                "action": {"type": "move", "data": {"x": x, "y": x * 7919 % 1000}},
            }
            service.receive(rng.choice(players), msgspec.msgpack.encode(move))
        now[0] = max(now[0], service.next_deadline())
        service.run_ticks(now[0])
        service.take_pending()
        for player in players:
            frame = player.take_frame()
            if player is listener and frame is not None:
                frames.append(frame)
    return frames[TICK_HZ:]  # after the joins


def deflate(frames: list[bytes], keep_window: bool) -> tuple[list[int], float]:
    """Compressed sizes, and CPU seconds, as a permessage-deflate sender makes them."""
    sizes = []
    start = time.process_time()
    compressor = zlib.compressobj(6, zlib.DEFLATED, -15)
    for frame in frames:
        if not keep_window:
            compressor = zlib.compressobj(6, zlib.DEFLATED, -15)
        data = compressor.compress(frame) + compressor.flush(zlib.Z_SYNC_FLUSH)
        sizes.append(len(data) - 4)  # the 00 00 ff ff tail is not sent (RFC 7692)
    return sizes, time.process_time() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=20.0, help="simulated seconds of play")
    args = parser.parse_args()
    result: dict[str, object] = {"bench": "compression", "simulated_s": args.seconds}
    for encoding in ("msgpack", "compact"):
        frames = arena_frames(encoding, args.seconds)
        seconds = len(frames) / TICK_HZ
        plain = sum(len(f) + ws_header(len(f)) for f in frames)
        result[f"{encoding}_bytes_per_player_s"] = round(plain / seconds)
        for name, keep in (("deflate_per_connection", True), ("deflate_per_frame", False)):
            best_cpu, sizes = float("inf"), []
            for _ in range(5):  # the fastest of a few passes: the rest is the neighbours
                sizes, cpu = deflate(frames, keep)
                best_cpu = min(best_cpu, cpu)
            wire = sum(n + ws_header(n) for n in sizes)
            result[f"{encoding}_{name}_bytes_per_player_s"] = round(wire / seconds)
            result[f"{encoding}_{name}_us_per_frame"] = round(best_cpu / len(frames) * 1e6, 2)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
