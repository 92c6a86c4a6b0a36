"""Library calls the instruction budget cannot stop, bounded; the room's seeded math.random."""

from __future__ import annotations

import time

import pytest

from gameserver.errors import ScriptError
from gameserver.scripting import LuaRoomScript


def _value(script: LuaRoomScript) -> object:
    script.tick(1 / 64, 1)
    return script.read_state().get("v")


def run(make_script, body: str, **limits: int) -> object:
    """Runs `body` in onAction; what it stored in room.state.v."""
    script = make_script(f"function onAction(room, id, a)\n{body}\nend\n", **limits)
    script.action("c", {"type": "x", "data": None})
    return _value(script)


def refused(make_script, body: str) -> str:
    """Runs `body` in onAction, which must fail fast; the error message."""
    script = make_script(f"function onAction(room, id, a)\n{body}\nend\n")
    start = time.perf_counter()
    with pytest.raises(ScriptError) as info:
        script.action("c", {"type": "x", "data": None})
    assert time.perf_counter() - start < 0.05
    assert info.value.line == 2
    return str(info.value)


# Patterns ------------------------------------------------------------------


@pytest.mark.parametrize("fn", ["find", "match", "gmatch", "gsub"])
def test_pattern_subject_is_capped(make_script, fn):
    call = f"s:{fn}('a', '')" if fn == "gsub" else f"string.{fn}(s, 'a')"
    message = refused(make_script, f"local s = string.rep('x', 16385) local r = {call}")
    assert message == f"test.lua:2: string.{fn}: subject longer than 16384 bytes"


def test_pattern_length_is_capped(make_script):
    message = refused(make_script, "local r = ('abc'):find(string.rep('a', 257))")
    assert message == "test.lua:2: string.find: pattern longer than 256 bytes"


BACKTRACKERS = {
    "a*b": 4096,
    ".-b": 4096,
    "a*a*b": 1024,
    "[%w%s]*%d$": 4096,
    "(a*)%1b": 4096,
    "^a*a*a*b": 512,
    "%b()%b()x": 4096,
}


@pytest.mark.parametrize("pattern", list(BACKTRACKERS))
def test_backtracking_patterns_on_long_subjects_are_refused(make_script, pattern):
    n = BACKTRACKERS[pattern]
    body = f"local s = string.rep('a', {n}) local r = s:find({pattern!r})"
    assert "pattern too complex for a subject of" in refused(make_script, body)


def test_ordinary_patterns_on_long_subjects_still_work(make_script):
    body = """
    local s = string.rep('ab 12,', 2730)  -- 16380 bytes
    local words = 0
    for w in s:gmatch('%a+') do words = words + 1 end
    local swapped = s:gsub('(%a)(%a)', '%2%1')
    room.state.v = {
        find = s:find('12,ab', 1, true),
        digits = s:match('%d+'),
        head = s:match('^(%a+) '),
        words = words,
        swapped = swapped:sub(1, 6),
        trim = ('   ' .. string.rep('x', 100) .. '   '):match('^%s*(.-)%s*$'):len(),
    }
    """
    assert run(make_script, body, instruction_limit=100_000) == {
        "find": 4,
        "digits": "12",
        "head": "ab",
        "words": 2730,
        "swapped": "ba 12,",
        "trim": 100,
    }


def test_library_errors_point_at_the_script_line(make_script):
    message = refused(make_script, "local r = ('abc'):find('%')")
    assert message == "test.lua:2: malformed pattern (ends with '%')"
    message = refused(make_script, "local r = string.find({}, 'a')")
    assert message == "test.lua:2: bad argument #1 to 'find' (string expected, got table)"


# string.rep, table functions ----------------------------------------------------


@pytest.mark.parametrize(
    "call",
    [
        "string.rep('x', 1 << 20 + 1)",
        "('x'):rep(1 << 40)",
        "string.rep('ab', 1 << 19, ',')",
        "string.rep('', 1 << 62, 'x')",
        "string.rep('x', '1e12')",
    ],
)
def test_string_rep_result_is_capped(make_script, call):
    message = refused(make_script, f"local r = {call}")
    assert message == "test.lua:2: string.rep: result longer than 1048576 bytes"


def test_string_rep_up_to_the_cap_works(make_script):
    assert run(make_script, "room.state.v = #string.rep('ab', 1 << 19)") == 1 << 20
    assert run(make_script, "room.state.v = ('ab'):rep(3, ',')") == "ab,ab,ab"


SPANS = {
    "concat": "table.concat(t, '', 1, 1 << 40)",
    "concat ": "table.concat(t, '', '1', '1e12')",
    "unpack": "table.unpack(t, 1, 1 << 40)",
    "insert": "table.insert(t, 1, 'x')",
    "remove": "table.remove(t, 1)",
    "sort": "table.sort(t)",
    "move": "table.move(t, 1, 1 << 40, 2)",
}


