"""Two real clients in one `arena` room see each other move through deltas."""

from __future__ import annotations

import asyncio
import copy

import pytest

from gameserver.client import GameError


def position(state, client_id):
    player = state.get("players", {}).get(client_id)
    return None if player is None else (player["x"], player["y"])


@pytest.mark.parametrize("encoding", ["msgpack", "json"])
async def test_two_players_see_each_other_move(clients, server, encoding):
    alice, bob = await clients("alice", "bob", encoding=encoding)
    deltas = []
    bob.on("onDelta", deltas.append)
    created = await alice.create_room(room_id="arena-1", script_name="arena", max_players=8)
    # The creator's snapshot is the room after onInit and its own onPlayerJoin.
    assert created["state"] == {"players": {"alice": {"x": 0, "y": 0, "hp": 100}}, "tick": 0}
    await bob.join_room("arena-1")
    # Both players appear with the arena's starting values.
    for client in (alice, bob):
        state = await client.wait_until(
            lambda s: "alice" in s.get("players", {}) and "bob" in s["players"]
        )
        assert state["players"]["alice"] == {"x": 0, "y": 0, "hp": 100}

    await alice.send_action("move", {"x": 120, "y": 45.5})
    await bob.send_action("move", {"x": 5000, "y": -3})  # clamped to the field
    for client in (alice, bob):
        state = await client.wait_until(
            lambda s: position(s, "alice") == (120, 45.5) and position(s, "bob") == (1000, 0)
        )
        assert state["players"]["alice"]["hp"] == 100

    # Bob learned Alice's position from a delta, not from a snapshot.
    paths = {c["path"] for d in deltas for c in d["changes"]}
    assert {"players.alice.x", "players.alice.y"} <= paths
    # Moves are not relayed as actions in the arena (the delta carries them).
    assert bob.received("action") == []

    # The chain is unbroken and the clients' copies equal the server's state.
    room = server.app.service.directory.get(
        next(iter(server.app.apps.list_apps())).app_id, "arena-1"
    )
    await asyncio.sleep(0.05)
    for client in (alice, bob):
        await client.wait_until(lambda s, c=client: c.state["version"] == room.version, timeout=2)
        assert client.state["state"] == room.state
        assert client.resyncs == 0

    left = alice.expect("player_left")
    await bob.leave_room()
    await left
    state = await alice.wait_until(lambda s: "bob" not in s["players"])
    assert list(state["players"]) == ["alice"]


async def test_deltas_are_versioned_without_gaps_and_never_empty(clients):
    (a,) = await clients("a")
    deltas = []
    a.on("onDelta", deltas.append)
    snapshot = copy.deepcopy(await a.create_room(script_name="arena"))
    await a.wait_until(lambda s: s.get("tick", 0) >= 20)
    assert deltas, "the arena's tick counter changes state every tick"
    assert deltas[0]["fromVersion"] == snapshot["version"]
    for before, after in zip(deltas, deltas[1:], strict=False):
        assert after["fromVersion"] == before["toVersion"] == after["toVersion"] - 1
        assert after["tick"] > before["tick"]
    assert all(d["changes"] for d in deltas)
    # Replaying every delta on the joined snapshot gives the client's state.
    from gameserver import _accel

    replay = snapshot["state"]
    for d in deltas:
        _accel.apply(replay, copy.deepcopy(d["changes"]))
    assert replay == a.state["state"]


async def test_a_late_joiner_gets_a_snapshot_then_the_next_deltas(clients):
    a, b = await clients("a", "b")
    await a.create_room(room_id="late", script_name="arena")
    await a.send_action("move", {"x": 10, "y": 10})
    await a.wait_until(lambda s: position(s, "a") == (10, 10))
    first = []
    b.on("onDelta", first.append)
    joined = await b.join_room("late")
    assert position(joined["state"], "a") == (10, 10)
    # The snapshot already shows what joining did (onPlayerJoin ran first).
    assert position(joined["state"], "b") == (0, 0)
    await b.wait_until(lambda s: s["tick"] > joined["state"]["tick"])
    assert first[0]["fromVersion"] == joined["version"]
    # Nothing about the room reached b before its snapshot.
    kinds = [m["type"] for m in b.inbox]
    assert kinds.index("joined") < kinds.index("delta")


