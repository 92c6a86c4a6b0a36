"""Known sandbox escapes and abuses: each is refused or contained.

"Refused": the script gets nil or a Lua error. "Contained": the hook fails
with a ScriptError, quickly, and the runtime (and every other runtime) keeps
working. Budgets stay small: pytest-timeout cannot interrupt a running Lua
loop, so a probe that escaped would hang rather than fail.
"""

from __future__ import annotations

import time

import pytest

from gameserver.errors import ScriptError

FINE = "room.state.ok = (room.state.ok or 0) + 1"


def hook(body: str) -> str:
    """An onAction that runs `body` for action type 'probe', else records it ran."""
    return f"function onAction(room, id, a)\n  if a.type == 'probe' then\n{body}\n  end\n  {FINE}\nend\n"


def probe(make_script, body: str, **limits: int) -> object:
    """Runs `body` as a probe that must not fail; what it stored in room.state.v."""
    script = make_script(hook(body), **limits)
    script.action("c", {"type": "probe", "data": None})
    script.tick(1 / 64, 1)
    return script.read_state().get("v")


def contained(make_script, body: str, match: str, **limits: int) -> ScriptError:
    """Runs `body` as a probe that must fail fast; then checks the runtime still works."""
    limits.setdefault("instruction_limit", 50_000)
    script = make_script(hook(body), **limits)
    other = make_script(hook(""), **limits)
    start = time.perf_counter()
    with pytest.raises(ScriptError, match=match) as info:
        script.action("c", {"type": "probe", "data": None})
    assert time.perf_counter() - start < 1.0
    for s in (script, other):
        s.action("c", {"type": "fine", "data": None})
        changes, error = s.tick(1 / 64, 1)
        assert error is None
        assert s.read_state()["ok"] == 1
    return info.value


# 1-10: what a script can name ---------------------------------------------------

ABSENT = [
    "os",
    "io",
    "package",
    "require",
    "debug",
    "load",
    "loadfile",
    "dofile",
    "loadstring",
    "collectgarbage",
    "coroutine",
    "python",
    "rawget",
    "rawset",
    "module",
    "setfenv",
    "getfenv",
    "newproxy",
    "string.dump",
    "('').dump",
    "('').x",
    "_G.os",
    "_ENV.io",
]


@pytest.mark.parametrize("name", ABSENT)
def test_escape_routes_are_nil(make_script, name):
    assert probe(make_script, f"room.state.v = type({name})") == "nil"


def test_nothing_reachable_is_userdata_or_a_thread(make_script):
    # Walks everything reachable from the environment and room, metatables too.
    body = """
    local seen, kinds = {}, {}
    local function walk(v)
        local t = type(v)
        kinds[t] = true
        if t == 'table' and not seen[v] then
            seen[v] = true
            for k, x in pairs(v) do walk(k) walk(x) end
            walk(getmetatable(v))
        end
    end
    walk(_G) walk(room) walk(getmetatable('')) walk(getmetatable(room.state))
    local out = list()
    for _, t in ipairs({'userdata', 'thread', 'table', 'function'}) do
        if kinds[t] then out[#out + 1] = t end
    end
    room.state.v = out
    """
    assert probe(make_script, body) == ["table", "function"]


def test_binary_chunk_is_refused(make_script):
    with pytest.raises(ScriptError, match="binary chunk") as info:
        make_script("\x1bLua\x54\x00\x19\x93\r\n\x1a\n")
    assert info.value.hook == "load"


def test_collectgarbage_count_is_not_allowed_either(make_script):
    contained(make_script, "local n = collectgarbage('count')", "attempt to call a nil value")


# 11-13: the string metatable -----------------------------------------------------


def test_string_metatable_is_locked(make_script):
    body = """
    local mt = getmetatable('')
    room.state.v = {
        mt = mt,
        index = type(mt.__index),                       -- ('string').__index
        set = (pcall(setmetatable, '', {})),
        assign = (pcall(function() getmetatable('').__index = {} end)),
    }
    """
    assert probe(make_script, body) == {
        "mt": "string",
        "index": "nil",
        "set": False,
        "assign": False,
    }


