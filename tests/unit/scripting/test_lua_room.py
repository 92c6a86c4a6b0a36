"""LuaRoomScript: hooks, their arguments, errors, and one Lua call per entry point."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from lupa.lua54 import LuaMemoryError

from gameserver.errors import ScriptError
from gameserver.scripting import LuaRoomScript
from gameserver.scripting.lua_room import _flatten, _flatten_any

PLAYER = {"clientId": "c1", "joinedAt": 1000, "metadata": {"name": "Ann"}}

ECHO = """
function onInit(room, config) room.state.init = {id = room.id, config = config, same = room.config == config} end
function onPlayerJoin(room, p) room.state.joined = p end
function onPlayerLeave(room, p, reason) room.state.left = {id = p.clientId, reason = reason} end
function onAction(room, id, a) room.state.action = {id = id, a = a} return a.type == "relay" end
function onTick(room, dt, tick) room.state.tick = {dt = dt, tick = tick, roomTick = room.tick} end
"""


def test_hooks_receive_plain_tables(make_script):
    script = make_script(ECHO)
    script.init({"mode": "ffa", "limits": [1, 2]})
    script.player_join(PLAYER)
    assert script.action("c1", {"type": "relay", "data": {"x": 1}}) is True
    assert script.action("c1", {"type": "move", "data": None}) is False
    script.player_leave(PLAYER, "disconnected")
    changes, error = script.tick(0.015625, 7)
    assert error is None
    assert {c["path"] for c in changes} == {"init", "joined", "action", "left", "tick"}
    assert script.read_state() == {
        "init": {"id": "room-1", "config": {"mode": "ffa", "limits": [1, 2]}, "same": True},
        "joined": PLAYER,
        "action": {"id": "c1", "a": {"type": "move"}},
        "left": {"id": "c1", "reason": "disconnected"},
        "tick": {"dt": 0.015625, "tick": 7, "roomTick": 7},
    }


def test_absent_hooks_are_fine_and_actions_relay(make_script):
    script = make_script("-- nothing")
    script.init({})
    script.player_join(PLAYER)
    assert script.action("c1", {"type": "x", "data": 1}) is True
    script.player_leave(PLAYER, "left")
    assert script.tick(1 / 64, 1) == ([], None)
    assert script.read_state() == {}


@pytest.mark.parametrize(
    ("ret", "relay"), [("true", True), ("1", True), ("nil", False), ("false", False)]
)
def test_action_relays_when_the_hook_returns_a_true_value(make_script, ret, relay):
    script = make_script(f"function onAction() return {ret} end")
    assert script.action("c1", {"type": "x", "data": 1}) is relay


def test_big_python_ints_arrive_as_floats(make_script):
    script = make_script("function onAction(room, id, a) room.state.v = math.type(a.data) end")
    script.action("c", {"type": "x", "data": 2**70})
    script.tick(1 / 64, 1)
    assert script.read_state() == {"v": "float"}


def test_python_objects_never_reach_lua(make_script):
    script = make_script("")
    with pytest.raises(TypeError):
        script.action("c", {"type": "x", "data": object()})


def test_syntax_error_is_a_load_error_with_line():
    with pytest.raises(ScriptError) as info:
        LuaRoomScript(
            "bad.lua",
            "local a = 1\n\nlocal = 2\n",
            room_id="r",
            memory_limit=1 << 24,
            instruction_limit=1000,
        )
    err = info.value
    assert (err.hook, err.line, err.script) == ("load", 3, "bad.lua")
    assert str(err).startswith("bad.lua:3:")
    assert err.code == "script_error"


def test_top_level_error_is_a_load_error():
    with pytest.raises(ScriptError) as info:
        LuaRoomScript(
            "t.lua", "\nerror('nope')", room_id="r", memory_limit=1 << 24, instruction_limit=1000
        )
    assert (info.value.hook, info.value.line, str(info.value)) == ("load", 2, "t.lua:2: nope")


def test_hook_error_has_script_hook_and_line(make_script):
    script = make_script(
        "function onAction(room, id, a)\n"
        "  room.state.before = 1\n"
        "  local x = room.state.nope.field\n"
        "end\n",
        name="arena.lua",
    )
    with pytest.raises(ScriptError) as info:
        script.action("c", {"type": "x", "data": 1})
    err = info.value
    assert (err.script, err.hook, err.line) == ("arena.lua", "onAction", 3)
    assert str(err).startswith("arena.lua:3: attempt to index a nil value")
    # The write made before the failure is kept and collected.
    assert script.tick(1 / 64, 1) == ([{"path": "before", "operation": "set", "value": 1}], None)


def test_errors_without_position_get_the_script_line(make_script):
    script = make_script(
        "function onPlayerJoin(room, p)\n  error({code = 1})\nend\n"
        "function onPlayerLeave(room, p)\n  error('plain', 0)\nend\n"
    )
    with pytest.raises(ScriptError) as info:
        script.player_join(PLAYER)
    assert (info.value.hook, info.value.line) == ("onPlayerJoin", 2)
    assert str(info.value) == "test.lua:2: (error object is a table value)"
    with pytest.raises(ScriptError) as info:
        script.player_leave(PLAYER, "left")
    assert (info.value.hook, str(info.value)) == ("onPlayerLeave", "test.lua:5: plain")


def test_error_level_two_keeps_the_callers_line(make_script):
    script = make_script(
        "local function check(v)\n  error('bad value', 2)\nend\n"
        "function onInit(room, config)\n  check(1)\nend\n"
    )
    with pytest.raises(ScriptError) as info:
        script.init({})
    assert (info.value.hook, info.value.line) == ("onInit", 5)


def test_tick_returns_its_error_with_the_changes(make_script):
    script = make_script(
        "function onTick(room, dt, tick)\n  room.state.t = tick\n  error('late')\nend\n"
    )
    changes, error = script.tick(1 / 64, 3)
    assert changes == [{"path": "t", "operation": "set", "value": 3}]
    assert isinstance(error, ScriptError)
    assert (error.hook, error.line, str(error)) == ("onTick", 3, "test.lua:3: late")
    # The room keeps ticking.
    assert script.tick(1 / 64, 4)[0] == [{"path": "t", "operation": "set", "value": 4}]


def test_error_messages_with_invalid_utf8_are_readable(make_script):
    script = make_script("function onInit() error('bad \\255 byte') end")
    with pytest.raises(ScriptError, match="bad \ufffd byte"):
        script.init({})


class _Counter:
    def __init__(self, fn):
        self.fn, self.calls = fn, 0

    def __call__(self, *args):
        self.calls += 1
        return self.fn(*args)


def _count_lua_calls(script: LuaRoomScript) -> dict[str, _Counter]:
    counters = {}
    for attr, fn in list(vars(script).items()):
        if attr.startswith("_lua_"):
            counters[attr] = _Counter(fn)
            setattr(script, attr, counters[attr])
    return counters


def test_one_lua_call_per_entry_point(make_script):
    script = make_script(ECHO)
    counters = _count_lua_calls(script)

    def total():
        return sum(c.calls for c in counters.values())

    for call in (
        lambda: script.init({"a": 1}),
        lambda: script.player_join(PLAYER),
        lambda: script.action("c1", {"type": "move", "data": {"x": 1}}),
        lambda: script.player_leave(PLAYER, "left"),
        lambda: script.tick(1 / 64, 1),
    ):
        before = total()
        call()
        assert total() == before + 1


def test_close_makes_later_calls_fail(make_script):
    script = make_script("")
    script.close()
    script.close()
    with pytest.raises(RuntimeError):
        script.tick(1 / 64, 1)


def test_a_lost_batch_is_followed_by_the_whole_state(make_script):
    script = make_script("function onAction(room, id, a) room.state[a.type] = a.data end")
    script.action("c", {"type": "a", "data": 1})
    real_step = script._lua_step

    def failing(*args):
        real_step(*args)  # the batch is collected, then lost on the way
        raise LuaMemoryError("not enough memory")

    script._lua_step = failing
    changes, error = script.tick(1 / 64, 1)
    assert changes == [] and error is not None and "memory limit exceeded" in str(error)
    script._lua_step = real_step
    script.action("c", {"type": "b", "data": 2})
    changes, error = script.tick(1 / 64, 2)
    assert error is None
    assert changes == [{"path": "", "operation": "set", "value": {"a": 1, "b": 2}}]
    assert script.tick(1 / 64, 3) == ([], None)


def test_dispose_runs_the_ondispose_hook(make_script):
    from gameserver.errors import ScriptError

    script = make_script("function onDispose(room) error('bye from ' .. room.id) end")
    with pytest.raises(ScriptError) as err:
        script.dispose()
    assert err.value.hook == "onDispose" and "bye from room-1" in str(err.value)


scalars = st.one_of(
    st.none(), st.booleans(), st.floats(allow_nan=False), st.text(max_size=4),
    st.integers(-(2**70), 2**70),
)  # fmt: skip
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=9)
    ),
    max_leaves=12,
)


def outcome(flatten, value):
    try:
        return flatten(value)
    except TypeError as exc:  # a key that is not a string
        return str(exc)


keys = st.one_of(st.text(max_size=3), st.integers(0, 3))


@given(st.one_of(json_values, st.dictionaries(keys, scalars, max_size=10)))
def test_the_flat_map_shortcut_flattens_as_the_general_path_does(value):
    assert outcome(_flatten, value) == outcome(_flatten_any, value)


present = st.one_of(
    st.booleans(), st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=4),
    st.integers(-(2**63), 2**63 - 1),
)  # fmt: skip


@given(st.dictionaries(st.text(max_size=3), present, max_size=10))
def test_flat_map_data_reaches_onaction_as_sent(data):
    # Up to 8 keys take the driver's flat-map shortcut, more the general path.
    script = LuaRoomScript(
        "echo.lua",
        """function onAction(room, id, a)
            room.state.pairs = list()
            for k, v in pairs(a.data) do table.insert(room.state.pairs, list(k, v)) end
        end""",
        room_id="r",
        memory_limit=8 << 20,
        instruction_limit=100_000,
    )
    try:
        script.action("c", {"type": "t", "data": data})
        assert sorted(map(tuple, script.read_state()["pairs"])) == sorted(data.items())
    finally:
        script.close()
