"""A tick's queued actions reach Lua in one call (`LuaRoomScript.actions`),
with the same results as one call per action: the batch stops after an
action that fails or issues room commands, so that the room carries those
out (a kick, say) before the next action runs (tests/unit/test_action_order.py
checks that order through the service)."""

from __future__ import annotations

from test_lua_room import _count_lua_calls

LOGGER = """
function onInit(room) room.state.log = list() end
function onAction(room, id, a)
    local data = type(a.data) == "table" and #a.data.x or tostring(a.data)
    table.insert(room.state.log, id .. ":" .. a.type .. ":" .. data)
    if a.type == "shout" then room:broadcast("shout", id) end
    if a.type == "kick" then room:kick(a.data, "bye") end
    if a.type == "fail" then error("no") end
    return a.type ~= "quiet"
end
"""


def act(kind, data=None):
    return {"type": kind, "data": data}


def log_of(script):
    return script.read_state()["log"]


def test_a_batch_runs_every_action_in_order_in_one_lua_call(make_script):
    script = make_script(LOGGER)
    script.init({})
    counters = _count_lua_calls(script)
    queued = [("a", act("move", 1)), ("b", act("quiet", {"x": [1, 2]})), ("a", act("move", "z"))]
    relays, error = script.actions(queued, 2)
    assert (relays, error) == ([True, False, True], None)
    assert counters["_lua_step"].calls == 1
    assert log_of(script) == ["a:move:1", "b:quiet:2", "a:move:z"]


def test_a_batch_stops_after_an_action_that_issues_room_commands(make_script):
    script = make_script(LOGGER)
    script.init({})
    queued = [("a", act("move")), ("a", act("shout")), ("b", act("move"))]
    relays, error = script.actions(queued, 2)
    assert (relays, error) == ([True, True], None)
    assert [c[:2] for c in script.take_commands()] == [("broadcast", "shout")]
    assert script.actions(queued[2:], 2) == ([True], None)
    assert log_of(script) == ["a:move:nil", "a:shout:nil", "b:move:nil"]


def test_a_batch_stops_at_a_failing_action_with_its_error(make_script):
    script = make_script(LOGGER)
    script.init({})
    relays, error = script.actions([("a", act("quiet")), ("a", act("fail")), ("b", act("move"))], 2)
    assert relays == [False, False]
    assert error is not None and error.hook == "onAction" and error.line == 8
    assert log_of(script) == ["a:quiet:nil", "a:fail:nil"]


def test_actions_without_a_hook_all_relay(make_script):
    script = make_script("")
    assert script.actions([("a", act("x")), ("b", act("y", [1]))], 2) == ([True, True], None)
