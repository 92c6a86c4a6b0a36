"""Clients that read slowly or not at all, over real sockets: they cost the
server bounded memory, they never hold up anyone else, a stuck one is closed
with 4008, and one that catches up gets a fresh snapshot instead of a backlog."""

from __future__ import annotations

import asyncio
import resource
import socket
import time
from urllib.parse import urlsplit

import msgspec
from websockets.asyncio.client import connect

# 8 KiB of new state every tick: 512 KiB per second for each member at 64 Hz.
FLOOD = """
function onInit(room) room.state.blob = "" end
function onTick(room, dt, tick)
    room.state.blob = string.rep(string.char(65 + tick % 26), 8192)
    room.state.tick = tick
end
"""

SMALL_BUFFERS = {"send_buffer_bytes": 16 * 1024}


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


async def stuck_member(server, client_id: str, room_id: str):
    """A client whose socket stops reading right after it joined `room_id`."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connect: small window
    sock.setblocking(False)
    port = urlsplit(server.url).port
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
    ws = await connect(
        f"{server.url}?public_key={server.public_key}&client_id={client_id}", sock=sock
    )
    await ws.recv()  # connected
    await ws.send(msgspec.msgpack.encode({"type": "join_room", "requestId": 1, "roomId": room_id}))
    ws.transport.pause_reading()
    return ws


async def test_a_stuck_reader_is_closed_after_the_deadline_and_the_room_goes_on(start_server):
    server = await start_server(
        slow_consumer_deadline=1.0, close_timeout=0.3, reconnect_grace=0.2, **SMALL_BUFFERS
    )
    server.add_script("flood", FLOOD)
    host = server.client("host")
    await host.connect()
    await host.create_room(room_id="r", script_name="flood")
    deltas: list[tuple[int, int]] = []
    host.on("onDelta", lambda d: deltas.append((d["fromVersion"], d["toVersion"])))
    left = host.expect("player_left")
    stuck = await stuck_member(server, "stuck", "r")
    paused = time.monotonic()
    message = await asyncio.wait_for(left, 10)
    elapsed = time.monotonic() - paused
    # Buffers fill within a few ticks; then 1 s stuck, 0.3 s for the close, 0.2 s grace.
    assert 1.0 <= elapsed < 4.0, elapsed
    assert message["player"]["clientId"] == "stuck" and message["reason"] == "timeout"
    assert host.resyncs == 0
    for (_, before), (after, _) in zip(deltas, deltas[1:], strict=False):
        assert after == before  # the host's chain never broke
    stuck.transport.abort()
    await host.disconnect()


async def test_a_reader_that_catches_up_gets_one_snapshot_not_the_backlog(start_server):
    server = await start_server(max_outbox_bytes=64 * 1024, **SMALL_BUFFERS)
    server.add_script("flood", FLOOD)
    host = server.client("host")
    await host.connect()
    await host.create_room(room_id="r", script_name="flood")
    slow = server.client("slow")
    await slow.connect("r")
    await slow.wait_until(lambda s: s.get("tick", 0) > 5)
    slow._ws.transport.pause_reading()
    await asyncio.sleep(1.0)  # ~512 KiB of deltas pile up: far over the 64 KiB bound
    before = len(slow.inbox)
    slow._ws.transport.resume_reading()
    target = host.state["state"]["tick"] + 10
    await slow.wait_until(lambda s: s["tick"] > target)
    caught_up = list(slow.inbox)[before:]
    snapshots = [m for m in caught_up if m["type"] == "state"]
    assert len(snapshots) == 1 and "requestId" not in snapshots[0]
    after = [m["delta"] for m in caught_up[caught_up.index(snapshots[0]) :] if m["type"] == "delta"]
    assert after and after[0]["fromVersion"] == snapshots[0]["state"]["version"]
    # Fewer deltas arrived than were published meanwhile: the backlog was dropped.
    assert len([m for m in caught_up if m["type"] == "delta"]) < 64
    assert slow.resyncs == 0 and slow.is_connected
    assert server.app.service.stats.slow_consumer_snapshots == 1  # what /metrics reports
    await host.wait_until(lambda s: s["tick"] >= slow.state["state"]["tick"])
    await slow.wait_until(lambda s: s["tick"] >= host.state["state"]["tick"])
    await slow.disconnect()
    await host.disconnect()


async def test_fifty_clients_that_never_read_cost_bounded_memory(start_server):
    server = await start_server(slow_consumer_deadline=30.0, **SMALL_BUFFERS)
    server.add_script("flood", FLOOD)
    host = server.client("host")
    await host.connect()
    await host.create_room(room_id="r", script_name="flood", max_players=64)
    stuck = [await stuck_member(server, f"s{i}", "r") for i in range(50)]
    await asyncio.sleep(1.5)  # every one of them is full by now
    service = server.app.service
    start = rss_mb()
    await asyncio.sleep(2.5)  # unbounded, this would queue 50 x 512 KiB/s x 2.5 s = 62 MiB
    growth = rss_mb() - start
    assert growth < 8, f"RSS grew {growth:.1f} MiB"
    limit = service.config.max_outbox_bytes + 16 * 1024  # plus at most one delta
    for i in range(50):
        session = service.sessions[(host_app(server), f"s{i}")]
        assert session.outbox_bytes <= limit
    assert sum(service.sessions[(host_app(server), f"s{i}")].behind for i in range(50)) >= 45
    assert host.resyncs == 0 and host.is_connected
    for ws in stuck:
        ws.transport.abort()
    await host.disconnect()


def host_app(server) -> str:
    return next(iter(server.app.service.sessions))[0]
