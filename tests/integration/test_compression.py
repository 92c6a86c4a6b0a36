"""permessage-deflate: off unless asked for, and then a game plays through it."""

from __future__ import annotations

import msgspec
import pytest
from websockets.asyncio.client import connect

from gameserver.app import GameApp
from gameserver.config import Config


def url(server, client_id: str) -> str:
    return f"{server.url}?public_key={server.public_key}&client_id={client_id}"


async def test_an_offer_of_deflate_is_declined_by_default(server):
    async with connect(url(server, "a"), compression="deflate") as ws:
        assert msgspec.msgpack.decode(await ws.recv())["type"] == "connected"
        assert "Sec-WebSocket-Extensions" not in ws.response.headers
        assert ws.protocol.extensions == []


@pytest.mark.parametrize("transport", ["websockets"])
async def test_with_deflate_a_room_plays_through_compressed_frames(start_server):
    server = await start_server(compression="deflate")
    async with connect(url(server, "a"), compression="deflate") as ws:
        assert "permessage-deflate" in ws.response.headers["Sec-WebSocket-Extensions"]
        assert [e.name for e in ws.protocol.extensions] == ["permessage-deflate"]
        assert msgspec.msgpack.decode(await ws.recv())["type"] == "connected"
        create = {"type": "create_room", "requestId": 1, "config": {"scriptName": "arena"}}
        await ws.send(msgspec.msgpack.encode(create))
        move = {"type": "action", "action": {"type": "move", "data": {"x": 321, "y": 9}}}
        await ws.send(msgspec.msgpack.encode(move))
        seen: list[dict] = []
        while not any(c.get("path", "").endswith(".x") and c.get("value") == 321 for c in seen):
            frame = msgspec.msgpack.decode(await ws.recv())
            for message in frame if isinstance(frame, list) else [frame]:
                if message.get("type") == "delta":
                    seen += message["delta"]["changes"]


async def test_deflate_needs_the_websockets_transport(tmp_path):
    with pytest.raises(ValueError, match="websockets transport"):
        GameApp(Config(data_dir=tmp_path, transport="picows", compression="deflate"))
    with pytest.raises(ValueError, match="unknown compression"):
        GameApp(Config(data_dir=tmp_path, compression="zstd"))
