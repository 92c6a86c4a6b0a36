"""Soak benchmark: players come and go for a long time; does the server stay flat?

    .venv/bin/python bench/soak.py                    # the standard run: 200 clients, 10 minutes
    .venv/bin/python bench/soak.py --duration 180     # a quick check

The server is the real command line (`python -m gameserver`, text logs on a
pipe) pinned to CPU 0; this load generator runs on CPU 1. N clients in rooms
of 8 play `arena` (a `move` at 20 Hz each, like bench/arena.py). Each client
drops its socket without a close handshake at random (on average every
`--drop-every` seconds, like a phone losing its network), reconnects at once
with the same client_id and its resume token, and joins its room again
(creating it if the room is gone).

After `--warmup` seconds the measured window starts. Every `--interval`
seconds the generator scrapes the server's /metrics and reads its RSS from
/proc; per interval it reports the p99 tick lateness (from the
`gameserver_tick_lateness_seconds` histogram, interpolated within a bucket
as Prometheus's histogram_quantile does), skipped ticks, reconnects, and how
much CPU the rest of the machine used (`other_cpu_share`, in cores: on a
shared machine, someone else's load shows up as tick lateness; a run where
it averaged 0.2 core or more is marked `"valid": false`). The server's stderr
is read throughout: every "Traceback" is an unhandled exception. Prints one
JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import contextlib
import itertools
import json
import os
import random
import re
import resource
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import msgspec
import uvloop
from prometheus_client.parser import text_string_to_metric_families
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

ROOM_SIZE = 8
MOVE_HZ = 20
LATENESS = "gameserver_tick_lateness_seconds"

encode = msgspec.msgpack.encode
decode = msgspec.msgpack.decode


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_busy_seconds() -> float:
    """CPU seconds all cores spent busy since boot (/proc/stat), whoever used them."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle, iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


class Others:
    """CPU the rest of the machine used (cores): on a shared machine another
    process's load shows up as tick lateness that is not the server's doing."""

    def __init__(self, server_pid: int) -> None:
        self._pid = server_pid
        self._last = self._read()

    def _read(self) -> tuple[float, float, float]:
        own = resource.getrusage(resource.RUSAGE_SELF)
        return (
            time.perf_counter(),
            machine_busy_seconds(),
            cpu_seconds(self._pid) + own.ru_utime + own.ru_stime,
        )

    def share(self) -> float:
        """Cores used by other processes since the previous call."""
        now = self._read()
        (t0, busy0, ours0), (t1, busy1, ours1) = self._last, now
        self._last = now
        return max(0.0, ((busy1 - busy0) - (ours1 - ours0)) / (t1 - t0))


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


# /metrics ------------------------------------------------------------------


async def scrape(http: aiohttp.ClientSession, url: str) -> dict[str, Any]:
    """The samples of one scrape: name → value, and the lateness histogram's
    cumulative buckets as [(upper bound, count)]."""
    async with http.get(url) as response:
        text = await response.text()
    values: dict[str, float] = {}
    buckets: list[tuple[float, float]] = []
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == LATENESS + "_bucket":
                buckets.append((float(sample.labels["le"]), sample.value))
            elif not sample.labels:
                values[sample.name] = sample.value
    return {"values": values, "buckets": sorted(buckets)}


def quantile(q: float, before: list, after: list) -> float | None:
    """histogram_quantile over the window between two scrapes (seconds)."""
    window = [(le, b - a) for (le, b), (_, a) in zip(after, before, strict=True)]
    total = window[-1][1]
    if total <= 0:
        return None
    rank = q * total
    lower, below = 0.0, 0.0
    for le, count in window:
        if count >= rank:
            if le == float("inf"):
                return lower  # beyond the last finite bucket: its bound is all we know
            return lower + (le - lower) * (rank - below) / max(count - below, 1e-12)
        lower, below = le, count
    return lower


# One client ------------------------------------------------------------------


