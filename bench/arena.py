"""Load benchmark: N clients in rooms of 8 playing `arena` at 64 Hz.

    .venv/bin/python bench/arena.py --clients 256 --duration 20 [--transport picows]

The server runs in its own process pinned to CPU 0, this load generator on
CPU 1. Every client sends `move` at 20 Hz with a random position; one client
per room (the probe) decodes what it receives to time action-to-own-delta
latency: from sending a move until the delta that shows its own new x. Prints
one JSON line; a run where the generator itself used more than 90 % of its
core is marked `"valid": false` (its figures measure the generator, not the
server).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import resource
import signal
import sys
import tempfile
import time
from pathlib import Path

import msgspec
import uvloop
from websockets.asyncio.client import connect

ROOM_SIZE = 8
MOVE_HZ = 20
HERE = Path(__file__).resolve().parent


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class Player:
    def __init__(self, client_id: str, probe: bool) -> None:
        self.client_id = client_id
        self.probe = probe
        self.bytes_in = 0
        self.frames_in = 0
        self.pending: dict[int, float] = {}  # x sent → when
        self.latencies: list[float] = []
        self.path = f"players.{client_id}.x"


async def play(
    url: str, player: Player, room_id: str, create: bool, stop: asyncio.Event, measuring: list[bool]
) -> None:
    encode = msgspec.msgpack.encode
    decode = msgspec.msgpack.decode
    async with connect(
        f"{url}&client_id={player.client_id}", compression=None, max_size=None
    ) as ws:
        await ws.recv()  # connected
        if create:
            request = {
                "type": "create_room",
                "requestId": 1,
                "config": {"roomId": room_id, "scriptName": "arena", "maxPlayers": ROOM_SIZE},
            }
        else:
            await asyncio.sleep(0.2)
            request = {"type": "join_room", "requestId": 1, "roomId": room_id}
        await ws.send(encode(request))

        async def reader() -> None:
            async for frame in ws:
                if not measuring[0]:
                    continue
                player.bytes_in += len(frame)
                player.frames_in += 1
                if player.probe and player.pending:
                    now = time.perf_counter()
                    decoded = decode(frame)
                    for message in decoded if isinstance(decoded, list) else (decoded,):
                        if message.get("type") != "delta":
                            continue
                        for change in message["delta"]["changes"]:
                            if change["path"] == player.path:
                                sent = player.pending.pop(change.get("value"), None)
                                if sent is not None:
                                    player.latencies.append(now - sent)

        read_task = asyncio.create_task(reader())
        rng = random.Random(player.client_id)
        period = 1 / MOVE_HZ
        next_send = time.perf_counter() + rng.random() * period
        last_x = -1
        while not stop.is_set():
            await asyncio.sleep(max(0.0, next_send - time.perf_counter()))
            next_send += period
            x = rng.randrange(1, 1000)
            if x == last_x:
                x = 1000 - x
            last_x = x
            if player.probe:
                player.pending.clear()
                player.pending[x] = time.perf_counter()
            await ws.send(
                encode(
                    {
                        "type": "action",
                        "action": {"type": "move", "data": {"x": x, "y": rng.randrange(1000)}},
                    }
                )
            )
        read_task.cancel()


async def run(clients: int, duration: float, warmup: float, transport: str | None) -> dict:
    rooms = max(1, clients // ROOM_SIZE)
    clients = rooms * ROOM_SIZE
    data_dir = tempfile.mkdtemp(prefix="gs-bench-")
    server = await asyncio.create_subprocess_exec(
        sys.executable, str(HERE / "serve.py"), data_dir, "--cpu", "0",
        *(["--transport", transport] if transport else []),
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert server.stdout is not None
    ready = (await server.stdout.readline()).decode().split()
    port, key = int(ready[1]), ready[2]
    url = f"ws://127.0.0.1:{port}/v1/game/ws?public_key={key}"
    if len(os.sched_getaffinity(0)) > 1:
        os.sched_setaffinity(0, {1})

    stop = asyncio.Event()
    measuring = [False]
    players = [Player(f"p{r}-{i}", probe=(i == 0)) for r in range(rooms) for i in range(ROOM_SIZE)]
    tasks = [
        asyncio.create_task(
            play(url, p, f"room{n // ROOM_SIZE}", n % ROOM_SIZE == 0, stop, measuring)
        )
        for n, p in enumerate(players)
    ]
    await asyncio.sleep(warmup)
    server.send_signal(signal.SIGUSR1)
    measuring[0] = True
    cpu0, own0, t0 = (
        cpu_seconds(server.pid),
        resource.getrusage(resource.RUSAGE_SELF),
        time.perf_counter(),
    )
    await asyncio.sleep(duration)
    measuring[0] = False
    elapsed = time.perf_counter() - t0
    cpu1, own1 = cpu_seconds(server.pid), resource.getrusage(resource.RUSAGE_SELF)
    rss = rss_mb(server.pid)
    server.send_signal(signal.SIGTERM)
    stats = json.loads((await server.stdout.readline()).decode())
    stop.set()
    await asyncio.gather(*tasks, return_exceptions=True)
    await server.wait()

    latencies = [lat for p in players for lat in p.latencies]
    frames = sum(p.frames_in for p in players)
    generator_cpu = (own1.ru_utime + own1.ru_stime - own0.ru_utime - own0.ru_stime) / elapsed
    server_cpu = (cpu1 - cpu0) / elapsed
    client_seconds = clients * elapsed
    return {
        "bench": "arena",
        "clients": clients,
        "rooms": rooms,
        "duration_s": round(elapsed, 2),
        "core": stats["core"],
        "transport": stats["transport"],
        "server_cpu_s_per_client_s": round((cpu1 - cpu0) / client_seconds, 6),
        "server_cpu_share": round(server_cpu, 3),
        "cpu_us_per_client_tick": round((cpu1 - cpu0) / (client_seconds * 64) * 1e6, 2),
        # The same per frame actually delivered (one per player-tick run): on a
        # busy machine where ticks get skipped, the figure that stays comparable.
        "cpu_us_per_frame_out": round((cpu1 - cpu0) / max(1, frames) * 1e6, 2),
        "tick_lateness_p50_ms": stats["lateness_p50_ms"],
        "tick_lateness_p99_ms": stats["lateness_p99_ms"],
        "tick_lateness_max_ms": stats["lateness_max_ms"],
        "skipped_ticks": stats["skipped_ticks"],
        "group_tick_p50_ms": stats["group_tick_p50_ms"],
        "group_tick_p99_ms": stats["group_tick_p99_ms"],
        "action_to_own_delta_p50_ms": round(percentile(latencies, 0.5) * 1e3, 2),
        "action_to_own_delta_p99_ms": round(percentile(latencies, 0.99) * 1e3, 2),
        "latency_samples": len(latencies),
        "frames_out_per_client_s": round(frames / client_seconds, 1),
        "bytes_out_per_client_s": round(sum(p.bytes_in for p in players) / client_seconds, 1),
        "server_rss_mb": round(rss, 1),
        "generator_cpu_share": round(generator_cpu, 3),
        "valid": generator_cpu < 0.9,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clients", type=int, default=128)
    parser.add_argument("--duration", type=float, default=15.0)
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument(
        "--transport",
        choices=("websockets", "picows"),
        default=None,
        help="the server's transport (default: the server's default); the load generator "
        "uses websockets either way",
    )
    args = parser.parse_args()
    print(json.dumps(uvloop.run(run(args.clients, args.duration, args.warmup, args.transport))))


if __name__ == "__main__":
    main()