async def test_a_script_with_a_syntax_error_reports_and_the_room_ticks_on(start_server):
    server = await start_server()
    server.add_script("broken", "function onTick(room\n  x = \n")
    a = server.client("a")
    await a.connect()
    error = a.expect("error", code="script_error")
    state = await a.create_room(room_id="b", script_name="broken")
    message = await error
    assert "broken" in message["message"] and message["roomId"] == "b"
    assert state["roomId"] == "b"
    # The room is still there and relays actions like a room without a script.
    relayed = a.expect("action")
    await a.send_action("hello")
    assert (await relayed)["action"]["type"] == "hello"
    await a.disconnect()


async def test_a_failing_hook_reports_script_error_and_the_room_goes_on(start_server):
    server = await start_server()
    server.add_script(
        "flaky",
        "function onInit(room) room.state.n = 0 end\n"
        "function onAction(room, id, action)\n"
        "  if action.type == 'boom' then error('kaboom') end\n"
        "  room.state.n = room.state.n + 1\n"
        "end\n",
    )
    a = server.client("a")
    await a.connect()
    await a.create_room(room_id="f", script_name="flaky")
    error = a.expect("error", code="script_error")
    await a.send_action("boom")
    message = await error
    assert "kaboom" in message["message"] and message["hook"] == "onAction" and message["line"] == 3
    await a.send_action("inc")
    await a.wait_until(lambda s: s.get("n") == 1)
    await a.disconnect()


async def test_the_client_resyncs_after_a_version_gap(clients, server):
    (a,) = await clients("a")
    await a.create_room(room_id="gap", script_name="arena")
    await a.wait_until(lambda s: s.get("tick", 0) >= 3)
    a.state["version"] -= 1  # as if a delta had been lost
    a.state["state"]["tick"] = -1
    await a.wait_until(lambda s: s["tick"] > 3, timeout=3)
    assert a.resyncs == 1
    assert a.received("state"), "the gap was repaired by a fresh snapshot"
    room = server.app.service.directory.get(server.app.apps.list_apps()[0].app_id, "gap")
    await a.wait_until(lambda s: a.state["version"] == room.version, timeout=2)
    assert a.state["state"] == room.state


async def test_an_oninit_error_reaches_the_creator(start_server):
    server = await start_server()
    server.add_script(
        "badinit", 'function onInit(room)\n  room.state.a = 1\n  error("init broke")\nend\n'
    )
    a = server.client("a")
    await a.connect()
    error = a.expect("error", code="script_error")
    await a.create_room(script_name="badinit")
    message = await error
    assert message["hook"] == "onInit" and "init broke" in message["message"]
    assert message["line"] == 3
    await a.wait_until(lambda s: s == {"a": 1})  # changes before the error are kept
    await a.disconnect()


async def test_scripts_see_the_tick_that_applies_an_action(start_server):
    server = await start_server()
    server.add_script(
        "echo",
        "function onAction(room, id, action)\n"
        "  room.state.seen = room.tick\n"
        "  room.state.roll = math.random(1, 1000000000)\n"
        "  return true\n"
        "end\n",
    )
    rolls = []
    for n in range(2):
        a = server.client(f"a{n}")
        await a.connect()
        await a.create_room(script_name="echo")
        relayed = a.expect("action")
        await a.send_action("ping")
        tick = (await relayed)["tick"]
        state = await a.wait_until(lambda s: "seen" in s)
        assert state["seen"] == tick
        rolls.append(state["roll"])
        await a.disconnect()
    assert rolls[0] != rolls[1], "each room's math.random has its own seed"


async def test_a_script_name_outside_the_file_name_alphabet_is_a_bad_request(clients):
    (a,) = await clients("a")
    with pytest.raises(GameError) as err:
        await a.create_room(script_name="my.game")
    assert err.value.code == "bad_request" and "scriptName" in err.value.message


