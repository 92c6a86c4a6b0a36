"""Every row of the protocol tables, over real sockets, in both encodings."""

from __future__ import annotations

import asyncio
import time

import pytest

from gameserver.client import GameError

ENCODINGS = ["msgpack", "json"]


@pytest.mark.parametrize("encoding", ENCODINGS)
async def test_connected_carries_identity_and_protocol_version(server, encoding):
    client = server.client("alice", encoding=encoding)
    await client.connect()
    hello = client.received("connected")[0]
    assert hello["clientId"] == "alice"
    assert hello["protocolVersion"] == 1
    assert isinstance(hello["serverTime"], int) and hello["serverTime"] > 1_600_000_000_000
    assert isinstance(hello["resumeToken"], str) and len(hello["resumeToken"]) >= 16
    await client.disconnect()


@pytest.mark.parametrize("encoding", ENCODINGS)
async def test_create_join_state_and_list(clients, encoding):
    a, b = await clients("a", "b", encoding=encoding)
    state = await a.create_room(
        room_id="r1", category_id="duel", max_players=4, tick_rate=32, metadata={"map": "forest"}
    )
    assert state["roomId"] == "r1"
    assert state["version"] == 0
    assert state["tickRate"] == 32
    assert state["state"] == {}
    assert [p["clientId"] for p in state["players"]] == ["a"]

    joined_seen = a.expect("player_joined")
    state_b = await b.join_room("r1", {"team": "blue"})
    assert [p["clientId"] for p in state_b["players"]] == ["a", "b"]
    assert state_b["players"][1]["metadata"] == {"team": "blue"}
    assert (await joined_seen)["player"]["clientId"] == "b"

    fresh = await b.request_state()
    assert fresh["roomId"] == "r1" and fresh["version"] == 0
    assert b.received("state")[-1]["roomId"] == "r1"

    rooms = await a.list_rooms()
    assert rooms == [
        {
            "id": "r1",
            "categoryId": "duel",
            "playerCount": 2,
            "maxPlayers": 4,
            "tickRate": 32,
            "metadata": {"map": "forest"},
            "createdAt": rooms[0]["createdAt"],
        }
    ]
    assert await a.list_rooms("other") == []
    assert len(await a.list_rooms("duel")) == 1


async def test_defaults_of_a_new_room(clients, server):
    (a,) = await clients("a")
    state = await a.create_room()
    assert state["tickRate"] == server.app.config.tick_rate == 64
    assert state["roomId"].startswith("room_")
    (info,) = await a.list_rooms()
    assert info["maxPlayers"] == 100
    assert info["categoryId"] is None


@pytest.mark.parametrize("encoding", ENCODINGS)
async def test_leave_room_replies_left_and_tells_the_others(clients, encoding):
    a, b = await clients("a", "b", encoding=encoding)
    await a.create_room(room_id="r")
    await b.join_room("r")
    left_seen = a.expect("player_left")
    reply = await b.request("leave_room")
    assert reply == {"type": "left", "requestId": reply["requestId"], "roomId": "r"}
    left = await left_seen
    assert left["player"]["clientId"] == "b" and left["reason"] == "left"
    with pytest.raises(GameError) as err:
        await b.request("leave_room")
    assert err.value.code == "not_in_room"


@pytest.mark.parametrize("encoding", ENCODINGS)
async def test_actions_are_relayed_in_a_room_without_script(clients, encoding):
    a, b = await clients("a", "b", encoding=encoding)
    await a.create_room(room_id="relay")
    await b.join_room("relay")
    seen_by_b = b.expect("action")
    seen_by_a = a.expect("action")
    await a.send_action(
        "attack", {"targetId": "enemy-1", "damage": 50, "path": [1, 2.5, None, True]}
    )
    for message in (await seen_by_a, await seen_by_b):
        assert message["roomId"] == "relay"
        assert message["clientId"] == "a"
        assert message["action"] == {
            "type": "attack",
            "data": {"targetId": "enemy-1", "damage": 50, "path": [1, 2.5, None, True]},
        }
        assert isinstance(message["tick"], int) and message["tick"] >= 1
    # A room without a script keeps its state as it is: no delta, version stays.
    assert (await b.request_state())["version"] == 0
    assert b.received("delta") == []


