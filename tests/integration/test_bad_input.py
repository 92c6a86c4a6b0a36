"""Bad input gets a clear error or a documented close, and the server keeps ticking."""

from __future__ import annotations

import asyncio
import contextlib
import random
import time

import msgspec
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from gameserver.client import GameClient, GameError


def raw_url(server, **query) -> str:
    from urllib.parse import urlencode

    return f"{server.url}?{urlencode(query)}"


@pytest.mark.parametrize(
    "query",
    [
        {"client_id": "a"},
        {"client_id": "a", "public_key": "cb_pk_unknown"},
        {"client_id": "a", "public_key": "cb_sk_looks_like_a_secret"},
        {"client_id": "a", "public_key": "cb_pk_ключ"},
    ],
)
async def test_missing_or_unknown_key_is_refused_with_401(server, query):
    with pytest.raises(InvalidStatus) as err:
        async with connect(raw_url(server, **query)):
            pass
    assert err.value.response.status_code == 401


async def test_key_may_come_as_header(server):
    url = raw_url(server, client_id="h")
    async with connect(url, additional_headers={"X-Public-Key": server.public_key}) as ws:
        hello = msgspec.msgpack.decode(await ws.recv())
        assert hello["type"] == "connected" and hello["clientId"] == "h"


async def test_unknown_path_is_404(server):
    url = (
        server.url.replace("/v1/game/ws", "/nope") + f"?public_key={server.public_key}&client_id=a"
    )
    with pytest.raises(InvalidStatus) as err:
        async with connect(url):
            pass
    assert err.value.response.status_code == 404


@pytest.mark.parametrize(
    ("query", "code"),
    [
        ({}, 4002),
        ({"client_id": ""}, 4002),
        ({"client_id": "x" * 129}, 4002),
        ({"client_id": "tab\there"}, 4002),
        ({"client_id": "a", "encoding": "xml"}, 4003),
    ],
)
async def test_bad_client_id_or_encoding_closes_with_code(server, query, code):
    async with connect(raw_url(server, public_key=server.public_key, **query)) as ws:
        await ws.wait_closed()
        assert ws.close_code == code


async def test_same_client_id_twice_is_refused_unless_resuming(server):
    first = server.client("dup")
    await first.connect()
    second = server.client("dup")
    with pytest.raises(ConnectionError):
        await second.connect()
    assert second.close_code == 4009
    # A wrong resume token is refused the same way.
    third = server.client("dup")
    third.resume_token = "not-the-token"
    with pytest.raises(ConnectionError):
        await third.connect(resume=True)
    assert third.close_code == 4009
    # The real token takes over: the old socket is closed with 4010.
    await first.create_room(room_id="seat")
    taker = server.client("dup")
    taker.resume_token = first.resume_token
    await taker.connect(resume=True)
    assert await first.wait_closed() == 4010
    assert taker.resume_token != first.resume_token
    # The seat is held for the new connection, which takes it back by joining.
    assert [r["playerCount"] for r in await taker.list_rooms()] == [1]
    state = await taker.join_room("seat")
    assert [p["clientId"] for p in state["players"]] == ["dup"]
    await taker.disconnect()


GARBAGE = [
    b"",
    b"\xc1",  # never-used msgpack byte
    b"\xff\xfe\xfd",
    b"\x93\x01\x02",  # truncated array
    msgspec.msgpack.encode(42),
    msgspec.msgpack.encode("ping"),
    msgspec.msgpack.encode([1, 2, 3]),
    msgspec.msgpack.encode({"no": "type"}),
    msgspec.msgpack.encode({"type": 5}),
    msgspec.msgpack.encode({1: 2}),
    b"\x91" * 3000 + b"\xc0",  # nesting far too deep
    b"\xd4\x01\x02",  # ext type at top level
    b"\xa2\xff\xfe",  # invalid UTF-8 string
]


@pytest.mark.parametrize("frame", GARBAGE)
async def test_garbage_frames_get_bad_request_and_the_connection_stays(clients, frame):
    (a,) = await clients("a")
    error = a.expect("error")
    await a.send_raw(frame)
    assert (await error)["code"] == "bad_request"
    assert await a.ping() >= 0  # still served


