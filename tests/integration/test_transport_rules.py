"""The WebSocket rules a client sees whichever transport serves it (docs/protocol.md):
handshake refusals, fragmented messages, frame errors, keepalive, close codes.
Every test runs once per transport (the `start_server` fixture)."""

from __future__ import annotations

import asyncio
import logging
import os
import struct
from urllib.parse import urlsplit

import msgspec
import pytest
from websockets.asyncio.client import connect


def query_url(server, client_id: str, **extra: str) -> str:
    tail = "".join(f"&{k}={v}" for k, v in extra.items())
    return f"{server.url}?public_key={server.public_key}&client_id={client_id}{tail}"


UPGRADE_HEADERS = (
    "Upgrade: websocket\r\nConnection: Upgrade\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
)


async def raw_request(server, target: str, headers: str) -> tuple[int, str, bytes]:
    """Send `GET target` with these header lines over a plain socket:
    (status, response head, body)."""
    port = urlsplit(server.url).port
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{headers}\r\n".encode())
    response = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    head, _, body = response.partition(b"\r\n\r\n")
    return int(head.split()[1]), head.decode(), body


async def raw_http(server, target: str) -> tuple[int, bytes]:
    """Send an upgrade request for `target` over a plain socket: (status, body)."""
    status, _, body = await raw_request(server, target, UPGRADE_HEADERS)
    return status, body


def masked_frame(opcode: int, payload: bytes, *, fin: bool = True, rsv1: bool = False) -> bytes:
    """One client frame (masked, payload under 126 bytes), built by hand."""
    mask = os.urandom(4)
    first = (0x80 if fin else 0) | (0x40 if rsv1 else 0) | opcode
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return struct.pack("!BB", first, 0x80 | len(payload)) + mask + masked


PING = msgspec.msgpack.encode({"type": "ping", "requestId": 7, "clientTime": 1.0})


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/v1/game/ws?public_key={key}&client_id=a&pad=" + "x" * 8200, 414),
        ("/v1/game/ws?public_key={key}&client_id=%FF", 400),
        ("/v1/game/nope?public_key={key}&client_id=a", 404),
        ("/v1/game/ws?public_key=cb_pk_nope&client_id=a", 401),
    ],
)
async def test_handshake_refusals(server, path, status):
    got, body = await raw_http(server, path.format(key=server.public_key))
    assert got == status
    assert body.endswith(b"\n") and len(body) < 200  # a short plain-text reason


@pytest.mark.parametrize(
    ("headers", "answer"),
    [
        ("", "Upgrade: websocket"),  # a plain GET
        (UPGRADE_HEADERS.replace(": 13", ": 8"), "Sec-WebSocket-Version: 13"),
    ],
)
async def test_what_is_not_an_rfc_6455_upgrade_gets_426_saying_what_to_send(
    server, headers, answer
):
    target = f"/v1/game/ws?public_key={server.public_key}&client_id=a"
    status, head, body = await raw_request(server, target, headers)
    assert status == 426 and answer.lower() in head.lower()
    assert body.endswith(b"\n") and len(body) < 200


async def test_a_public_key_header_sent_twice_is_refused_400(server, caplog):
    key = f"X-Public-Key: {server.public_key}\r\n"
    status, _, body = await raw_request(
        server, "/v1/game/ws?client_id=a", UPGRADE_HEADERS + key + key
    )
    assert (status, body) == (400, b"X-Public-Key given more than once\n")
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_a_fragmented_message_is_reassembled(server):
    async with connect(query_url(server, "frag"), compression=None) as ws:
        await ws.recv()  # connected
        await ws.send([PING[:5], PING[5:11], PING[11:]])
        reply = msgspec.msgpack.decode(await ws.recv())
        assert reply["type"] == "pong" and reply["requestId"] == 7


async def test_a_fragmented_text_message_is_reassembled(server):
    async with connect(query_url(server, "fragtext", encoding="json"), compression=None) as ws:
        await ws.recv()
        text = '{"type": "ping", "requestId": 8, "clientTime": 1.0, "x": "é"}'
        await ws.send([text[:20], text[20:]])
        reply = msgspec.json.decode(await ws.recv())
        assert reply["type"] == "pong" and reply["requestId"] == 8