async def test_an_action_author_is_the_connection_whatever_the_payload_says(clients):
    a, b = await clients("a", "b")
    await a.create_room(room_id="r")
    await b.join_room("r")
    seen = b.expect("action")
    await a.send(
        {"type": "action", "clientId": "b", "action": {"type": "x", "data": None, "clientId": "b"}}
    )
    assert (await seen)["clientId"] == "a"


@pytest.mark.parametrize("encoding", ENCODINGS)
async def test_chat_reaches_every_member(clients, encoding):
    a, b = await clients("a", "b", encoding=encoding)
    await a.create_room(room_id="chat")
    await b.join_room("chat")
    at_a, at_b = a.expect("chat"), b.expect("chat")
    before = a.received("connected")[0]["serverTime"]
    await b.send_chat("hello everyone! 안녕 🎮")
    for message in (await at_a, await at_b):
        assert message["roomId"] == "chat"
        assert message["senderId"] == "b"
        assert message["message"] == "hello everyone! 안녕 🎮"
        assert message["timestamp"] >= before


@pytest.mark.parametrize("encoding", ENCODINGS)
async def test_ping_pong_echoes_client_time(clients, encoding):
    (a,) = await clients("a", encoding=encoding)
    pongs = []
    a.on("onPong", pongs.append)
    reply = await a.request("ping", clientTime=12345)
    assert reply["type"] == "pong"
    assert reply["clientTime"] == 12345
    assert isinstance(reply["serverTime"], int)
    rtt = await a.ping()
    assert 0 <= rtt < 1000 and len(pongs) == 2


async def test_request_id_strings_are_echoed(clients):
    (a,) = await clients("a")
    reply_future = a.expect("pong", requestId="req-α")
    await a.send({"type": "ping", "requestId": "req-α", "clientTime": 1})
    assert (await reply_future)["clientTime"] == 1


async def test_a_frame_may_carry_an_array_of_messages_handled_in_order(clients):
    (a,) = await clients("a")
    last = a.expect("rooms", requestId=3)
    await a.send(
        [
            {"type": "create_room", "requestId": 1, "config": {"roomId": "batch"}},
            {"type": "ping", "requestId": 2, "clientTime": 7},
            {"type": "list_rooms", "requestId": 3},
        ]
    )
    rooms = (await last)["rooms"]
    assert [r["id"] for r in rooms] == ["batch"]
    kinds = [m["type"] for m in a.inbox if m.get("requestId") in (1, 2, 3)]
    assert kinds == ["joined", "pong", "rooms"]


async def test_room_errors(clients):
    a, b, c = await clients("a", "b", "c")
    with pytest.raises(GameError) as err:
        await a.join_room("nowhere")
    assert err.value.code == "room_not_found"
    await a.create_room(room_id="solo", max_players=1)
    with pytest.raises(GameError) as err:
        await b.join_room("solo")
    assert err.value.code == "room_full"
    with pytest.raises(GameError) as err:
        await b.create_room(room_id="solo")
    assert err.value.code == "room_exists"
    with pytest.raises(GameError) as err:
        await a.create_room(room_id="second")
    assert err.value.code == "already_in_room"
    with pytest.raises(GameError) as err:
        await a.join_room("solo")
    assert err.value.code == "already_in_room"
    for request in ("get_state", "leave_room"):
        with pytest.raises(GameError) as err:
            await c.request(request)
        assert err.value.code == "not_in_room"
    errors = c.expect("error")
    await c.send_action("move", {"x": 1})
    assert (await errors)["code"] == "not_in_room"
    errors = c.expect("error")
    await c.send_chat("hi")
    assert (await errors)["code"] == "not_in_room"
    with pytest.raises(GameError) as err:
        await c.create_room(script_name="no-such-script")
    assert err.value.code == "script_not_found"


