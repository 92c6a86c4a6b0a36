"""Connections per remote address (`max_connections_per_ip`): over the cap the
handshake is answered 429 and no socket opens; every socket is released when
it ends, however it ends."""

from __future__ import annotations

import asyncio
from urllib.parse import urlencode

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus


async def until(condition, timeout: float = 5.0) -> None:
    """Wait for the server to see a socket end (its close runs on its own schedule)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        assert loop.time() < deadline, "timed out"
        await asyncio.sleep(0.005)


def url(server, client_id: str) -> str:
    return f"{server.url}?{urlencode({'public_key': server.public_key, 'client_id': client_id})}"


async def refused_status(server, client_id: str) -> int:
    with pytest.raises(InvalidStatus) as err:
        async with connect(url(server, client_id)):
            pass
    return err.value.response.status_code


async def test_over_the_cap_is_429_and_closing_frees_a_place(start_server):
    server = await start_server(max_connections_per_ip=3)
    peers = server.app.server.peers
    players = [server.client(f"p{i}") for i in range(3)]
    for player in players:
        await player.connect()
    assert peers.open == {"127.0.0.1": 3}

    assert await refused_status(server, "p3") == 429
    with pytest.raises(InvalidStatus) as err:
        await server.client("p4").connect()
    assert err.value.response.status_code == 429
    assert b"too many connections" in err.value.response.body
    # The refused sockets are released too; the three players are untouched.
    await until(lambda: peers.open == {"127.0.0.1": 3})
    assert all(p.is_connected for p in players)
    await players[0].create_room(room_id="r")

    await players[0].disconnect()
    await until(lambda: peers.open == {"127.0.0.1": 2})
    late = server.client("late")
    await late.connect()
    await late.join_room("r")
    for player in (*players[1:], late):
        await player.disconnect()
    await until(lambda: peers.open == {})


async def test_no_leak_after_many_refusals_and_dropped_sockets(start_server):
    server = await start_server(max_connections_per_ip=2)
    peers = server.app.server.peers
    keep = [server.client(f"k{i}") for i in range(2)]
    for player in keep:
        await player.connect()
    for i in range(20):
        assert await refused_status(server, f"r{i}") == 429
    # Sockets that never send a handshake, and ones cut in the middle of it.
    for partial in (b"", b"GET /v1/game/ws HTTP/1.1\r\nHost: x\r\n"):
        for _ in range(5):
            _, writer = await asyncio.open_connection("127.0.0.1", server.app.port)
            writer.write(partial)
            await writer.drain()
            writer.transport.abort()
    for player in keep:
        await player.disconnect()
    await until(lambda: peers.open == {})
    # Back to a clean slate: the full cap is available again.
    again = [server.client(f"a{i}") for i in range(2)]
    for player in again:
        await player.connect()
    assert await refused_status(server, "a2") == 429
    for player in again:
        await player.disconnect()


async def test_sockets_far_over_the_cap_are_cut_at_accept(start_server):
    server = await start_server(max_connections_per_ip=1, refused_sockets_per_ip=1)
    peers = server.app.server.peers
    idle = []
    for _ in range(2):  # one under the cap, one that would still get its 429
        idle.append(await asyncio.open_connection("127.0.0.1", server.app.port))
    await until(lambda: peers.open.get("127.0.0.1") == 2)
    reader, writer = await asyncio.open_connection("127.0.0.1", server.app.port)
    assert await asyncio.wait_for(reader.read(), 5) == b""  # closed without an answer
    writer.close()
    for _, w in idle:
        w.close()
    await until(lambda: peers.open == {})
    player = server.client("p")
    await player.connect()
    await player.disconnect()


async def test_zero_means_no_cap(start_server):
    server = await start_server(max_connections_per_ip=0)
    players = [server.client(f"p{i}") for i in range(80)]
    await asyncio.gather(*(p.connect() for p in players))
    await asyncio.gather(*(p.disconnect() for p in players))
