"""The law, as a property: after any sequence of script writes, applying the
changes `tick()` returned, in order, to the previous mirror gives exactly
`read_state()`.

Hypothesis writes random Lua statements against a small vocabulary of paths,
keys and values (with saved references, so writes to detached and adopted
tables happen too); each statement runs under pcall, so the ones the state
refuses (bad list index, indexing nil, ...) are part of the test. Some steps
end with an uncaught error: what the hook wrote before failing must still
arrive.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lua_mirror import apply_changes, canonical, steps_source

from gameserver.errors import ScriptError
from gameserver.scripting import LuaRoomScript

# onInit seeds a nested state, so deep paths exist from the start.
SEED = """
function onInit(room)
    local state = room.state
    state.a = {b = {c = 1, d = list(1, 2)}}
    state.l = list({x = 1}, {y = list(1)})
    state["x.y"] = {}
    state["~"] = {n = 0}
end
R = {}
"""
TABLES = [
    "state",
    "room.state",
    "state.a",
    "state.b",
    "state.a.b",
    "state.a.b.d",
    "state.l",
    "state.l[1]",
    "state.l[2]",
    "state.l[2].y",
    'state["x.y"]',
    'state["~"]',
    "R[1]",
    "R[2]",
    "R[3]",
]
KEYS = ['"a"', '"b"', '"c"', '"x"', '"l"', '"x.y"', '"~"', '"~1"', '"1"', "1", "2", "3", "1.5"]
SCALARS = ["1", "2", "1.0", "2.5", "-0.0", "0/0", "1/0", "'s'", "'\\255z'", "true", "false"]
NEW_TABLES = [
    "{}",
    "list()",
    "list(1, 2)",
    "{x = 1, y = {}}",
    "{1, 2, 3}",
    "{a = {b = list()}}",
    "{list(1), {}}",
    "setmetatable({z = 1}, {})",
]

tables = st.sampled_from(TABLES)
keys = st.sampled_from(KEYS)
values = st.sampled_from(SCALARS * 2 + NEW_TABLES + TABLES + ["nil"] * 3)

write = st.builds("{}[{}] = {}".format, tables, keys, values)
statements = st.one_of(
    *[write] * 8,
    st.builds("table.insert({}, {})".format, tables, values),
    st.builds("table.remove({})".format, tables),
    st.builds("table.remove({}, 1)".format, tables),
    st.builds("table.sort({})".format, tables),
    st.builds("R[{}] = {}".format, st.integers(1, 3), tables),
    st.builds("for k in pairs({0}) do {0}[k] = nil end".format, tables),
)
root_writes = st.builds(
    "room.state = {}".format, st.sampled_from(NEW_TABLES[:6] + ["state.a", "state"])
)


def rarely(strategy: st.SearchStrategy[str], otherwise: st.SearchStrategy[str], one_in: int):
    # Hypothesis favours the ends of a range (and the last branch of one_of),
    # so the rare case is keyed to a value in the middle.
    return st.tuples(st.integers(0, one_in - 1), strategy, otherwise).map(
        lambda t: t[1] if t[0] == one_in // 2 else t[2]
    )


steps = st.tuples(
    st.lists(rarely(root_writes, statements, 40), min_size=1, max_size=6),
    st.integers(0, 9).map(lambda i: i == 5),  # whether the step then fails
)
ticks = st.lists(st.lists(steps, min_size=1, max_size=3), min_size=1, max_size=5)


def _source(schedule: list[list[tuple[list[str], bool]]]) -> str:
    bodies = []
    for tick in schedule:
        for statements_, fails in tick:
            lines = [f"pcall(function() {s} end)" for s in statements_]
            if fails:
                lines.append("error('step failed')")
            bodies.append("\n".join(lines))
    return steps_source(*bodies, prelude=SEED)


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ticks)
def test_applying_the_changes_gives_the_state(schedule):
    script = LuaRoomScript(
        "law.lua", _source(schedule), room_id="r", memory_limit=16 << 20, instruction_limit=100_000
    )
    try:
        script.init({})
        mirror: object = {}
        step = 0
        for tick_no, tick in enumerate(schedule, 1):
            for _, fails in tick:
                step += 1
                try:
                    script.action("c", {"type": "step", "data": step})
                except ScriptError as e:
                    # A bad root assignment is refused when the hook returns
                    # (not a map, or a table holding itself, e.g. after
                    # `room.state = {}; table.insert(room.state, room.state)`).
                    refused = ("room.state must be", "contains itself")
                    assert fails or any(r in str(e) for r in refused), e
            changes, error = script.tick(1 / 64, tick_no)
            assert error is None
            paths = [c["path"] for c in changes]
            assert len(set(paths)) == len(paths), changes
            mirror = apply_changes(mirror, changes)
            assert canonical(mirror) == canonical(script.read_state())
    finally:
        script.close()