def test_patching_string_changes_neither_methods_nor_other_runtimes(make_script):
    patcher = make_script(
        "function onInit(room)\n"
        "  string.upper = function() return 'pwned' end\n"
        "  string.rep = nil\n"
        "  room.state.v = ('a'):upper() .. ('b'):rep(2) .. tostring(string.upper('c'))\n"
        "end\n"
    )
    patcher.init({})
    other = make_script(
        "function onInit(room) room.state.v = ('a'):upper() .. string.upper('c') end"
    )
    other.init({})
    assert patcher.read_state() == {"v": "Abbpwned"}
    assert other.read_state() == {"v": "AC"}


def test_string_method_lookup_of_unknown_names_is_nil(make_script):
    assert probe(make_script, "room.state.v = tostring(('').x) .. tostring(('').dump)") == "nilnil"


# 14-16: single C calls the budget cannot stop --------------------------------------


def test_string_rep_bomb_is_refused(make_script):
    contained(make_script, "local s = ('x'):rep(1 << 40)", "string.rep: result longer than")


def test_pattern_bomb_on_a_huge_subject_is_refused(make_script):
    contained(
        make_script,
        "local s = ('a'):rep(1 << 20) local r = s:find('.-.-.-.-b')",
        "string.find: subject longer than 16384 bytes",
    )


def test_pattern_bomb_on_an_allowed_subject_is_refused(make_script):
    contained(
        make_script,
        "local s = ('a'):rep(16384) for w in s:gmatch('a*a*a*b') do end",
        "string.gmatch: pattern too complex",
    )


def test_table_concat_through_a_c_index_is_refused(make_script):
    contained(
        make_script,
        "local t = setmetatable({}, {__index = table.concat}) local s = table.concat(t, '', 1, 1 << 50)",
        "table.concat: more than",
    )


def test_format_width_bomb_is_refused(make_script):
    contained(make_script, "local s = string.format('%999999999d', 1)", "invalid conversion")


# 17-19: stack, memory, budget ---------------------------------------------------


def test_deep_recursion_is_a_script_error(make_script):
    contained(
        make_script,
        "local function f(n) return 1 + f(n + 1) end f(1)",
        "stack overflow|memory limit exceeded",
        instruction_limit=5_000_000,
    )


def test_huge_table_hits_the_memory_cap(make_script):
    contained(
        make_script,
        "local t = {} for i = 1, 1e9 do t[i] = i end",
        "memory limit exceeded",
        memory_limit=4 << 20,
        instruction_limit=100_000_000,
    )


def test_coroutine_wrapped_loop_cannot_even_start(make_script):
    contained(
        make_script,
        "coroutine.wrap(function() while true do end end)()",
        "attempt to index a nil value",
    )


def test_xpcall_handler_loop_hits_the_budget(make_script):
    contained(
        make_script,
        "xpcall(error, function() while true do end end)",
        "instruction budget exceeded",
    )


def test_xpcall_handler_that_recurses_hits_a_limit(make_script):
    contained(
        make_script,
        "local function h(e) error(e) end xpcall(function() error('x') end, h)"
        " local function g() return xpcall(g, g) end g()",
        "instruction budget exceeded|stack overflow|memory limit exceeded",
    )


def test_string_method_callback_loop_hits_the_budget(make_script):
    contained(
        make_script,
        "local s = ('a'):gsub('a', function() while true do end end)",
        "instruction budget exceeded",
    )


# 20-22: error values ---------------------------------------------------------------


def test_error_table_with_looping_tostring_is_never_stringified(make_script):
    error = contained(
        make_script,
        "error(setmetatable({}, {__tostring = function() while true do end end}))",
        "error object is a table value",
    )
    assert error.line == 3


def test_error_table_with_gc_is_refused(make_script):
    contained(
        make_script,
        "error(setmetatable({}, {__gc = function() while true do end end}))",
        "__gc metamethods are not available",
    )


def test_gc_added_after_setmetatable_never_runs(make_script):
    # Lua marks an object for finalization only when setmetatable sees __gc.
    script = make_script(
        hook(
            "local mt = {} setmetatable({}, mt) mt.__gc = function() while true do end end"
            " local junk = {} for i = 1, 2000 do junk[i] = {i} end"
        ),
        instruction_limit=100_000,
    )
    for _ in range(20):
        script.action("c", {"type": "probe", "data": None})
    assert script.read_state()["ok"] == 20


