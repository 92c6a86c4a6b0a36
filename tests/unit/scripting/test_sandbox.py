"""The sandbox: what scripts can reach, the instruction budget, the memory cap."""

from __future__ import annotations

import pytest

from gameserver.errors import ScriptError

ABSENT = [
    "os",
    "io",
    "package",
    "require",
    "debug",
    "load",
    "loadfile",
    "dofile",
    "collectgarbage",
    "python",
    "coroutine",
    "rawget",
    "rawset",
    "string.dump",
    "('').dump",
]


@pytest.mark.parametrize("name", ABSENT)
def test_dangerous_globals_are_absent(make_script, name):
    script = make_script(f"function onInit(room) room.state.v = type({name}) end")
    script.init({})
    script.tick(1 / 64, 1)
    assert script.read_state() == {"v": "nil"}


def test_scripts_see_only_their_environment(make_script):
    script = make_script(
        """
        function onInit(room)
            string.upper = nil          -- patches the script's copy only
            room.state.v = {
                env = _G == _ENV,
                strmeta = getmetatable(""),
                upper = ("a"):upper(),
                print = print("hello") == nil,
                version = _VERSION,
            }
        end
        """
    )
    script.init({})
    script.tick(1 / 64, 1)
    assert script.read_state()["v"] == {
        "env": True,
        "strmeta": "string",
        "upper": "A",
        "print": True,
        "version": "Lua 5.4",
    }


def test_gc_metamethods_are_refused(make_script):
    script = make_script("function onInit() setmetatable({}, {__gc = function() end}) end")
    with pytest.raises(ScriptError, match="__gc"):
        script.init({})


LOOPS = {
    "plain": "while true do end",
    "pcall": "while true do pcall(function() while true do end end) end",
    "xpcall": "while true do xpcall(function() while true do end end, function(e) return e end) end",
    "looping handler": "xpcall(function() while true do end end, function() while true do end end)",
    "nested pcall": "pcall(function() pcall(function() while true do end end) while true do end end)",
    "state writes": "local i = 0 while true do i = i + 1 room.state.x = i end",
}


@pytest.mark.parametrize("loop", list(LOOPS.values()), ids=list(LOOPS))
def test_infinite_loops_hit_the_budget_and_the_script_still_works(make_script, loop):
    script = make_script(
        f"function onAction(room, id, a)\n  if a.type == 'loop' then\n    {loop}\n  end\n"
        "  room.state.ok = a.data\nend\n",
        instruction_limit=50_000,
    )
    with pytest.raises(ScriptError) as info:
        script.action("c", {"type": "loop", "data": 0})
    assert info.value.hook == "onAction"
    assert "instruction budget exceeded" in str(info.value)
    assert info.value.line == 3
    script.action("c", {"type": "fine", "data": 1})
    changes, error = script.tick(1 / 64, 1)
    assert error is None
    assert script.read_state()["ok"] == 1


def test_budget_in_on_tick_is_returned_not_raised(make_script):
    script = make_script(
        "function onTick(room) room.state.t = 1 while true do end end", instruction_limit=10_000
    )
    changes, error = script.tick(1 / 64, 1)
    assert changes == [{"path": "t", "operation": "set", "value": 1}]
    assert error is not None and "instruction budget exceeded" in str(error)


def test_budget_is_per_call(make_script):
    # Each call does ~2/3 of the budget: fine however many calls there are.
    script = make_script(
        "function onAction(room) local n = 0 for i = 1, 5000 do n = n + i end room.state.n = n end",
        instruction_limit=30_000,
    )
    for _ in range(5):
        script.action("c", {"type": "x", "data": 0})


def test_top_level_infinite_loop_is_a_load_error(make_script):
    with pytest.raises(ScriptError, match="instruction budget exceeded") as info:
        make_script("while true do end", instruction_limit=10_000)
    assert info.value.hook == "load"


BOMBS = {
    "table": "local t = {} for i = 1, 1e8 do t[i] = i end",
    "strings": "local t = {} for i = 1, 100 do t[i] = string.rep('x', 1 << 20) .. i end",
    "concat": "local s = 'x' while true do s = s .. s end",
    "caught": "pcall(function() local s = 'x' while true do s = s .. s end end) local s = 'y' while true do s = s .. s end",
}


@pytest.mark.parametrize("bomb", list(BOMBS.values()), ids=list(BOMBS))
def test_memory_bomb_is_a_script_error_and_the_script_still_works(make_script, bomb):
    script = make_script(
        f"function onAction(room, id, a)\n  if a.type == 'bomb' then {bomb} end\n  room.state.ok = a.data\nend\n",
        memory_limit=4 << 20,
        instruction_limit=10**8,
    )
    with pytest.raises(ScriptError, match="memory limit exceeded") as info:
        script.action("c", {"type": "bomb", "data": 0})
    assert info.value.hook == "onAction"
    script.action("c", {"type": "fine", "data": 1})
    assert script.tick(1 / 64, 1) == ([{"path": "ok", "operation": "set", "value": 1}], None)
