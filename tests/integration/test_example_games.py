"""The example scripts shipped in scripts/, played through real sockets."""

from __future__ import annotations

import asyncio

import pytest

from gameserver.client import GameError


async def test_tictactoe_plays_to_a_win(clients):
    x, o, late = await clients("x", "o", "late")
    await x.create_room(room_id="t", script_name="tictactoe")
    await o.join_room("t")
    await x.wait_until(lambda s: s["turn"] == "x")

    # The room locked itself once both seats were taken.
    with pytest.raises(GameError) as err:
        await late.join_room("t")
    assert err.value.code == "room_locked"
    assert (await late.list_rooms())[0]["metadata"] == {"status": "playing"}

    # Moving out of turn is refused to that player alone.
    rejected = o.expect("action", clientId="$server")
    await o.send_action("place", {"cell": 4})
    assert (await rejected)["action"] == {"type": "rejected", "data": {"reason": "not your turn"}}

    over_x, over_o = x.expect("action", clientId="$server"), o.expect("action", clientId="$server")
    for player, cell in ((x, 0), (o, 3), (x, 1), (o, 4), (x, 2)):
        await player.wait_until(lambda s, p=player: s["turn"] == p.client_id)
        await player.send_action("place", {"cell": cell})
    for event in (await over_x, await over_o):
        assert event["action"] == {"type": "game_over", "data": {"winner": "x"}}
    state = await o.wait_until(lambda s: s["winner"] == "x")
    assert state["board"] == ["X", "X", "X", "O", "O", "", "", "", ""]
    assert (await late.list_rooms())[0]["metadata"] == {"status": "finished", "result": "x"}
    assert x.resyncs == o.resyncs == 0


async def test_tictactoe_forfeit_when_a_player_leaves(clients):
    x, o = await clients("x", "o")
    await x.create_room(room_id="t", script_name="tictactoe")
    await o.join_room("t")
    await x.wait_until(lambda s: s["turn"] == "x")
    await o.leave_room()
    state = await x.wait_until(lambda s: s["winner"] != "")
    assert state["winner"] == "x"


ROOM_API = """
function onAction(room, clientId, action)
  if action.type == "kick" then room:kick(action.data, "bye") end
  if action.type == "lock" then room:lock() end
  if action.type == "unlock" then room:unlock() end
  if action.type == "whoami" then
    local n = 0
    for _ in pairs(room.players) do n = n + 1 end
    room:send(clientId, "you", {players = n, time = room.time, tick = room.tick, meta = room.metadata.map})
  end
  if action.type == "log" then
    room:log("warning", "from", clientId)
    room:log("critical", "not", "louder")
    room:log("notset", "not lost")
  end
  return false
end
"""


async def test_the_room_api_kick_lock_send_time_players(start_server, caplog):
    server = await start_server()
    server.add_script("api", ROOM_API)
    a, b, c = server.client("a"), server.client("b"), server.client("c")
    for client in (a, b, c):
        await client.connect()
    await a.create_room(room_id="api", script_name="api", tick_rate=32, metadata={"map": "forest"})
    await b.join_room("api")

    async def barrier() -> dict:
        """An action answered by room:send: everything sent before it has run."""
        reply = a.expect("action", clientId="$server")
        await a.send_action("whoami")
        return (await reply)["action"]["data"]

    data = await barrier()
    assert data["players"] == 2 and data["meta"] == "forest"
    assert data["time"] == data["tick"] * 1000 // 32  # ms, derived from the tick

    await a.send_action("lock")
    await barrier()
    with pytest.raises(GameError) as err:
        await c.join_room("api")
    assert err.value.code == "room_locked"

    kicked, seen_by_a = b.expect("player_left"), a.expect("player_left")
    await a.send_action("kick", "b")
    message = await kicked
    assert message["player"]["clientId"] == "b" and message["reason"] == "kicked"
    assert message["message"] == "bye"
    assert b.room_id is None and b.state is None  # the client forgot the room
    assert (await seen_by_a)["reason"] == "kicked"
    with pytest.raises(GameError) as err:
        await b.request_state()
    assert err.value.code == "not_in_room"
    assert (await barrier())["players"] == 1

    await a.send_action("unlock")
    with caplog.at_level("INFO", logger="gameserver.script"):
        await a.send_action("log")
        await barrier()
    script_lines = [r for r in caplog.records if r.name == "gameserver.script"]
    logged = [(r.levelname, r.getMessage().split(": ", 1)[1]) for r in script_lines]
    assert logged[-3:] == [("WARNING", "from a"), ("INFO", "not louder"), ("INFO", "not lost")]
    assert script_lines[-1].getMessage().startswith("room app_")
    assert (await c.join_room("api"))["roomId"] == "api"
    for client in (a, b, c):
        await client.disconnect()


async def test_tag_moves_players_every_tick_and_passes_it_on_a_touch(clients):
    chaser, runner = await clients("chaser", "runner")
    await chaser.create_room(room_id="tag", script_name="tag", tick_rate=64)
    await runner.join_room("tag")
    state = await chaser.wait_until(lambda s: len(s["players"]) == 2)
    assert state["it"] == "chaser"
    start = dict(state["players"]["runner"])

    # The runner moves right: the server integrates its position every tick.
    await runner.send_action("steer", {"vx": 200, "vy": 0})
    moved = await chaser.wait_until(
        lambda s: s["players"]["runner"]["x"] >= min(start["x"] + 20, 500)
    )
    assert moved["players"]["runner"]["y"] == start["y"]
    await runner.send_action("steer", {"vx": 0, "vy": 0})

    # The chaser heads for the runner until it touches: "it" passes on.
    tagged = runner.expect("action", clientId="$server")
    for _ in range(200):
        s = chaser.state["state"]
        me, them = s["players"]["chaser"], s["players"]["runner"]
        dx, dy = them["x"] - me["x"], them["y"] - me["y"]
        norm = max(1.0, (dx * dx + dy * dy) ** 0.5)
        await chaser.send_action("steer", {"vx": 200 * dx / norm, "vy": 200 * dy / norm})
        if tagged.done():
            break
        await asyncio.sleep(0.05)  # a few ticks of game time, then steer again
    event = await tagged
    assert event["action"] == {"type": "tagged", "data": {"by": "chaser", "who": "runner"}}
    await chaser.wait_until(lambda s: s["it"] == "runner")
    assert chaser.resyncs == runner.resyncs == 0