@pytest.mark.parametrize("name", list(SPANS))
def test_table_functions_refuse_long_walks_through_c_metamethods(make_script, name):
    # Each step runs only C functions: the budget would never see it.
    body = (
        "local t = setmetatable({}, {__index = table.concat, __newindex = rawequal,"
        " __len = function() return 1 << 40 end, __lt = rawequal})\n"
        f"local r = {SPANS[name]}"
    )
    body = body.replace("\n", " ")
    message = refused(make_script, body)
    expected = f"table.{name.strip()}: more than 32768 elements of a table with a metatable"
    assert expected in message


@pytest.mark.parametrize(
    "call",
    [
        "table.move({}, 1, 1 << 40, 2)",
        "table.sort(big)",
        "table.concat(big, ',')",
        "table.move(big, 1, #big, 2, {})",
    ],
)
def test_long_walks_over_plain_tables_are_refused(make_script, call):
    body = f"local big = {{}} for i = 1, 32769 do big[i] = i end local r = {call}"
    script = make_script(
        f"function onAction(room, id, a)\n{body}\nend\n", instruction_limit=1_000_000
    )
    with pytest.raises(ScriptError, match=r"table\.\w+: more than 32768 elements$"):
        script.action("c", {"type": "x", "data": None})


def test_walks_up_to_the_span_work(make_script):
    body = (
        "local big = {} for i = 1, 32768 do big[i] = 32769 - i end table.sort(big)"
        " local moved = table.move(big, 1, #big, 1, {})"
        " room.state.v = #table.concat(moved, ',') > 0 and moved[1] == 1"
    )
    assert run(make_script, body, instruction_limit=1_000_000) is True


def test_table_functions_still_work_on_state_lists(make_script):
    body = """
    room.state.l = list(3, 1, 2)
    local l = room.state.l
    table.insert(l, 4)
    table.sort(l)
    table.remove(l, 1)
    room.state.v = table.concat(l, ',') .. ';' .. select('#', table.unpack(l))
    """
    assert run(make_script, body) == "2,3,4;3"


# math.random ---------------------------------------------------------------

ROLLS = """
local r = list()
for i = 1, 5 do r[#r + 1] = math.random(1, 1000000) end
r[#r + 1] = math.random(6)
r[#r + 1] = math.random()
r[#r + 1] = math.random(0)
room.state.v = r
"""


def _rolls(seed: int | None) -> tuple[int, list[object]]:
    script = LuaRoomScript(
        "t.lua",
        f"function onInit(room){ROLLS}end",
        room_id="r",
        memory_limit=1 << 24,
        instruction_limit=10_000,
        seed=seed,
    )
    try:
        script.init({})
        rolls = script.read_state()["v"]
        return script.seed, rolls
    finally:
        script.close()


def test_same_seed_same_sequence():
    seed, rolls = _rolls(12345)
    assert seed == 12345
    assert _rolls(12345)[1] == rolls
    assert _rolls(12346)[1] != rolls
    assert all(1 <= r <= 1_000_000 for r in rolls[:5])
    assert 1 <= rolls[5] <= 6 and 0 <= rolls[6] < 1 and isinstance(rolls[7], int)


def test_seed_is_chosen_and_kept_when_not_given():
    seed_a, rolls_a = _rolls(None)
    seed_b, rolls_b = _rolls(None)
    assert seed_a != seed_b and rolls_a != rolls_b
    assert 0 <= seed_a < 2**64
    assert _rolls(seed_a)[1] == rolls_a


@pytest.mark.parametrize("seed", [0, 2**63, 2**64 - 1])
def test_whole_seed_range_is_accepted(seed):
    assert _rolls(seed)[0] == seed


@pytest.mark.parametrize("seed", [-1, 2**64])
def test_seed_out_of_range_is_refused(seed):
    with pytest.raises(ValueError):
        _rolls(seed)


def test_randomseed_reseeds_deterministically(make_script):
    body = "math.randomseed(42) local a = math.random(1 << 40) math.randomseed(42)"
    body += " room.state.v = a == math.random(1 << 40)"
    assert run(make_script, body) is True


def test_randomseed_without_a_seed_is_an_error(make_script):
    assert "math.randomseed needs a seed" in refused(make_script, "math.randomseed()")


def test_random_keeps_lua_argument_errors(make_script):
    assert "interval is empty" in refused(make_script, "local r = math.random(5, 1)")


def test_the_tick_budget_bounds_all_hook_calls_of_a_tick_together(make_script):
    from gameserver.errors import ScriptError

    # Each action runs about 80% of the per-call budget: one fits in a tick's
    # budget of 1.5 calls, a second in the same tick does not.
    script = make_script(
        "function onAction(room) local x = 0 for i = 1, 40000 do x = x + i end end",
        instruction_limit=100_000,
        tick_instruction_limit=150_000,
    )
    script.action("a", {"type": "work", "data": None}, 5)
    with pytest.raises(ScriptError) as err:
        script.action("b", {"type": "work", "data": None}, 5)
    assert "instruction budget exceeded" in str(err.value)
    script.tick(1 / 64, 5)  # the tick ends: the next one starts with a full budget
    script.action("a", {"type": "work", "data": None}, 6)
    script.action("a", {"type": "work", "data": None}, -1)  # outside ticks: per call only
    script.action("a", {"type": "work", "data": None}, -1)
