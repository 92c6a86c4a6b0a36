"""room.state as seen by clients: kinds, adoption, detached tables, paths, values."""

from __future__ import annotations

import pytest

from gameserver.errors import ScriptError


def test_empty_table_is_a_map_from_first_tick_to_last(make_room):
    room = make_room(
        "state.players = {}",
        "state.players.p1 = {x = 1}",
        "state.players.p1 = nil",
    )
    assert room.run(1) == [{"path": "players", "operation": "set", "value": {}}]
    assert room.run(2) == [{"path": "players.p1", "operation": "set", "value": {"x": 1}}]
    assert room.run(3) == [{"path": "players.p1", "operation": "delete"}]
    assert room.mirror == {"players": {}}


def test_list_stays_a_list_when_emptied(make_room):
    room = make_room("state.l = list(1, 2)", "table.remove(state.l) table.remove(state.l)")
    assert room.run(1) == [{"path": "l", "operation": "set", "value": [1, 2]}]
    assert room.run(2) == [{"path": "l", "operation": "set", "value": []}]
    assert room.script.read_state() == {"l": []}


def test_empty_list_constructor_and_list_of_tables(make_room):
    room = make_room("state.l = list()", "state.l[1] = {a = list()}", "state.l[1].a[1] = 'x'")
    assert room.run(1) == [{"path": "l", "operation": "set", "value": []}]
    room.run(2)
    assert room.run(3) == [{"path": "l.0.a", "operation": "set", "value": ["x"]}]


def test_table_with_sequence_keys_is_a_list_and_map_integer_keys_become_strings(make_room):
    room = make_room("state.seq = {10, 20}", "state.m = {} state.m[1] = 'a' state.m[2.0] = 'b'")
    assert room.run(1) == [{"path": "seq", "operation": "set", "value": [10, 20]}]
    room.run(2)
    assert room.script.read_state()["m"] == {"1": "a", "2": "b"}


def test_map_reads_with_number_keys_find_the_string_key(make_room):
    room = make_room("state.m = {} state.m[7] = 'x' state.ok = state.m[7] == state.m['7']")
    room.run(1)
    assert room.script.read_state() == {"m": {"7": "x"}, "ok": True}


def test_list_length_change_sends_the_whole_list(make_room):
    room = make_room(
        "state.l = list(1, 2)",
        "table.insert(state.l, 3)",
        "state.l[#state.l + 1] = 4 state.l[1] = 9",
        "table.remove(state.l, 1)",
    )
    room.run(1)
    assert room.run(2) == [{"path": "l", "operation": "set", "value": [1, 2, 3]}]
    assert room.run(3) == [{"path": "l", "operation": "set", "value": [9, 2, 3, 4]}]
    assert room.run(4) == [{"path": "l", "operation": "set", "value": [2, 3, 4]}]


def test_same_length_index_writes_are_per_index(make_room):
    room = make_room("state.l = list('a', 'b', 'c')", "state.l[1] = 'x' state.l[3] = 'z'")
    room.run(1)
    changes = room.run(2)
    assert sorted(changes, key=lambda c: c["path"]) == [
        {"path": "l.0", "operation": "set", "value": "x"},
        {"path": "l.2", "operation": "set", "value": "z"},
    ]


@pytest.mark.parametrize(
    ("write", "message"),
    [
        ("state.l[5] = 1", "list index 5 out of range"),
        ("state.l[0] = 1", "list index 0 out of range"),
        ("state.l[1] = nil", "only the last element can be removed"),
        ("state.l.x = 1", "list index must be an integer"),
        ("state.l[1.5] = 1", "list index must be an integer"),
    ],
)
def test_list_refuses_other_keys(make_room, write, message):
    room = make_room("state.l = list(1, 2)", write)
    room.run(1)
    with pytest.raises(ScriptError, match=message) as info:
        room.step(2)
    assert info.value.line is not None
    assert room.tick() == []


def test_adopted_table_keeps_reaching_clients(make_room):
    room = make_room(
        "P = {x = 0, inner = {y = 0}} state.p = P P.x = 5",
        "P.x = 6 P.inner.y = 1",
    )
    assert room.run(1) == [{"path": "p", "operation": "set", "value": {"x": 5, "inner": {"y": 0}}}]
    changes = room.run(2)
    assert sorted(c["path"] for c in changes) == ["p.inner.y", "p.x"]


