"""Dropped connections over real sockets: the seat is held, the client comes
back by itself, and its version chain has no gap and no duplicate."""

from __future__ import annotations

import asyncio
import time

import msgspec
from game_kit import arena_host, assert_unbroken, chain_of, drop, same_state
from websockets.asyncio.client import connect


async def test_a_dropped_client_resumes_with_just_the_deltas_it_missed(server):
    host = await arena_host(server)
    player = server.client("p", reconnect_interval=0.05)
    chain = chain_of(player)
    await player.connect("r")
    left = host.expect("player_left")
    await player.wait_until(lambda s: s["tick"] > 10)
    await asyncio.wait_for(drop(player), 5)
    assert player.reconnects == 1 and player.resumes == 1 and player.resyncs == 0
    assert server.app.service.stats.resumes == {"resumed": 1, "snapshot": 0}  # /metrics
    await player.wait_until(lambda s: s["tick"] > 40)
    assert_unbroken(chain)
    await same_state(player, host)
    assert not left.done()  # the others never saw it leave
    assert [p["clientId"] for p in (await host.request_state())["players"]] == ["host", "p"]
    await player.disconnect()
    await host.disconnect()


async def test_a_long_outage_comes_back_with_a_snapshot(start_server):
    server = await start_server(resume_history_seconds=0.1)
    host = await arena_host(server)
    player = server.client("p", reconnect_interval=0.6)  # longer than the history
    chain = chain_of(player)
    snapshots: list[tuple[int, int]] = []  # (version, deltas applied before it)
    player.on("onStateUpdate", lambda state: snapshots.append((state["version"], len(chain))))
    await player.connect("r")
    await asyncio.wait_for(drop(player), 5)
    assert player.reconnects == 1 and player.resumes == 0
    assert len(snapshots) == 2  # joined, then joined again on return
    start = player.state["state"]["tick"]
    await player.wait_until(lambda s: s["tick"] > start + 5)
    # (The first delta after the new snapshot may come in the snapshot's own frame.)
    version, applied = snapshots[1]
    since_return = chain[applied:]
    assert_unbroken(since_return)
    assert since_return[0][0] == version
    await same_state(player, host)
    await player.disconnect()
    await host.disconnect()


async def test_the_seat_goes_when_the_grace_ends(start_server):
    server = await start_server(reconnect_grace=0.5)
    host = await arena_host(server)
    player = server.client("p", auto_reconnect=False)
    await player.connect("r")
    left = host.expect("player_left")
    player._ws.transport.abort()
    dropped = time.monotonic()
    message = await asyncio.wait_for(left, 5)
    assert time.monotonic() - dropped >= 0.45
    assert message["player"]["clientId"] == "p" and message["reason"] == "timeout"
    assert "p" not in (await host.request_state())["state"]["players"]  # onPlayerLeave ran
    # Coming back later is a plain join.
    await player.connect()
    state = await player.join_room("r")
    assert [p["clientId"] for p in state["players"]] == ["host", "p"]
    await player.disconnect()
    await host.disconnect()


async def test_a_resume_request_races_with_ticks(server):
    """A raw client drops, comes back and asks to resume while the room ticks
    at 64 Hz: `resumed`, then deltas from its version on, in order, each once."""
    host = await arena_host(server)
    url = f"{server.url}?public_key={server.public_key}&client_id=raw"
    ws = await connect(url)
    msgspec.msgpack.decode(await ws.recv())  # connected
    await ws.send(msgspec.msgpack.encode({"type": "join_room", "requestId": 1, "roomId": "r"}))
    version = None
    while version is None or version < 20:  # follow the chain for a while
        frame = msgspec.msgpack.decode(await ws.recv())
        for message in frame if isinstance(frame, list) else [frame]:
            if message["type"] == "joined":
                version = message["state"]["version"]
            elif message["type"] == "delta" and version is not None:
                assert message["delta"]["fromVersion"] == version
                version = message["delta"]["toVersion"]
    ws.transport.abort()
    await asyncio.sleep(0.1)  # a few ticks go by without it
    ws = await connect(url)
    hello = msgspec.msgpack.decode(await ws.recv())
    assert hello["roomId"] == "r"  # the server says where its seat is
    await ws.send(
        msgspec.msgpack.encode(
            {"type": "join_room", "requestId": 2, "roomId": "r", "lastVersion": version}
        )
    )
    replies: list[dict] = []
    while len([m for m in replies if m["type"] == "delta"]) < 30:
        frame = msgspec.msgpack.decode(await ws.recv())
        replies.extend(frame if isinstance(frame, list) else [frame])
    assert replies[0] == {"type": "resumed", "requestId": 2, "roomId": "r", "fromVersion": version}
    deltas = [m["delta"] for m in replies if m["type"] == "delta"]
    assert [d["fromVersion"] for d in deltas] == list(range(version, version + len(deltas)))
    await ws.close()
    await host.disconnect()


async def test_a_silent_peer_is_closed_by_keepalive_and_its_seat_held(start_server):
    """A client that stops answering pings (it reads nothing at all) is closed
    within ping interval + timeout; its seat then follows the grace rule."""
    server = await start_server(ping_interval=0.3, close_timeout=0.3, reconnect_grace=0.5)
    host = server.client("host")
    await host.connect()
    await host.create_room(room_id="r")
    silent = await connect(f"{server.url}?public_key={server.public_key}&client_id=silent")
    await silent.send(msgspec.msgpack.encode({"type": "join_room", "requestId": 1, "roomId": "r"}))
    await asyncio.sleep(0.1)
    left = host.expect("player_left")
    silent.transport.pause_reading()  # no more pongs (nor anything else)
    paused = time.monotonic()
    message = await asyncio.wait_for(left, 5)
    elapsed = time.monotonic() - paused
    # ping 0.3 + timeout 0.3 + closing 0.3, then the 0.5 s grace
    assert 1.0 <= elapsed < 3.0, elapsed
    assert message["player"]["clientId"] == "silent" and message["reason"] == "timeout"
    silent.transport.abort()
    await host.disconnect()