async def test_a_fragmented_message_over_the_limit_closes_1009(start_server):
    server = await start_server(max_message_bytes=4096)
    async with connect(query_url(server, "big"), compression=None) as ws:
        await ws.recv()
        await ws.send([b"x" * 2000, b"x" * 2000, b"x" * 2000])
        await asyncio.wait_for(ws.wait_closed(), 5)
        assert ws.close_code == 1009


async def test_a_text_frame_that_is_not_utf8_closes_1007(server):
    async with connect(query_url(server, "t", encoding="json"), compression=None) as ws:
        await ws.recv()
        await ws.send(b'{"type": "\xff"}', text=True)
        await asyncio.wait_for(ws.wait_closed(), 5)
        assert ws.close_code == 1007


@pytest.mark.parametrize(
    "frame",
    [
        masked_frame(0x0, b"stray continuation"),
        masked_frame(0x2, PING, rsv1=True),
        masked_frame(0x3, b"reserved opcode"),
        masked_frame(0x2, b"start", fin=False) + masked_frame(0x2, b"no continuation"),
    ],
)
async def test_a_protocol_violation_closes_1002(server, frame):
    async with connect(query_url(server, "p"), compression=None) as ws:
        await ws.recv()
        ws.transport.write(frame)
        await asyncio.wait_for(ws.wait_closed(), 5)
        assert ws.close_code == 1002


async def test_a_broken_close_frame_is_answered_and_logged_as_1002(server, caplog):
    caplog.set_level(logging.INFO, "gameserver.net")
    async with connect(query_url(server, "closer"), compression=None) as ws:
        await ws.recv()
        ws.transport.write(masked_frame(0x8, struct.pack("!H", 5000) + b"\nforged"))
        await asyncio.wait_for(ws.wait_closed(), 5)
    for _ in range(100):  # the line comes when the server sees the TCP end
        closed = [r for r in caplog.records if getattr(r, "event", "") == "connection_closed"]
        if closed:
            break
        await asyncio.sleep(0.02)
    assert [(r.client, r.code) for r in closed] == [("closer", 1002)]  # ours, not its 5000


async def test_an_unanswered_keepalive_ping_closes_1011(start_server):
    server = await start_server(ping_interval=0.3, close_timeout=0.3)
    async with connect(query_url(server, "k"), compression=None, ping_interval=None) as ws:
        await ws.recv()
        ws.transport.pause_reading()  # the ping is never read, so never answered
        await asyncio.sleep(1.0)
        ws.transport.resume_reading()
        await asyncio.wait_for(ws.wait_closed(), 5)
        assert ws.close_code == 1011


async def test_an_answered_keepalive_keeps_the_connection(start_server):
    server = await start_server(ping_interval=0.2)
    client = server.client("alive")
    await client.connect()
    await asyncio.sleep(1.0)  # several ping rounds
    assert client.is_connected and await client.ping() >= 0
    await client.disconnect()


async def test_closing_with_1000_leaves_and_other_codes_hold_the_seat(start_server):
    server = await start_server(reconnect_grace=5.0)
    host = server.client("host")
    await host.connect()
    await host.create_room(room_id="r")
    for client_id, code, reason in (("quits", 1000, "disconnected"), ("drops", 4000, None)):
        left = host.expect("player_left") if reason else None
        async with connect(query_url(server, client_id), compression=None) as ws:
            await ws.recv()
            await ws.send(
                msgspec.msgpack.encode({"type": "join_room", "requestId": 1, "roomId": "r"})
            )
            while msgspec.msgpack.decode(await ws.recv()).get("requestId") != 1:
                pass
            await ws.close(code)
        if left is not None:
            message = await asyncio.wait_for(left, 5)
            assert message["player"]["clientId"] == client_id and message["reason"] == reason
    await asyncio.sleep(0.2)
    # `quits` is gone; the seat of `drops` is held for its reconnect.
    assert [r["playerCount"] for r in await host.list_rooms()] == [2]
    await host.disconnect()