def test_table_already_in_state_is_copied(make_room):
    room = make_room("state.a = {x = 1} state.b = state.a", "state.a.x = 2")
    room.run(1)
    assert room.run(2) == [{"path": "a.x", "operation": "set", "value": 2}]
    assert room.script.read_state() == {"a": {"x": 2}, "b": {"x": 1}}


def test_table_with_metatable_is_copied(make_room):
    room = make_room("T = setmetatable({x = 1}, {}) state.t = T", "T.x = 2")
    room.run(1)
    assert room.run(2) == []
    assert room.script.read_state() == {"t": {"x": 1}}


def test_shared_plain_table_is_adopted_once_then_copied(make_room):
    room = make_room("local t = {v = 1} state.a = {t, t}", "state.a[1].v = 2")
    room.run(1)
    room.run(2)
    assert room.script.read_state() == {"a": [{"v": 2}, {"v": 1}]}


def test_writes_to_detached_tables_send_nothing(make_room):
    room = make_room(
        "state.a = {x = 1} state.b = {y = 1} A = state.a B = state.b",
        "state.a = nil state.b = {y = 2}",
        "A.x = 5 B.y = 5 B.z = {}",
    )
    room.run(1)
    room.run(2)
    assert room.run(3) == []


def test_detached_list_growing_sends_nothing(make_room):
    room = make_room("state.l = list(1) L = state.l", "state.l = nil", "table.insert(L, 2)")
    room.run(1)
    room.run(2)
    assert room.run(3) == []


def test_change_under_a_changed_ancestor_is_dropped(make_room):
    room = make_room("state.a = {x = 1}", "state.a.x = 2 state.a = {y = 3} state.a.y = 4")
    room.run(1)
    assert room.run(2) == [{"path": "a", "operation": "set", "value": {"y": 4}}]


def test_key_born_and_removed_in_one_tick_sends_nothing(make_room):
    room = make_room("state.tmp = 1 state.tmp = nil")
    assert room.run(1) == []


def test_unchanged_scalar_is_not_sent_but_int_to_float_is(make_room):
    room = make_room("state.x = 1", "state.x = 1", "state.x = 1.0")
    room.run(1)
    assert room.run(2) == []
    changes = room.run(3)
    assert changes == [{"path": "x", "operation": "set", "value": 1.0}]
    assert isinstance(changes[0]["value"], float)


def test_keys_are_escaped_in_paths(make_room):
    room = make_room(
        "state.stats = {} state['~'] = {}",
        "state.stats['a.b'] = 1 state['~']['x~1.y'] = 2",
    )
    room.run(1)
    changes = room.run(2)
    assert sorted(c["path"] for c in changes) == ["stats.a~1b", "~0.x~01~1y"]
    assert room.mirror == {"stats": {"a.b": 1}, "~": {"x~1.y": 2}}


def test_non_finite_floats_become_none(make_room):
    room = make_room("state.nan = 0/0 state.inf = 1/0 state.ninf = -1/0 state.l = list(0/0)")
    room.run(1)
    assert room.script.read_state() == {"nan": None, "inf": None, "ninf": None, "l": [None]}


def test_values_keep_their_python_types(make_room):
    room = make_room("state.v = {i = 3, f = 0.1, big = math.maxinteger, s = 'é', t = true}")
    room.run(1)
    v = room.script.read_state()["v"]
    assert v == {"i": 3, "f": 0.1, "big": 2**63 - 1, "s": "é", "t": True}
    assert isinstance(v["f"], float) and isinstance(v["i"], int)


def test_invalid_utf8_is_replaced(make_room):
    room = make_room("state['k\\255'] = 'a\\255b\\226\\130' state.ctl = 'q\"\\0\\n'")
    room.run(1)
    assert room.script.read_state() == {"k\ufffd": "a\ufffdb\ufffd\ufffd", "ctl": 'q"\x00\n'}


def test_root_replacement_is_one_set_of_everything(make_room):
    room = make_room(
        "state.a = 1 OLD = state",
        "room.state = {b = {c = list(1)}} room.state.b.d = 2",
        "OLD.a = 5 room.state.b.c[1] = 7",
    )
    room.run(1)
    assert room.run(2) == [{"path": "", "operation": "set", "value": {"b": {"c": [1], "d": 2}}}]
    assert room.run(3) == [{"path": "b.c.0", "operation": "set", "value": 7}]