@pytest.mark.parametrize(
    "config",
    [
        {"maxPlayers": 0},
        {"maxPlayers": 10_001},
        {"tickRate": 0},
        {"tickRate": 129},
        {"roomId": ""},
        {"roomId": "has space"},
        {"roomId": "x" * 65},
        {"roomId": 12},
        {"metadata": {"k": 1}},
        {"metadata": {f"k{i}": "v" for i in range(33)}},
        {"scriptName": "../etc/passwd"},
        {"maxPlayers": "8"},
    ],
)
async def test_bad_room_config_is_a_bad_request(clients, config):
    (a,) = await clients("a")
    with pytest.raises(GameError) as err:
        await a.request("create_room", config=config)
    assert err.value.code == "bad_request"
    assert await a.list_rooms() == []


async def test_exactly_max_players_of_simultaneous_joiners_get_in(server, clients):
    (owner,) = await clients("owner")
    await owner.create_room(room_id="hot", max_players=5)
    joiners = await clients(*[f"j{i}" for i in range(20)])
    results = await asyncio.gather(*(j.join_room("hot") for j in joiners), return_exceptions=True)
    ok = [r for r in results if isinstance(r, dict)]
    full = [r for r in results if isinstance(r, GameError) and r.code == "room_full"]
    assert len(ok) == 4 and len(full) == 16
    assert (await owner.list_rooms())[0]["playerCount"] == 5
    assert len((await owner.request_state())["players"]) == 5


async def test_a_dropped_socket_leaves_its_room_at_once(clients):
    a, b = await clients("a", "b")
    await a.create_room(room_id="r")
    await b.join_room("r")
    left = a.expect("player_left")
    await b.disconnect()
    message = await left
    assert message["player"]["clientId"] == "b" and message["reason"] == "disconnected"
    assert [p["clientId"] for p in (await a.request_state())["players"]] == ["a"]


async def test_rooms_of_one_app_are_invisible_to_another(server, clients):
    other = server.app.apps.create_app("other-game")
    (a,) = await clients("a")
    await a.create_room(room_id="mine")
    from gameserver.client import GameClient

    stranger = GameClient(server.url, other.app.public_key, "a")  # same client id, other app
    await stranger.connect()
    try:
        assert await stranger.list_rooms() == []
        with pytest.raises(GameError) as err:
            await stranger.join_room("mine")
        assert err.value.code == "room_not_found"
    finally:
        await stranger.disconnect()


async def test_shutdown_closes_rooms_and_sockets(start_server):
    server = await start_server()
    a = server.client("a")
    await a.connect()
    await a.create_room(room_id="r")
    closed = a.expect("room_closed")
    await server.app.stop()
    message = await closed
    assert message == {"type": "room_closed", "roomId": "r", "reason": "server_shutdown"}
    assert await a.wait_closed() == 1001


async def test_a_due_tick_runs_from_the_input_path_when_the_loops_timers_lag(server, clients):
    # Under load, one round of reading sockets holds the loop's timers back;
    # a frame handled after a tick's deadline runs that tick at once.
    (player,) = await clients("p")
    await player.create_room(script_name="arena", tick_rate=64)
    await player.wait_until(lambda s: s.get("tick", 0) >= 2)
    (room,) = server.app.service.directory
    ticks = server.app.server.ticks
    time.sleep(0.05)  # the loop is held: its timer cannot fire
    before = room.tick
    ticks.after_input()
    ran = room.tick
    assert ran > before  # at once, from the input path
    ticks.after_input()  # the next deadline is a period away: never early
    assert room.tick == ran


async def test_a_faster_room_starts_ticking_at_once_beside_a_slow_one(clients):
    # The tick timer sleeps until the next deadline; a new tick rate can bring
    # that deadline forward, and the timer must notice rather than oversleep.
    slow, fast = await clients("slow", "fast")
    await slow.create_room(script_name="arena", tick_rate=1)
    first = (await slow.wait_until(lambda s: s.get("tick", 0) >= 1, timeout=3))["tick"]
    await slow.wait_until(lambda s: s["tick"] > first, timeout=3)  # just ticked: ~1 s to the next
    await fast.create_room(script_name="arena", tick_rate=64)
    started = asyncio.get_running_loop().time()
    await fast.wait_until(lambda s: s.get("tick", 0) >= 8, timeout=3)
    assert asyncio.get_running_loop().time() - started < 0.6  # 8 ticks at 64 Hz: 0.125 s
