"""Memory per connection, per idle room and per seated player.

    .venv/bin/python bench/memory.py --count 400

Starts the server (bench/serve.py) and reads its RSS after each step:
`count` connections that do nothing; then each creates an `arena` room and
leaves it (the rooms stay, empty and paused, for 30 s); then `count` more
connections take seats in the first `count / 8` of those rooms (rooms of 8
that tick; the players read but send nothing).
Prints one JSON line with KiB per connection, per idle room and per seated
player (each step's RSS growth divided by its count).
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import msgspec
import uvloop
from websockets.asyncio.client import ClientConnection, connect

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from arena import rss_mb  # noqa: E402


async def request(ws: ClientConnection, message: dict, reply: str) -> None:
    await ws.send(msgspec.msgpack.encode(message))
    while True:
        frame = msgspec.msgpack.decode(await ws.recv())
        for m in frame if isinstance(frame, list) else [frame]:
            if m.get("type") == reply:
                return
            if m.get("type") == "error":
                raise RuntimeError(m)


async def settle(pid: int) -> float:
    """RSS once it stops moving (allocations of the last step have landed)."""
    last = rss_mb(pid)
    for _ in range(20):
        await asyncio.sleep(0.25)
        now = rss_mb(pid)
        if abs(now - last) < 0.05:
            return now
        last = now
    return last


async def drain(ws: ClientConnection) -> None:
    """Read and drop whatever the room sends (an idle player still reads)."""
    async for _ in ws:
        pass


async def main(count: int) -> dict:
    data_dir = tempfile.mkdtemp(prefix="gs-mem-")
    atexit.register(shutil.rmtree, data_dir, True)  # after the server has stopped
    server = await asyncio.create_subprocess_exec(
        sys.executable, str(HERE / "serve.py"), data_dir,
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert server.stdout is not None
    ready = (await server.stdout.readline()).decode().split()
    url = f"ws://127.0.0.1:{ready[1]}/v1/game/ws?public_key={ready[2]}"
    pid = server.pid

    async def open_(client_id: str) -> ClientConnection:
        ws = await connect(f"{url}&client_id={client_id}", compression=None, max_size=None)
        await ws.recv()  # connected
        return ws

    try:
        warm = await open_("warm-up")  # first room: Lua and the script get loaded
        await request(warm, {"type": "create_room", "requestId": 1,
                             "config": {"roomId": "warm", "scriptName": "arena"}}, "joined")  # fmt: skip
        await request(warm, {"type": "leave_room", "requestId": 2}, "left")
        base = await settle(pid)

        owners = [await open_(f"o{i}") for i in range(count)]
        connected = await settle(pid)

        for i, ws in enumerate(owners):
            config = {"roomId": f"r{i}", "scriptName": "arena", "maxPlayers": 8}
            await request(ws, {"type": "create_room", "requestId": 1, "config": config}, "joined")
            await request(ws, {"type": "leave_room", "requestId": 2}, "left")
        rooms = await settle(pid)

        seated = [await open_(f"p{i}") for i in range(count)]
        for i, ws in enumerate(seated):
            await request(
                ws, {"type": "join_room", "requestId": 1, "roomId": f"r{i // 8}"}, "joined"
            )
        readers = [asyncio.create_task(drain(ws)) for ws in seated]
        players = await settle(pid)
        for task in readers:
            task.cancel()
        result = {
            "bench": "memory",
            "count": count,
            "rss_base_mb": round(base, 1),
            "kib_per_connection": round((connected - base) * 1024 / count, 1),
            "kib_per_idle_room": round((rooms - connected) * 1024 / count, 1),
            "kib_per_seated_player": round((players - rooms) * 1024 / count, 1),
            "unix_time": int(time.time()),
        }
        for ws in [warm, *owners, *seated]:
            ws.transport.abort()
        return result
    finally:
        server.terminate()
        await server.wait()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=400)
    print(json.dumps(uvloop.run(main(parser.parse_args().count))))