class Client:
    def __init__(self, client_id: str, room_id: str, creator: bool) -> None:
        self.client_id = client_id
        self.room_id = room_id
        self.creator = creator
        self.token: str | None = None
        self.connects = 0  # successful connections (the first one included)
        self.entered = asyncio.Event()  # in its room at least once
        self.failures: dict[str, int] = {}

    def failed(self, kind: str) -> None:
        self.failures[kind] = self.failures.get(kind, 0) + 1


class Run:
    def __init__(self, args: argparse.Namespace, url: str) -> None:
        self.args = args
        self.url = url
        self.stop = asyncio.Event()
        self.rng = random.Random(args.seed)
        self.frames_in = 0


async def request(ws: ClientConnection, message: dict[str, Any], ids: itertools.count) -> dict:
    """Send `message` with a fresh requestId; the reply with that id (other messages skipped)."""
    request_id = next(ids)
    await ws.send(encode({**message, "requestId": request_id}))
    while True:
        decoded = decode(await asyncio.wait_for(ws.recv(), 10))
        for reply in decoded if isinstance(decoded, list) else (decoded,):
            if reply.get("requestId") == request_id:
                return reply


async def enter_room(ws: ClientConnection, client: Client, ids: itertools.count) -> None:
    """Join the client's room, or create it when it is gone; raises on anything else."""
    create = {
        "type": "create_room",
        "config": {"roomId": client.room_id, "scriptName": "arena", "maxPlayers": ROOM_SIZE},
    }
    join = {"type": "join_room", "roomId": client.room_id}
    order = [create, join] if client.creator and client.connects == 1 else [join, create]
    for attempt in order * 2:
        reply = await request(ws, attempt, ids)
        if reply["type"] in ("joined", "state"):
            return
        if reply["type"] == "error" and reply["code"] == "already_in_room":
            return  # a resumed session kept its seat
        if reply["type"] == "error" and reply["code"] in ("room_not_found", "room_exists"):
            continue
        raise RuntimeError(f"{reply.get('code')}: {reply.get('message')}")
    raise RuntimeError("could not enter the room")


async def play_once(run: Run, client: Client, rng: random.Random) -> None:
    """One connection: enter the room, move at 20 Hz, drop the socket at a random time."""
    query = f"{run.url}&client_id={client.client_id}"
    if client.token:
        query += f"&resume_token={client.token}"
    async with connect(query, compression=None, max_size=None, open_timeout=10) as ws:
        hello = decode(await asyncio.wait_for(ws.recv(), 10))
        client.token = hello["resumeToken"]
        client.connects += 1
        await enter_room(ws, client, itertools.count(1))
        client.entered.set()

        async def count_frames() -> None:
            try:
                async for _ in ws:
                    run.frames_in += 1
            except ConnectionClosed:
                pass

        reader = asyncio.create_task(count_frames())
        drop_at = time.perf_counter() + rng.expovariate(1 / run.args.drop_every)
        period = 1 / MOVE_HZ
        next_send = time.perf_counter() + rng.random() * period
        try:
            while not run.stop.is_set() and time.perf_counter() < drop_at and not reader.done():
                await asyncio.sleep(max(0.0, next_send - time.perf_counter()))
                next_send += period
                move = {"x": rng.randrange(1000), "y": rng.randrange(1000)}
                await ws.send(encode({"type": "action", "action": {"type": "move", "data": move}}))
            if not run.stop.is_set():
                ws.transport.abort()  # the network is gone: no close frame, no FIN
        finally:
            reader.cancel()


