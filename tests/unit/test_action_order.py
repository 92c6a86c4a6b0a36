"""A tick's queued actions run in arrival order, in Lua batches, with the
same order of relays, room commands and kicks as one Lua call per action."""

from __future__ import annotations

from service_kit import frames, make_game, send, tick

from gameserver.config import BUILTIN_SCRIPTS_DIR

LOGGER = """
function onInit(room) room.state.log = list() end
function onAction(room, id, a)
    table.insert(room.state.log, id .. ":" .. a.type .. ":" .. tostring(a.data))
    if a.type == "shout" then room:broadcast("shout", id) end
    if a.type == "kick" then room:kick(a.data, "bye") end
    return a.type ~= "quiet"
end
"""


def act(kind, data=None):
    return {"type": kind, "data": data}


def test_a_tick_of_actions_keeps_the_order_of_relays_commands_and_kicks(tmp_path):
    (tmp_path / "logger.lua").write_text(LOGGER)
    service, clock = make_game(tick_rate=16, scripts_dirs=(tmp_path, BUILTIN_SCRIPTS_DIR))
    a, b, c = (service.open_session("app", cid, None, None) for cid in "abc")
    send(service, a, {"type": "create_room", "requestId": 1, "config": {"scriptName": "logger"}})
    room_id = frames(service, a)[-1]["roomId"]
    for s in (b, c):
        send(service, s, {"type": "join_room", "requestId": 1, "roomId": room_id})
    tick(service, clock)
    for s in (a, b, c):
        frames(service, s)
    # All queued for one tick; b's last action comes after a kicked b.
    send(service, a, {"type": "action", "action": act("hi")})
    send(service, a, {"type": "action", "action": act("shout")})
    send(service, b, {"type": "action", "action": act("hi")})
    send(service, a, {"type": "action", "action": act("kick", "b")})
    send(service, b, {"type": "action", "action": act("late")})
    send(service, a, {"type": "action", "action": act("quiet")})
    send(service, a, {"type": "action", "action": act("bye")})
    tick(service, clock)
    seen = [
        (m["type"], m.get("clientId") or m.get("player", {}).get("clientId"), m.get("action"))
        for m in frames(service, c)
        if m["type"] in ("action", "player_left")
    ]
    assert seen == [
        ("action", "a", act("hi")),
        ("action", "$server", act("shout", "a")),  # a command comes before its action's relay
        ("action", "a", act("shout")),
        ("action", "b", act("hi")),
        ("player_left", "b", None),
        ("action", "a", act("kick", "b")),
        ("action", "a", act("bye")),
    ]
    room = service.directory.get("app", room_id)
    assert room.state["log"] == [
        "a:hi:nil",
        "a:shout:nil",
        "b:hi:nil",
        "a:kick:b",
        "a:quiet:nil",
        "a:bye:nil",
    ]


COUNTER = """
function onInit(room) room.state.n = 0 end
function onAction(room, id, a)
    room.state.n = room.state.n + 1
    return a.type == "loud"
end
function onTick(room) room:broadcast("tock", room.state.n) end
"""


def test_a_tick_and_its_actions_are_one_lua_call_and_keep_their_order(tmp_path):
    (tmp_path / "counter.lua").write_text(COUNTER)
    service, clock = make_game(tick_rate=16, scripts_dirs=(tmp_path, BUILTIN_SCRIPTS_DIR))
    a, b = (service.open_session("app", cid, None, None) for cid in "ab")
    send(service, a, {"type": "create_room", "requestId": 1, "config": {"scriptName": "counter"}})
    room_id = frames(service, a)[-1]["roomId"]
    send(service, b, {"type": "join_room", "requestId": 1, "roomId": room_id})
    tick(service, clock)
    frames(service, a), frames(service, b)
    script = service.directory.get("app", room_id).logic.script
    calls = []
    step = script._lua_step
    script._lua_step = lambda *args: calls.append(args) or step(*args)
    for kind in ("quiet", "loud", "quiet"):
        send(service, a, {"type": "action", "action": act(kind)})
    tick(service, clock)
    assert len(calls) == 1  # three actions and the tick: one crossing
    seen = [(m["type"], m.get("clientId"), m.get("action")) for m in frames(service, b)]
    # The actions' relays, then what onTick did, then the tick's delta.
    assert seen[:2] == [("action", "a", act("loud")), ("action", "$server", act("tock", 3))]
    assert seen[2][0] == "delta"


# Fills the room's memory to the brim; the driver's own work then fails.
FILL = """
hog = {}
local function fill()
    local n = 1 << 19
    while n >= 8 do
        local ok = pcall(function() hog[#hog + 1] = string.rep("x", n) end)
        if not ok then n = n // 2 end
    end
end
function onAction(room, id, a)
    if a.type == "arm" then room.state.armed = true end
    if a.type == "fill" then room.state.filled = true fill() end
    return true
end
function onTick(room, dt, tick)
    if room.state.armed then
        room.state.armed = nil
        room:broadcast("tock", tick)
        room.state.t = {x = tick, y = {1, 2, 3}}
        fill() -- the changes cannot be collected after this
    end
end
"""


def brief(message):
    if message["type"] == "action":
        return f"action {message['clientId']}:{message['action']['type']}"
    if message["type"] == "error":
        return f"error {message['hook']}"
    return message["type"]


def fill_room(tmp_path, *actions):
    (tmp_path / "fill.lua").write_text(FILL)
    service, clock = make_game(
        tick_rate=16, lua_memory_limit=4 << 20, scripts_dirs=(tmp_path, BUILTIN_SCRIPTS_DIR)
    )
    a = service.open_session("app", "a", None, None)
    config = {"roomId": "r", "scriptName": "fill"}
    send(service, a, {"type": "create_room", "requestId": 1, "config": config})
    tick(service, clock)
    frames(service, a)
    for action in actions:
        send(service, a, {"type": "action", "action": action})
    tick(service, clock)
    return [brief(m) for m in frames(service, a)]


def test_the_driver_out_of_memory_in_ontick_keeps_relays_and_commands_before_the_close(
    tmp_path,
):
    # The tick's call fails after onTick ran: what ran before still counts,
    # in order, and the error names onTick.
    seen = fill_room(tmp_path, act("arm"))
    assert seen == ["action a:arm", "error onTick", "action $server:tock", "room_closed"]


def test_the_driver_out_of_memory_among_actions_still_ticks_what_ran(tmp_path):
    # The second action cannot even be built in Lua: the first one
    # relays, the error names onAction, the tick still sends its changes.
    seen = fill_room(tmp_path, act("fill"), act("next", [1, 2, 3]))
    assert seen == ["action a:fill", "error onAction", "delta", "room_closed"]