# 23-27: room, room.state and the environment ----------------------------------------


def test_state_metatables_are_protected(make_script):
    body = """
    room.state.sub = {a = 1}
    local results = list()
    for _, t in ipairs({room.state, room.state.sub}) do
        results[#results + 1] = (pcall(setmetatable, t, {}))
        results[#results + 1] = getmetatable(t)
    end
    room.state.v = results
    """
    assert probe(make_script, body) == [False, "room.state", False, "room.state"]


def test_next_and_pairs_on_proxies_never_expose_raw_records(make_script):
    body = """
    room.state.sub = {a = {b = 1}}
    local found = list()
    for k, v in pairs(room.state) do
        if type(v) == 'table' then found[#found + 1] = getmetatable(v) end
    end
    local k, v = next(room.state.sub)
    found[#found + 1] = getmetatable(v)
    v.b = 2                    -- through the proxy: tracked
    found[#found + 1] = room.state.sub.a.b
    found[#found + 1] = rawlen(room.state)
    found[#found + 1] = rawequal(room.state, room.state)
    room.state.v = found
    """
    assert probe(make_script, body) == ["room.state", "room.state", 2, 0, True]


def test_metamethods_on_room_never_run_in_the_driver(make_script):
    # The driver runs outside the budget: it must not trigger these.
    script = make_script(
        """
        local loop = function() while true do end end
        function onInit(room)
            room.tick = nil
            room.config = nil
            setmetatable(room, {__index = loop, __newindex = loop})
            room.state = setmetatable({}, {__eq = loop, __index = loop, __newindex = loop})
        end
        function onAction(room) room.state.ok = room.tick end
        """,
        instruction_limit=50_000,
    )
    script.init({})
    changes, error = script.tick(1 / 64, 7)
    assert error is None
    script.action("c", {"type": "x", "data": None}, tick=8)
    assert script.read_state() == {"ok": 8}


def test_env_tricks_stay_inside_the_script(make_script):
    script = make_script(
        """
        _G.os = {execute = function() return 'fake' end}
        setmetatable(_G, {__index = function() while true do end end})
        function onAction(room, id, a)
            local _ENV = {room = room}
            room.state.v = 1
        end
        """,
        instruction_limit=50_000,
    )
    # The driver looks hooks up raw: missing onTick never runs the __index loop.
    changes, error = script.tick(1 / 64, 1)
    assert error is None
    script.action("c", {"type": "x", "data": None})
    assert script.read_state() == {"v": 1}
    other = make_script("function onInit(room) room.state.v = type(os) end")
    other.init({})
    assert other.read_state() == {"v": "nil"}


def test_rebinding_env_at_top_level_only_hides_the_scripts_own_hooks(make_script):
    script = make_script(
        "_ENV = setmetatable({}, {__index = _G}) function onAction() error('x') end"
    )
    assert script.action("c", {"type": "x", "data": None}) is True  # no onAction seen


def test_globals_are_not_shared_between_rooms(make_script):
    a = make_script("secret = 42 function onInit(room) room.state.v = secret end")
    b = make_script("function onInit(room) room.state.v = type(secret) end")
    a.init({})
    b.init({})
    assert a.read_state() == {"v": 42}
    assert b.read_state() == {"v": "nil"}


def test_rawset_and_rawget_cannot_bypass_state_proxies(make_script):
    body = """
    local ok1 = pcall(function() return rawset(room.state, 'x', 1) end)
    local ok2 = pcall(function() return rawget(room.state, 'x') end)
    room.state.v = {ok1 = ok1, ok2 = ok2}
    """
    assert probe(make_script, body) == {"ok1": False, "ok2": False}


def test_randomseed_from_a_script_does_not_reach_other_rooms(make_script):
    a = make_script(
        "function onInit(room) math.randomseed(1) room.state.v = math.random(1 << 50) end"
    )
    b = make_script("function onInit(room) room.state.v = math.random(1 << 50) end")
    c = make_script(
        "function onInit(room) math.randomseed(1) room.state.v = math.random(1 << 50) end"
    )
    for s in (a, b, c):
        s.init({})
    assert a.read_state() == c.read_state() != b.read_state()