def test_root_must_be_a_map(make_room):
    room = make_room("state.a = 1", "room.state = list(1)", "room.state = 5")
    room.run(1)
    for step in (2, 3):
        with pytest.raises(ScriptError, match="room.state must be"):
            room.step(step)
        assert room.tick() == []
    assert room.script.read_state() == {"a": 1}


@pytest.mark.parametrize(
    ("write", "message"),
    [
        ("local t = {} t.self = t state.t = t", "contains itself"),
        ("state.f = print", "cannot hold a function"),
        ("state.t = {f = print}", "cannot hold a function"),
        ("state[true] = 1", "keys must be strings or numbers"),
        ("state[''] = 1", "must not be empty"),
        ("state.l = list() state.l.x = 1", "list index must be an integer"),
        ("local l = list() l.x = 1 state.l = l", "only hold the keys 1..n"),
        ("state.m = {[1] = 'a', ['1'] = 'b'}", "both stored as"),
    ],
)
def test_values_the_state_refuses(make_room, write, message):
    room = make_room(write)
    with pytest.raises(ScriptError, match=message):
        room.step(1)
    room.tick()


def test_pairs_ipairs_len_next_and_table_library_work_on_state_tables(make_room):
    room = make_room(
        "state.l = list(3, 1, 2) state.m = {a = 1, b = 2}",
        """
        local keys = {}
        for k, v in pairs(state.m) do keys[#keys + 1] = k .. v end
        table.sort(keys)
        local sum = 0
        for i, v in ipairs(state.l) do sum = sum + i * v end
        table.sort(state.l)
        state.out = {
            keys = table.concat(keys, ","),
            sum = sum,
            len = #state.l,
            first = next(state.m) ~= nil,
            rawlen = rawlen(state.l),
            joined = table.concat(state.l, "-"),
            unpacked = select("#", table.unpack(state.l)),
            meta = getmetatable(state.l),
        }
        """,
    )
    room.run(1)
    room.run(2)
    assert room.script.read_state()["out"] == {
        "keys": "a1,b2",
        "sum": 3 * 1 + 1 * 2 + 2 * 3,
        "len": 3,
        "first": True,
        "rawlen": 3,
        "joined": "1-2-3",
        "unpacked": 3,
        "meta": "room.state",
    }
    assert room.script.read_state()["l"] == [1, 2, 3]


def test_clearing_a_map_while_iterating_it(make_room):
    room = make_room(
        "state.m = {a = 1, b = 2, c = 3}", "for k in pairs(state.m) do state.m[k] = nil end"
    )
    room.run(1)
    assert sorted(c["path"] for c in room.run(2)) == ["m.a", "m.b", "m.c"]
    assert room.mirror == {"m": {}}


def test_state_metatable_is_protected(make_room):
    room = make_room("state.t = {}", "setmetatable(state.t, {})")
    room.run(1)
    with pytest.raises(ScriptError, match="protected metatable"):
        room.step(2)


def test_python_lists_arrive_as_lists(make_script):
    script = make_script("function onAction(room, id, a) room.state.data = a.data end")
    script.action("c", {"type": "t", "data": {"empty": [], "obj": {}, "nested": [[1], {"k": []}]}})
    changes, _ = script.tick(1 / 64, 1)
    assert changes[0]["value"] == {"empty": [], "obj": {}, "nested": [[1], {"k": []}]}


def test_thousands_of_changes_in_one_tick(make_room):
    # Past 1000 scalar sets the collector switches to JSON: same result.
    room = make_room(
        "state.m = {} state.l = list()",
        "for i = 1, 2500 do state.m['k' .. i] = i + 0.5 end for i = 1, 10 do state.l[i] = {i} end",
        "for i = 1, 2500, 2 do state.m['k' .. i] = nil end for i = 2, 2500, 2 do state.m['k' .. i] = 'v' end",
    )
    room.run(1)
    assert len(room.run(2)) == 2501
    assert len(room.run(3)) == 2500
    assert room.mirror["m"]["k2"] == "v" and "k1" not in room.mirror["m"]