async def play(run: Run, client: Client) -> None:
    rng = random.Random(f"{run.args.seed}-{client.client_id}")
    if not client.creator:
        await asyncio.sleep(0.5)  # let the creator make the room first
    while not run.stop.is_set():
        try:
            await play_once(run, client, rng)
        except InvalidStatus as exc:
            client.failed(f"http_{exc.response.status_code}")
        except ConnectionClosed as exc:
            client.failed(f"closed_{exc.rcvd.code if exc.rcvd else 'abnormal'}")
        except (OSError, TimeoutError) as exc:
            client.failed(type(exc).__name__)
        except RuntimeError as exc:
            client.failed(str(exc).split(":")[0])
        if not run.stop.is_set():
            await asyncio.sleep(rng.uniform(0.05, run.args.reconnect_delay))


# The server ----------------------------------------------------------------


class ServerLog:
    """Reads the server's stderr to the end: counts tracebacks and ERROR lines."""

    def __init__(self, stream: asyncio.StreamReader) -> None:
        self.tracebacks = 0
        self.errors = 0
        self.lines = 0
        self.first_error: str | None = None
        self.task = asyncio.create_task(self._read(stream))

    async def _read(self, stream: asyncio.StreamReader) -> None:
        while line := (await stream.readline()).decode(errors="replace"):
            self.lines += 1
            if "Traceback" in line:
                self.tracebacks += 1
            if " ERROR " in line or " CRITICAL " in line:
                self.errors += 1
                self.first_error = self.first_error or line.strip()[:300]


async def start_server(data_dir: str) -> tuple[asyncio.subprocess.Process, str, str]:
    server = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gameserver", "--host", "127.0.0.1", "--port", "0",
        "--data-dir", data_dir, "--max-connections-per-ip", "0",  # every client is 127.0.0.1
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert server.stdout is not None
    text = ""
    while "connect: " not in text:
        line = (await asyncio.wait_for(server.stdout.readline(), 60)).decode()
        if not line:
            raise RuntimeError("the server exited before it was ready")
        text += line
    ws = re.search(r"connect: (ws://\S+\?public_key=cb_pk_\S+)&client_id=", text)
    admin = re.search(r"admin API: (http://[^/]+)/", text)
    assert ws is not None and admin is not None
    if len(os.sched_getaffinity(0)) > 1:
        os.sched_setaffinity(server.pid, {0})
        os.sched_setaffinity(0, {1})
    return server, ws.group(1), admin.group(1) + "/metrics"