async def test_a_room_whose_script_fails_ten_ticks_in_a_row_closes(start_server):
    server = await start_server(max_failing_ticks=10)
    server.add_script("doomed", "function onTick(room, dt, tick)\n  error('always')\nend\n")
    a = server.client("a")
    await a.connect()
    closed = a.expect("room_closed")
    await a.create_room(room_id="doomed", script_name="doomed")
    message = await asyncio.wait_for(closed, 5)
    assert message == {"type": "room_closed", "roomId": "doomed", "reason": "script_error"}
    errors = [m for m in a.received("error") if m["code"] == "script_error"]
    assert len(errors) == 10 and all(e["hook"] == "onTick" for e in errors)
    assert await a.list_rooms() == []
    # The player is free again.
    assert (await a.create_room(room_id="next"))["roomId"] == "next"
    await a.disconnect()


GATE = """
function onJoinAttempt(room, player)
  if player.metadata.team == "red" then return false, "no reds tonight" end
  if player.metadata.team == "broken" then error("gate broke") end
end
function onChat(room, clientId, message)
  if message == "spam" then return false end
  if message:find("darn", 1, true) then return (message:gsub("darn", "****")) end
end
"""


async def test_join_attempt_and_chat_hooks(start_server):
    server = await start_server()
    server.add_script("gate", GATE)
    owner, red, blue = server.client("owner"), server.client("red"), server.client("blue")
    for client in (owner, red, blue):
        await client.connect()
    await owner.create_room(room_id="g", script_name="gate")
    with pytest.raises(GameError) as err:
        await red.join_room("g", {"team": "red"})
    assert err.value.code == "join_refused" and err.value.message == "no reds tonight"
    with pytest.raises(GameError) as err:  # a failing hook refuses rather than admits
        await red.join_room("g", {"team": "broken"})
    assert err.value.code == "join_refused"
    await blue.join_room("g", {"team": "blue"})

    await blue.send_chat("spam")
    await blue.send_chat("oh darn")
    last = owner.expect("chat", message="gg")
    await blue.send_chat("gg")
    await last
    assert [m["message"] for m in owner.received("chat")] == ["oh ****", "gg"]
    for client in (owner, red, blue):
        await client.disconnect()


async def test_an_infinite_loop_room_beside_a_measured_room(start_server):
    """A room whose every hook loops forever is cut by the instruction budget
    each time and closed after 10 failing ticks; an arena room ticking beside it
    at the same rate keeps an unbroken chain and skips no tick. (A quarter of the
    default budget: about 1 ms of looping per tick here, so that a slow CI
    machine cannot make one budget-sized hook call longer than a tick period.)"""
    server = await start_server(lua_instruction_limit=250_000)
    server.add_script("spin", "function onTick(room) while true do end end\n")
    watcher, spinner = server.client("watcher"), server.client("spinner")
    await watcher.connect()
    await spinner.connect()
    await watcher.create_room(room_id="measured", script_name="arena")
    await watcher.wait_until(lambda s: s["tick"] >= 5)
    stats = server.app.service.scheduler.stats
    skipped_before = stats.skipped
    start_version, start_tick = watcher.state["version"], watcher.state["state"]["tick"]

    closed = spinner.expect("room_closed")
    await spinner.create_room(room_id="spin", script_name="spin")
    message = await asyncio.wait_for(closed, 10)
    assert message["reason"] == "script_error"
    budget_errors = [m for m in spinner.received("error") if "instruction budget" in m["message"]]
    assert len(budget_errors) == 10

    await watcher.wait_until(lambda s: s["tick"] >= start_tick + 64)
    ticks = watcher.state["state"]["tick"] - start_tick
    assert watcher.state["version"] - start_version == ticks  # one delta per tick, no gap
    assert watcher.resyncs == 0
    assert stats.skipped == skipped_before  # nobody fell a whole period behind
    await watcher.disconnect()
    await spinner.disconnect()


async def test_a_room_out_of_memory_closes_at_once(start_server):
    server = await start_server(lua_memory_limit=4 * 1024 * 1024)
    server.add_script(
        "hog",
        "hoard = {}\nfunction onTick(room)\n"
        "  for i = 1, 20000 do hoard[#hoard + 1] = {i} end\nend\n",
    )
    a = server.client("a")
    await a.connect()
    closed = a.expect("room_closed")
    await a.create_room(room_id="hog", script_name="hog")
    assert (await asyncio.wait_for(closed, 10))["reason"] == "script_error"
    errors = [m for m in a.received("error") if m["code"] == "script_error"]
    assert len(errors) == 1 and "memory limit exceeded" in errors[0]["message"]
    await a.disconnect()