@pytest.mark.parametrize(
    "payload",
    [
        b'{"type": "ping", "requestId": 1, "clientTime": NaN}',
        b"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[" * 100,
        b'{"type": "action", "action": {"type": "x", "data": 1' + b"0" * 300 + b"}}",
        b'{"type": "chat", "message": "\\ud800"}',
        b"not json",
    ],
)
async def test_json_garbage_gets_bad_request(clients, payload):
    (a,) = await clients("a", encoding="json")
    await a.create_room(room_id="j")
    error = a.expect("error")
    await a.send_raw(payload)
    assert (await error)["code"] == "bad_request"
    assert await a.ping() >= 0


async def test_unknown_type_and_bad_fields(clients):
    (a,) = await clients("a")
    with pytest.raises(GameError) as err:
        await a.request("teleport")
    assert err.value.code == "unknown_type"
    with pytest.raises(GameError) as err:
        await a.request("join_room")  # roomId missing
    assert err.value.code == "bad_request" and "roomId" in err.value.message
    with pytest.raises(GameError) as err:
        await a.request("join_room", roomId=7)
    assert err.value.code == "bad_request"
    with pytest.raises(GameError) as err:
        await a.request("ping", clientTime="soon")
    assert err.value.code == "bad_request"
    with pytest.raises(GameError) as err:
        await a.request("list_rooms", categoryId=["x"])
    assert err.value.code == "bad_request"


@pytest.mark.parametrize(
    "data",
    [
        msgspec.msgpack.Ext(1, b"xx"),
        b"binary",
        float("nan"),
        float("inf"),
        2**64 - 1,
        {1: "int key"},
        [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]],
    ],
)
async def test_action_data_that_is_not_json_shaped_is_refused(clients, data):
    a, b = await clients("a", "b")
    await a.create_room(room_id="r")
    await b.join_room("r")
    error = a.expect("error")
    await a.send({"type": "action", "requestId": 9, "action": {"type": "x", "data": data}})
    message = await error
    assert message["code"] == "bad_request" and message["requestId"] == 9
    # Nothing reached the other member; the room still relays good actions.
    relayed = b.expect("action")
    await a.send_action("ok", {"fine": True})
    assert (await relayed)["action"]["type"] == "ok"
    assert [m["action"]["type"] for m in b.received("action")] == ["ok"]


async def test_chat_over_the_length_cap_is_refused(clients, server):
    (a,) = await clients("a")
    await a.create_room(room_id="r")
    error = a.expect("error")
    await a.send_chat("x" * (server.app.config.max_chat_length + 1))
    assert (await error)["code"] == "bad_request"
    assert a.received("chat") == []


@pytest.mark.parametrize("encoding", ["msgpack", "json"])
async def test_an_action_over_the_size_cap_is_refused(clients, server, encoding):
    """The cap counts type + data as MessagePack bytes in both encodings: a
    4092-character string is 4095 bytes with its 3-byte header, plus 1 for the type."""
    limit = server.app.config.max_action_bytes
    assert limit == 4096
    a, b = await clients("a", "b", encoding=encoding)
    await a.create_room(room_id="r")
    await b.join_room("r")
    error = a.expect("error")
    await a.send({"type": "action", "requestId": 3, "action": {"type": "x", "data": "y" * 4093}})
    message = await error
    assert message["code"] == "bad_request" and message["requestId"] == 3
    assert "4097 bytes" in message["message"] and "4096 bytes" in message["message"]
    relayed = b.expect("action")
    await a.send_action("x", "y" * 4092)  # exactly at the cap: relayed
    assert len((await relayed)["action"]["data"]) == 4092
    assert len(b.received("action")) == 1


async def test_a_frame_over_the_size_limit_closes_1009(start_server):
    server = await start_server(max_message_bytes=4096)
    a = server.client("big")
    await a.connect()
    await a.send_raw(msgspec.msgpack.encode({"type": "chat", "message": "x" * 5000}))
    assert await a.wait_closed() == 1009


