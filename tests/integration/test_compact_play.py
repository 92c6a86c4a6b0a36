"""The compact encoding over real sockets: the same game, far fewer bytes."""

from __future__ import annotations

import asyncio
import contextlib

import msgspec
from game_kit import arena_host, assert_unbroken, chain_of, drop, same_state
from websockets.asyncio.client import connect


async def test_compact_msgpack_and_json_players_see_the_same_game(server):
    players = {
        enc: server.client(f"p-{enc}", encoding=enc) for enc in ("compact", "msgpack", "json")
    }
    for client in players.values():
        await client.connect()
    await players["compact"].create_room(room_id="r", script_name="arena")
    for enc in ("msgpack", "json"):
        await players[enc].join_room("r")
    chains = {enc: chain_of(c) for enc, c in players.items()}
    for step in range(30):
        for n, client in enumerate(players.values()):
            await client.send_action("move", {"x": step * 10 + n, "y": 500 - step})
        await asyncio.sleep(1 / 64)
    for enc in ("msgpack", "json"):
        await same_state(players["compact"], players[enc])
    for chain in chains.values():
        assert_unbroken(chain)
    state = players["compact"].state["state"]
    assert state["players"]["p-json"] == {"x": 292, "y": 471, "hp": 100}
    for client in players.values():
        await client.disconnect()


async def test_a_compact_player_joining_late_and_resuming_keeps_the_path_table(server):
    host = await arena_host(server, encoding="compact")
    for step in range(10):
        await host.send_action("move", {"x": step, "y": step})
        await asyncio.sleep(1 / 64)
    late = server.client("late", encoding="compact", reconnect_interval=0.05)
    chain = chain_of(late)
    await late.connect("r")  # its snapshot brings the paths numbered so far
    for step in range(10):
        await late.send_action("move", {"x": 100 + step, "y": step})
        await asyncio.sleep(1 / 64)
    back = drop(late)
    await host.send_action("move", {"x": 999, "y": 1})  # a change it must replay
    await asyncio.wait_for(back, 5)
    assert late.resumes == 1
    await same_state(late, host)
    assert late.state["state"]["players"]["host"]["x"] == 999
    assert_unbroken(chain)
    await late.disconnect()
    await host.disconnect()


async def test_compact_frames_are_a_fraction_of_msgpack(server):
    """Two raw sockets in one arena room, one per encoding, count the bytes of
    the same second of play (deltas only: they dominate a game's traffic)."""
    mover = server.client("mover")
    await mover.connect()
    await mover.create_room(room_id="r", script_name="arena")
    sockets = {}
    for enc in ("compact", "msgpack"):
        url = f"{server.url}?public_key={server.public_key}&client_id=raw-{enc}&encoding={enc}"
        ws = sockets[enc] = await connect(url)
        await ws.recv()  # connected
        await ws.send(msgspec.msgpack.encode({"type": "join_room", "requestId": 1, "roomId": "r"}))
    received: dict[str, int] = {}

    async def count(enc: str) -> None:
        received[enc] = 0
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(1.0):
                async for frame in sockets[enc]:
                    received[enc] += len(frame)

    async def move() -> None:
        for step in range(40):
            await mover.send_action("move", {"x": step * 7 % 1000, "y": step})
            await asyncio.sleep(1 / 40)

    await asyncio.gather(count("compact"), count("msgpack"), move())
    assert 0 < received["compact"] * 4 < received["msgpack"], received
    for ws in sockets.values():
        await ws.close()
    await mover.disconnect()