async def soak(args: argparse.Namespace) -> dict[str, Any]:
    rooms = max(1, args.clients // ROOM_SIZE)
    data_dir = tempfile.mkdtemp(prefix="gs-soak-")
    atexit.register(shutil.rmtree, data_dir, True)  # after the server has stopped
    server, url, metrics_url = await start_server(data_dir)
    assert server.stderr is not None
    log = ServerLog(server.stderr)
    run = Run(args, url)
    clients = [
        Client(f"s{r}-{i}", f"soak{r}", creator=(i == 0))
        for r in range(rooms)
        for i in range(ROOM_SIZE)
    ]
    tasks = [asyncio.create_task(play(run, c)) for c in clients]
    async with aiohttp.ClientSession() as http:
        # Those that never get in are reported as `never_entered`.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.gather(*(c.entered.wait() for c in clients)), 60)
        await asyncio.sleep(args.warmup)

        start = await scrape(http, metrics_url)
        rss_start, cpu0, t0 = rss_mb(server.pid), cpu_seconds(server.pid), time.perf_counter()
        own0 = resource.getrusage(resource.RUSAGE_SELF)
        connects0 = sum(c.connects for c in clients)
        others, whole_run = Others(server.pid), Others(server.pid)
        intervals, previous, previous_connects = [], start, connects0
        end_at = t0 + args.duration
        while (now := time.perf_counter()) < end_at - 0.5:
            await asyncio.sleep(min(args.interval, end_at - now))
            sample = await scrape(http, metrics_url)
            connects = sum(c.connects for c in clients)
            p99 = quantile(0.99, previous["buckets"], sample["buckets"])
            values, before = sample["values"], previous["values"]
            intervals.append(
                {
                    "t_s": round(time.perf_counter() - t0),
                    "lateness_p99_ms": None if p99 is None else round(p99 * 1e3, 2),
                    "skipped_ticks": int(
                        values["gameserver_skipped_ticks_total"]
                        - before["gameserver_skipped_ticks_total"]
                    ),
                    "reconnects": connects - previous_connects,
                    "players": int(values["gameserver_players"]),
                    "rss_mb": round(rss_mb(server.pid), 1),
                    "other_cpu_share": round(others.share(), 2),
                }
            )
            previous, previous_connects = sample, connects
        end = previous
        elapsed = time.perf_counter() - t0
        rss_end, cpu1 = rss_mb(server.pid), cpu_seconds(server.pid)
        own1 = resource.getrusage(resource.RUSAGE_SELF)
        other_cpu = whole_run.share()

    run.stop.set()
    await asyncio.gather(*tasks, return_exceptions=True)
    server.send_signal(signal.SIGTERM)
    exit_code = await asyncio.wait_for(server.wait(), 30)
    await log.task

    failures: dict[str, int] = {}
    for c in clients:
        for kind, count in c.failures.items():
            failures[kind] = failures.get(kind, 0) + count
    p99s = [i["lateness_p99_ms"] for i in intervals if i["lateness_p99_ms"] is not None]
    first, last = start["values"], end["values"]
    generator_cpu = (own1.ru_utime + own1.ru_stime - own0.ru_utime - own0.ru_stime) / elapsed
    return {
        "bench": "soak",
        "clients": len(clients),
        "rooms": rooms,
        "duration_s": round(elapsed, 1),
        "drop_every_s": args.drop_every,
        "never_entered": sum(not c.entered.is_set() for c in clients),
        "reconnects": sum(c.connects for c in clients) - connects0,
        "server_connections_opened": int(
            last["gameserver_connections_opened_total"]
            - first["gameserver_connections_opened_total"]
        ),
        "reconnect_failures": failures,
        "rss_start_mb": round(rss_start, 1),
        "rss_end_mb": round(rss_end, 1),
        "rss_drift_pct": round((rss_end - rss_start) / rss_start * 100, 2),
        "lateness_p99_ms_per_interval": p99s,
        "lateness_p99_ms_spread": round(max(p99s) - min(p99s), 2) if p99s else None,
        "skipped_ticks": int(
            last["gameserver_skipped_ticks_total"] - first["gameserver_skipped_ticks_total"]
        ),
        "script_errors": int(
            last["gameserver_script_errors_total"] - first["gameserver_script_errors_total"]
        ),
        "slow_consumer_closes": int(
            last["gameserver_slow_consumer_closes_total"]
            - first["gameserver_slow_consumer_closes_total"]
        ),
        "intervals": intervals,
        "server_cpu_share": round((cpu1 - cpu0) / elapsed, 3),
        "server_tracebacks": log.tracebacks,
        "server_error_lines": log.errors,
        "server_first_error": log.first_error,
        "server_log_lines": log.lines,
        "server_exit_code": exit_code,
        "generator_cpu_share": round(generator_cpu, 3),
        "other_cpu_share": round(other_cpu, 2),
        # The generator saturated, or the rest of the machine was busy enough to
        # make tick lateness measure the neighbours rather than the server.
        "valid": generator_cpu < 0.9 and other_cpu < 0.2,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--duration", type=float, default=600.0, help="measured seconds")
    parser.add_argument("--warmup", type=float, default=15.0)
    parser.add_argument("--interval", type=float, default=60.0, help="seconds per sample")
    parser.add_argument(
        "--drop-every", type=float, default=60.0, help="mean seconds between a client's drops"
    )
    parser.add_argument(
        "--reconnect-delay", type=float, default=1.0, help="longest pause before reconnecting"
    )
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    print(json.dumps(uvloop.run(soak(args))), flush=True)


if __name__ == "__main__":
    main()
