"""The transport's cost per message, with no rooms and no ticks.

    .venv/bin/python bench/transport_micro.py --transport picows --clients 128 --duration 10

The server (`bench/serve.py`, pinned to CPU 0) gets `--clients` connections;
each sends a `ping` every 25 ms (40 per second, under the rate limit) and
reads its `pong`. The work is fixed by the clients, not by the server's
timers, so the server CPU seconds per request + reply stay meaningful on a
busy machine where the arena's ticks get skipped. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import json
import os
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

import msgspec
import uvloop
from websockets.asyncio.client import connect

HERE = Path(__file__).resolve().parent
PERIOD = 0.025


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def client(url: str, n: int, stop: asyncio.Event, counts: list[int]) -> None:
    encode, decode = msgspec.msgpack.encode, msgspec.msgpack.decode
    async with connect(f"{url}&client_id=c{n}", compression=None) as ws:
        await ws.recv()  # connected
        request_id = 0
        next_send = time.perf_counter() + (n % 40) * PERIOD / 40
        while not stop.is_set():
            await asyncio.sleep(max(0.0, next_send - time.perf_counter()))
            next_send += PERIOD
            request_id += 1
            await ws.send(
                encode({"type": "ping", "requestId": request_id, "clientTime": time.time()})
            )
            reply = decode(await ws.recv())
            if reply.get("type") == "pong":
                counts[0] += 1


async def run(clients: int, duration: float, warmup: float, transport: str | None) -> dict:
    data_dir = tempfile.mkdtemp(prefix="gs-bench-")
    atexit.register(shutil.rmtree, data_dir, True)  # after the server has stopped
    server = await asyncio.create_subprocess_exec(
        sys.executable, str(HERE / "serve.py"), data_dir, "--cpu", "0",
        *(["--transport", transport] if transport else []),
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert server.stdout is not None
    ready = (await server.stdout.readline()).decode().split()
    url = f"ws://127.0.0.1:{ready[1]}/v1/game/ws?public_key={ready[2]}"
    if len(os.sched_getaffinity(0)) > 1:
        os.sched_setaffinity(0, {1})
    stop = asyncio.Event()
    counts = [0]
    tasks = [asyncio.create_task(client(url, n, stop, counts)) for n in range(clients)]
    await asyncio.sleep(warmup)
    cpu0, done0, t0 = cpu_seconds(server.pid), counts[0], time.perf_counter()
    await asyncio.sleep(duration)
    cpu1, done1, elapsed = cpu_seconds(server.pid), counts[0], time.perf_counter() - t0
    server.send_signal(signal.SIGTERM)
    stats = json.loads((await server.stdout.readline()).decode())
    stop.set()
    await asyncio.gather(*tasks, return_exceptions=True)
    await server.wait()
    replies = done1 - done0
    return {
        "bench": "transport_micro",
        "transport": stats["transport"],
        "clients": clients,
        "duration_s": round(elapsed, 2),
        "requests_per_s": round(replies / elapsed, 1),
        "expected_per_s": round(clients / PERIOD, 1),
        "server_cpu_share": round((cpu1 - cpu0) / elapsed, 3),
        "server_cpu_us_per_request": round((cpu1 - cpu0) / max(1, replies) * 1e6, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clients", type=int, default=128)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--transport", choices=("websockets", "picows"), default=None)
    args = parser.parse_args()
    result = uvloop.run(run(args.clients, args.duration, args.warmup, args.transport))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