async def test_garbage_from_one_client_never_stops_another_rooms_ticks(server, clients):
    """A flood of garbage and bad requests from one client while an arena room
    ticks: the flooder is rate-limited, then closed with 4029; the room's member
    gets an unbroken chain of deltas at the tick rate throughout."""
    (player,) = await clients("player")
    await player.create_room(room_id="arena", script_name="arena", tick_rate=64)
    await player.wait_until(lambda s: s.get("tick", 0) >= 5)
    start_version = player.state["version"]
    start_tick = player.state["state"]["tick"]

    rng = random.Random(7)
    flooder = server.client("flooder")
    await flooder.connect()
    started = time.perf_counter()
    sent = 0
    with contextlib.suppress(ConnectionClosed):
        while time.perf_counter() - started < 1.0 and flooder.is_connected:
            frame = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 64)))
            await flooder.send_raw(rng.choice(GARBAGE + [frame]))
            sent += 1
            if sent % 50 == 0:
                await asyncio.sleep(0)
    assert await flooder.wait_closed() == 4029
    codes = {m["code"] for m in flooder.received("error")}
    assert codes == {"bad_request", "rate_limited"}
    await asyncio.sleep(0.2)
    elapsed = time.perf_counter() - started

    # The arena room ticked on: state.tick counts room ticks one by one, and
    # every delta arrived in order (the client applies them only if unbroken).
    ticks = player.state["state"]["tick"] - start_tick
    assert player.resyncs == 0
    assert player.state["version"] - start_version == ticks
    assert ticks >= 0.8 * 64 * elapsed, (ticks, elapsed)


async def test_the_same_client_can_use_garbage_then_play(clients):
    (a,) = await clients("a")
    for frame in GARBAGE:
        await a.send_raw(frame)
    state = await a.create_room(room_id="after")
    assert state["roomId"] == "after"


async def test_secret_key_is_not_a_public_key(server):
    assert server.secret_key is not None  # each test has a fresh data dir
    client = GameClient(server.url, server.secret_key, "x")
    with pytest.raises(InvalidStatus):
        await client.connect()


async def test_ping_needs_a_finite_client_time(clients):
    (a,) = await clients("a")
    for fields in (
        {},
        {"clientTime": float("nan")},
        {"clientTime": float("inf")},
        {"clientTime": 2**64 - 1},
    ):
        with pytest.raises(GameError) as err:
            await a.request("ping", **fields)
        assert err.value.code == "bad_request"


async def test_ids_in_lookups_are_checked_like_ids_in_creation(clients):
    (a,) = await clients("a")
    for request, fields in (
        ("join_room", {"roomId": "x" * 60_000}),
        ("join_room", {"roomId": ""}),
        ("list_rooms", {"categoryId": "c" * 65}),
    ):
        with pytest.raises(GameError) as err:
            await a.request(request, **fields)
        assert err.value.code == "bad_request"
        assert len(err.value.message) < 200  # the id is not echoed back


async def test_empty_encoding_is_refused(server):
    async with connect(
        raw_url(server, public_key=server.public_key, client_id="e", encoding="")
    ) as ws:
        await ws.wait_closed()
        assert ws.close_code == 4003


async def test_a_query_that_is_not_utf8_is_refused_at_the_handshake(server):
    url = f"{server.url}?public_key={server.public_key}&client_id=%FF%FE"
    with pytest.raises(InvalidStatus) as err:
        async with connect(url):
            pass
    assert err.value.response.status_code == 400


async def test_list_rooms_returns_the_newest_rooms_up_to_the_cap(start_server):
    server = await start_server(max_listed_rooms=3)
    owners = []
    for n in range(5):
        owner = server.client(f"o{n}")
        await owner.connect()
        await owner.create_room(room_id=f"r{n}")
        owners.append(owner)
        await asyncio.sleep(0.002)  # distinct createdAt
    rooms = await owners[0].list_rooms()
    assert [r["id"] for r in rooms] == ["r4", "r3", "r2"]
    for owner in owners:
        await owner.disconnect()
