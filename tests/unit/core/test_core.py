"""Examples for every rule of the state-diff kernel, on both implementations.

The rules themselves are written down in gameserver/_core_py.py; the
properties (random states and edits) are in test_core_properties.py.
"""

from __future__ import annotations

import copy
from types import ModuleType
from typing import Any

import pytest

from gameserver.errors import PathError


def set_(path: str, value: Any) -> dict[str, Any]:
    return {"path": path, "operation": "set", "value": value}


def delete(path: str) -> dict[str, Any]:
    return {"path": path, "operation": "delete"}


# --- paths -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "segment"),
    [
        ("hp", "hp"),
        ("a.b", "a~1b"),
        ("~", "~0"),
        ("~1", "~01"),
        ("~0", "~00"),
        (".~", "~1~0"),
        ("a~.b", "a~0~1b"),
        ("", ""),
        ("é.ü", "é~1ü"),
    ],
)
def test_escape_and_unescape_key(core: ModuleType, key: str, segment: str) -> None:
    assert core.escape_key(key) == segment
    assert core.unescape_key(segment) == key


def test_join_path(core: ModuleType) -> None:
    assert core.join_path("stats", "a.b") == "stats.a~1b"
    assert core.join_path("", "x") == "x"
    assert core.join_path("", "~") == "~0"
    assert core.join_path("a", "") == "a."  # the empty key is an empty segment
    assert core.join_path("players.p1", "3") == "players.p1.3"
    assert core.join_path("", "") == ""  # which is also the root: see diff below


@pytest.mark.parametrize(
    ("path", "segments"),
    [
        ("stats.a~1b", ["stats", "a.b"]),
        ("a..b", ["a", "", "b"]),
        ("a.", ["a", ""]),
        ("~01", ["~1"]),
        ("~0~1", ["~."]),
        ("l.0.x", ["l", "0", "x"]),
        ("", [""]),
    ],
)
def test_split_path(core: ModuleType, path: str, segments: list[str]) -> None:
    assert core.split_path(path) == segments


@pytest.mark.parametrize("keys", [["a.b", "~"], ["", ""], ["~1", "."], ["x", "0", "y"]])
def test_split_inverts_join(core: ModuleType, keys: list[str]) -> None:
    path = "top"
    for key in keys:
        path = core.join_path(path, key)
    assert core.split_path(path) == ["top", *keys]


@pytest.mark.parametrize("bad", ["~", "a~", "~2", "x.~a", "~~0"])
def test_bad_escapes_raise_path_error(core: ModuleType, bad: str) -> None:
    with pytest.raises(PathError, match="bad escape"):
        core.split_path(bad)
    if "." not in bad:
        with pytest.raises(PathError, match="bad escape"):
            core.unescape_key(bad)


def test_split_path_returns_the_callers_own_list(core: ModuleType) -> None:
    # The compiled kernel caches segments for apply and commit; never these.
    core.split_path("a.b").append("c")
    state: dict[str, Any] = {"a": {}}
    core.apply(state, [set_("a.b", 1)])
    assert state == {"a": {"b": 1}}
    assert core.split_path("a.b") == ["a", "b"]


def test_many_distinct_paths(core: ModuleType) -> None:
    # More paths than the compiled kernel's segment cache holds.
    state: dict[str, Any] = {"m": {}}
    changes = [set_(f"m.k{n}", n) for n in range(5000)]
    core.apply(state, changes)
    assert core.commit(state, [set_(f"m.k{n}", n + 1) for n in range(5000)]) != []
    assert state["m"]["k4999"] == 5000
    core.apply(state, [set_("m.k0", "again")])
    assert state["m"]["k0"] == "again"


def test_path_functions_refuse_non_strings(core: ModuleType) -> None:
    for call in (
        lambda: core.escape_key(1),
        lambda: core.unescape_key(None),
        lambda: core.join_path(None, "a"),
        lambda: core.join_path("a", 0),
        lambda: core.split_path(b"a.b"),
    ):
        with pytest.raises(TypeError):
            call()


# --- diff ------------------------------------------------------------------


def test_diff_of_equal_states_is_empty(core: ModuleType) -> None:
    state = {"players": {"p1": {"x": 1.0, "tags": ["a", "b"]}}, "tick": 3}
    assert core.diff(state, copy.deepcopy(state)) == []
    assert core.diff(state, state) == []


def test_diff_order_sets_in_new_order_then_deletes_in_old_order(core: ModuleType) -> None:
    old = {"gone1": 1, "a": 1, "b": 2, "gone2": 2}
    new = {"c": 3, "b": 20, "a": 1, "d": 4}
    assert core.diff(old, new) == [
        set_("c", 3),
        set_("b", 20),
        set_("d", 4),
        delete("gone1"),
        delete("gone2"),
    ]


def test_diff_recurses_into_maps(core: ModuleType) -> None:
    old = {"players": {"p1": {"x": 1.0, "y": 2.0, "hp": 100}, "p2": {"x": 0.0}}}
    new = {"players": {"p1": {"x": 1.5, "y": 2.0}, "p2": {"x": 0.0}, "p3": {"x": 9.0}}}
    assert core.diff(old, new) == [
        set_("players.p1.x", 1.5),
        delete("players.p1.hp"),
        set_("players.p3", {"x": 9.0}),
    ]


def test_diff_lists_of_same_length_go_index_by_index(core: ModuleType) -> None:
    old = {"grid": [[0, 0], [0, 0]], "log": ["a", {"n": 1}]}
    new = {"grid": [[0, 1], [0, 0]], "log": ["a", {"n": 2}]}
    assert core.diff(old, new) == [set_("grid.0.1", 1), set_("log.1.n", 2)]


def test_diff_sends_a_list_whose_length_changed_whole(core: ModuleType) -> None:
    new_list = [[1, 2], [3]]
    old = {"l": [1, 2], "nested": [[1, 2], [3, 4]]}
    new = {"l": [1, 2, 3], "nested": new_list}
    changes = core.diff(old, new)
    assert changes == [set_("l", [1, 2, 3]), set_("nested.1", [3])]
    assert changes[0]["value"] is new["l"]  # no copies
    assert changes[1]["value"] is new_list[1]


@pytest.mark.parametrize(
    ("before", "after"),
    [(1, True), (True, 1), (0, False), (1, 1.0), (1.0, 1), (None, 0), ({}, []), ([], {}), ("1", 1)],
)
def test_diff_values_of_different_types_differ(core: ModuleType, before: Any, after: Any) -> None:
    assert core.diff({"v": before}, {"v": after}) == [set_("v", after)]
    assert type(core.diff({"v": before}, {"v": after})[0]["value"]) is type(after)


def test_diff_treats_negative_zero_as_equal(core: ModuleType) -> None:
    # Same type and == : no change, exactly as Python compares them.
    assert core.diff({"v": 0.0}, {"v": -0.0}) == []


def test_diff_always_sends_nan(core: ModuleType) -> None:
    nan = float("nan")
    assert len(core.diff({"v": float("nan")}, {"v": nan})) == 1
    assert core.diff({"v": nan}, {"v": nan}) == []  # the same object is unchanged


def test_diff_escapes_keys_and_honours_prefix(core: ModuleType) -> None:
    old = {"stats": {"a.b": 1, "~": 1, "": 1}}
    new = {"stats": {"a.b": 2, "~": 2, "": 2}}
    assert [c["path"] for c in core.diff(old, new)] == ["stats.a~1b", "stats.~0", "stats."]
    assert [c["path"] for c in core.diff(old, new, "room")] == [
        "room.stats.a~1b",
        "room.stats.~0",
        "room.stats.",
    ]


def test_diff_refuses_the_empty_key_at_the_root(core: ModuleType) -> None:
    # Its path would be "", which means the whole state.
    with pytest.raises(PathError, match="empty key at the root"):
        core.diff({}, {"": 1})
    with pytest.raises(PathError):
        core.diff({"": 1}, {})
    assert core.diff({"": 1}, {"": 1}) == []  # unchanged: no path needed
    assert core.diff({"": 1}, {"": 2}, "room") == [set_("room.", 2)]


def test_diff_takes_two_dicts(core: ModuleType) -> None:
    with pytest.raises(TypeError):
        core.diff({}, [])
    with pytest.raises(TypeError):
        core.diff(None, {})
    with pytest.raises(TypeError):
        core.diff({"a": {}}, {"a": {1: 2}})  # keys must be str
    with pytest.raises(TypeError):
        core.diff({}, {"a": 1}, None)  # and so must the prefix


# --- apply -----------------------------------------------------------------


def test_apply_sets_and_deletes_in_place(core: ModuleType) -> None:
    state: dict[str, Any] = {"players": {"p1": {"x": 1}}, "l": [0, {"k": 1}], "gone": 1}
    value = {"x": 5}
    core.apply(
        state,
        [
            set_("players.p1.x", 2),
            set_("players.p2", value),
            set_("players.p2.y", 3),
            set_("l.0", "zero"),
            set_("l.1.k", 2),
            set_("stats", {}),
            set_("stats.a~1b", 1),
            set_("stats.", 2),
            delete("gone"),
        ],
    )
    assert state == {
        "players": {"p1": {"x": 2}, "p2": {"x": 5, "y": 3}},
        "l": ["zero", {"k": 2}],
        "stats": {"a.b": 1, "": 2},
    }
    assert state["players"]["p2"] is value  # inserted, not copied


BAD_CHANGES = [
    pytest.param(set_("", {}), "''", id="root-set"),
    pytest.param(delete(""), "''", id="root-delete"),
    pytest.param(set_("missing.x", 1), "'missing.x'", id="missing-intermediate"),
    pytest.param(set_("n.x", 1), "'n.x'", id="int-intermediate"),
    pytest.param(set_("s.0", 1), "'s.0'", id="str-is-not-a-list"),
    pytest.param(set_("l.5", 1), "'l.5'", id="index-out-of-range"),
    pytest.param(set_("l.3", 1), "'l.3'", id="index-at-end"),
    pytest.param(set_("l.01", 1), "'l.01'", id="index-leading-zero"),
    pytest.param(set_("l.-1", 1), "'l.-1'", id="index-negative"),
    pytest.param(set_("l.+1", 1), "'l.+1'", id="index-plus"),
    pytest.param(set_("l. 1", 1), "'l. 1'", id="index-space"),
    pytest.param(set_("l.1_0", 1), "'l.1_0'", id="index-underscore"),
    pytest.param(set_("l.", 1), "'l.'", id="index-empty"),
    pytest.param(set_("l.٣", 1), "'l.٣'", id="index-arabic-digit"),
    pytest.param(set_("l.²", 1), "'l.²'", id="index-superscript"),
    pytest.param(set_("l." + "9" * 5000, 1), "'l.999", id="index-huge"),
    pytest.param(set_("l.0.x", 1), "'l.0.x'", id="int-in-list-intermediate"),
    pytest.param(delete("l.0"), "'l.0'", id="delete-list-item"),
    pytest.param(delete("m.zz"), "'m.zz'", id="delete-missing-key"),
    pytest.param(delete("n.zz"), "'n.zz'", id="delete-under-int"),
    pytest.param(set_("x~2", 1), "'x~2'", id="bad-escape"),
    pytest.param({"path": "m.a", "operation": "put", "value": 1}, "'m.a'", id="unknown-op"),
    pytest.param({"path": "m.a", "operation": 5}, "'m.a'", id="op-not-str"),
    pytest.param({"path": "m.a", "value": 1}, "'m.a'", id="op-missing"),
    pytest.param({"path": "m.a", "operation": "set"}, "'m.a'", id="set-without-value"),
    pytest.param({"operation": "set", "value": 1}, "path", id="path-missing"),
    pytest.param({"path": 5, "operation": "set", "value": 1}, "path", id="path-not-str"),
    pytest.param({"path": None, "operation": "delete"}, "path", id="path-none"),
    pytest.param(["m.a", "set", 1], "map", id="change-is-list"),
    pytest.param("m.a", "map", id="change-is-str"),
    pytest.param(None, "map", id="change-is-none"),
]


def bad_state() -> dict[str, Any]:
    return {"n": 1, "s": "text", "l": [0, 1, 2], "m": {"a": 1}}


@pytest.mark.parametrize(("change", "named"), BAD_CHANGES)
def test_apply_raises_only_path_error_naming_the_path(
    core: ModuleType, change: Any, named: str
) -> None:
    state = bad_state()
    with pytest.raises(PathError) as caught:
        core.apply(state, [change])
    assert named in str(caught.value)
    assert state == bad_state()  # a bad change touches nothing
    assert caught.value.code == "bad_path"


@pytest.mark.parametrize("changes", [None, {}, {"path": "a"}, "a", 5, (set_("a", 1),)])
def test_apply_needs_a_list_of_changes(core: ModuleType, changes: Any) -> None:
    with pytest.raises(PathError, match="must be a list"):
        core.apply({}, changes)


def test_apply_keeps_changes_before_a_bad_one(core: ModuleType) -> None:
    # The client must resync after a PathError: its state is half-applied.
    state: dict[str, Any] = {"a": 1}
    with pytest.raises(PathError):
        core.apply(state, [set_("a", 2), set_("b.c", 3), set_("a", 4)])
    assert state == {"a": 2}


# --- commit ----------------------------------------------------------------


def test_commit_drops_sets_to_equal_values(core: ModuleType) -> None:
    state: dict[str, Any] = {"x": 1, "m": {"a": [1, {"b": None}]}, "f": 1.5}
    effective = core.commit(
        state, [set_("x", 1), set_("m", {"a": [1, {"b": None}]}), set_("f", 1.5), set_("m.a.0", 1)]
    )
    assert effective == []


def test_commit_keeps_type_changes(core: ModuleType) -> None:
    state: dict[str, Any] = {"b": 1, "f": 1, "n": None}
    changes = [set_("b", True), set_("f", 1.0), set_("n", 0)]
    effective = core.commit(state, changes)
    assert effective == changes
    assert all(e is c for e, c in zip(effective, changes, strict=True))  # the very dicts
    assert state["b"] is True and type(state["f"]) is float


def test_commit_diffs_a_map_set_over_a_map(core: ModuleType) -> None:
    state: dict[str, Any] = {"players": {"p1": {"x": 1.0, "y": 2.0, "hp": 100}}}
    new_p1 = {"x": 1.0, "y": 3.0, "mana": 5}
    effective = core.commit(state, [set_("players.p1", new_p1)])
    assert effective == [
        set_("players.p1.y", 3.0),
        set_("players.p1.mana", 5),
        delete("players.p1.hp"),
    ]
    assert state["players"]["p1"] is new_p1


def test_commit_diffs_lists_of_same_length_and_keeps_resized_ones(core: ModuleType) -> None:
    state: dict[str, Any] = {"l": [1, 2, 3], "grid": [[0, 0]]}
    grow = set_("l", [1, 2, 3, 4])
    effective = core.commit(state, [set_("grid", [[0, 5]]), grow, set_("l.3", 4)])
    assert effective == [set_("grid.0.1", 5), grow]
    assert effective[1] is grow
    assert state == {"l": [1, 2, 3, 4], "grid": [[0, 5]]}


def test_commit_drops_changes_inside_a_value_it_sends_whole(core: ModuleType) -> None:
    # The value goes out as it stands after the commit, later edits included.
    # Sent as well, "p3.inv.slots.0" would fail on the client: p3.inv is 7 by then.
    state: dict[str, Any] = {"players": {}}
    spawn = set_("players.p3", {"inv": {"slots": [0, 0]}, "hp": 1})
    effective = core.commit(
        state,
        [
            spawn,
            set_("players.p3.inv.slots.0", 5),
            set_("players.p3.inv", 7),
            delete("players.p3.hp"),
            set_("players.p4", []),
            set_("players", {"p3": {"inv": 7}, "p4": [1]}),  # diffed: p4 resized, sent whole
            set_("players.p4.0", 2),
        ],
    )
    assert effective == [spawn, set_("players.p4", []), set_("players.p4", [2])]
    assert spawn["value"] == {"inv": 7}
    assert state == {"players": {"p3": {"inv": 7}, "p4": [2]}}
    client: dict[str, Any] = {"players": {}}
    core.apply(client, copy.deepcopy(effective))
    assert client == state


def test_commit_drops_deletes_of_missing_keys(core: ModuleType) -> None:
    state: dict[str, Any] = {"a": 1, "m": {}}
    gone = delete("a")
    assert core.commit(state, [delete("zz"), gone, delete("a"), delete("m.q")]) == [gone]
    assert state == {"m": {}}


def test_commit_keeps_sets_of_new_keys(core: ModuleType) -> None:
    state: dict[str, Any] = {"a": {}}
    changes = [set_("a.b", 1), set_("a.c~1d", []), set_("a.", None), set_("z", {})]
    assert core.commit(state, changes) == changes
    assert state == {"a": {"b": 1, "c.d": [], "": None}, "z": {}}


def test_commit_replaces_the_root_in_place(core: ModuleType) -> None:
    state: dict[str, Any] = {"keep": 1, "change": {"x": 1}, "gone": 2}
    root = state
    new = {"change": {"x": 2}, "keep": 1, "added": []}
    effective = core.commit(state, [set_("", new)])
    assert effective == [set_("change.x", 2), set_("added", []), delete("gone")]
    assert state is root and state == new
    assert core.commit(state, [set_("", state)]) == []


@pytest.mark.parametrize(
    "change",
    [set_("", 1), set_("", []), delete(""), set_("", {"": 1})],
    ids=["int", "list", "delete", "empty-root-key"],
)
def test_commit_root_needs_a_map(core: ModuleType, change: dict[str, Any]) -> None:
    state = {"a": 1}
    with pytest.raises(PathError):
        core.commit(state, [change])
    assert state == {"a": 1}


# commit drops a delete of a missing key instead, and treats "" itself.
BAD_FOR_COMMIT = [
    p for p in BAD_CHANGES if p.id not in ("root-set", "root-delete", "delete-missing-key")
]


@pytest.mark.parametrize(("change", "named"), BAD_FOR_COMMIT)
def test_commit_is_all_or_nothing(core: ModuleType, change: Any, named: str) -> None:
    state = bad_state()
    before = [
        set_("n", 2),
        delete("m.a"),
        set_("m.new", {"deep": [1]}),
        set_("m.new.deep.0", 2),
        set_("l.1", "one"),
        set_("", {"n": 3, "s": "text", "l": [0, "one", 2], "m": {"new": {"deep": [2]}}, "x": 1}),
        set_("n", 4),
        delete("x"),
    ]
    with pytest.raises(PathError) as caught:
        core.commit(state, [*before, change])
    assert named in str(caught.value)
    assert state == bad_state()  # every earlier change undone


def test_commit_undo_restores_the_objects_themselves(core: ModuleType) -> None:
    inner = {"k": 1}
    state: dict[str, Any] = {"m": inner, "l": [inner]}
    with pytest.raises(PathError):
        core.commit(state, [set_("m", {"k": 2}), set_("l.0", 5), delete("m"), set_("no.such", 1)])
    assert state == {"m": {"k": 1}, "l": [{"k": 1}]}
    assert state["m"] is inner and state["l"][0] is inner


def test_commit_runs_of_changes_under_one_parent(core: ModuleType) -> None:
    # The compiled kernel skips the walk when a change's parent path is the
    # previous change's; paths that merely start alike must not fool it.
    state: dict[str, Any] = {"a": {"b": {"c": 1}, "x": 1, "b.c": 1}, "l": [{"k": 1}, {"k": 2}]}
    changes = [
        set_("a.b.c", 2),
        set_("a.x", 2),  # "a" is a prefix of "a.b" too
        set_("a.b.c", 3),
        set_("a.b~1c", 2),  # the key "b.c" under "a", not the path a.b.c
        set_("a.b.c", 4),
        set_("l.0.k", 5),
        set_("l.1.k", 6),
        set_("l.0.k", 7),
        set_("a.b", {"c": 4, "d": 1}),  # diffed: only d is sent
        set_("a.b.d", 2),
        delete("a.b.c"),
        set_("a.b.c", 9),
    ]
    effective = core.commit(state, copy.deepcopy(changes))
    assert state == {"a": {"b": {"d": 2, "c": 9}, "x": 2, "b.c": 2}, "l": [{"k": 7}, {"k": 6}]}
    assert [c["path"] for c in effective] == [
        "a.b.c", "a.x", "a.b.c", "a.b~1c", "a.b.c", "l.0.k", "l.1.k", "l.0.k",
        "a.b.d", "a.b.d", "a.b.c", "a.b.c",
    ]  # fmt: skip


def test_commit_reads_changes_whatever_their_keys(core: ModuleType) -> None:
    # The compiled kernel matches the usual (interned) keys by identity and
    # falls back to look-ups: equal keys that are other objects, extra keys,
    # and any order must read the same.
    path, operation, value = ("".join(k) for k in (["pa", "th"], ["oper", "ation"], ["val", "ue"]))
    state: dict[str, Any] = {"a": 1, "b": 1, "c": 1, "d": 1}
    changes = [
        {path: "a", operation: "set", value: 2},
        {"value": 2, "operation": "set", "path": "b"},
        {"path": "c", "operation": "set", "value": 2, "note": "extra keys are ignored"},
        {"path": "d", "extra": 1, "operation": "delete"},
    ]
    assert core.commit(state, changes) == changes
    assert state == {"a": 2, "b": 2, "c": 2}
    for bad in ({path: "a", operation: "set"}, {"path": "a", "extra": 1, "value": 1}):
        with pytest.raises(PathError):
            core.commit(state, [bad])


def test_commit_needs_a_dict_state_and_a_list(core: ModuleType) -> None:
    with pytest.raises(TypeError):
        core.commit([], [])
    with pytest.raises(PathError):
        core.commit({}, {"path": "a"})


# --- TickClock -------------------------------------------------------------


def test_tick_clock_first_deadline_is_the_next_grid_point(core: ModuleType) -> None:
    clock = core.TickClock(64, 1.0)
    assert (clock.rate, clock.period, clock.index) == (64, 1 / 64, 65)
    assert clock.deadline == 65 / 64
    assert (clock.skipped, clock.last_lateness) == (0, 0.0)
    # Exactly on a grid point: strictly after, so the next one.
    assert core.TickClock(64, 0.5).index == 33
    assert core.TickClock(64, 0).index == 1


def test_tick_clocks_of_one_rate_share_the_grid(core: ModuleType) -> None:
    a, b = core.TickClock(60, 100.001), core.TickClock(60, 100.012)
    assert a.deadline == b.deadline > 100.012
    assert a.deadline == a.index * a.period


def test_tick_clock_due(core: ModuleType) -> None:
    clock = core.TickClock(64, 1.0)
    assert clock.due(1.01) == -1  # early: nothing changes
    assert (clock.index, clock.skipped, clock.last_lateness) == (65, 0, 0.0)
    assert clock.due(65 / 64) == 0  # exactly on time
    assert (clock.index, clock.last_lateness) == (66, 0.0)
    late = 66 / 64 + 3.2 / 64  # 3.2 periods late: skip 3, tick now
    assert clock.due(late) == 3
    assert (clock.index, clock.skipped) == (70, 3)
    assert clock.last_lateness == pytest.approx(3.2 / 64)
    assert clock.deadline == 70 / 64 > late
    assert clock.due(late) == -1


def test_tick_clock_attributes_are_read_only(core: ModuleType) -> None:
    clock = core.TickClock(20, 0.0)
    for name in ("rate", "period", "index", "deadline", "skipped", "last_lateness"):
        with pytest.raises(AttributeError):
            setattr(clock, name, 1)


@pytest.mark.parametrize(
    ("rate", "now", "error"),
    [
        (0, 0.0, ValueError),
        (-64, 0.0, ValueError),
        (10**7, 0.0, ValueError),
        (64.0, 0.0, TypeError),
        ("64", 0.0, TypeError),
        (64, float("nan"), ValueError),
        (64, float("inf"), ValueError),
        (64, 1e300, ValueError),
        (64, "now", TypeError),
    ],
)
def test_tick_clock_refuses_bad_arguments(
    core: ModuleType, rate: Any, now: Any, error: type[Exception]
) -> None:
    with pytest.raises(error):
        core.TickClock(rate, now)


def test_tick_clock_refuses_non_finite_now(core: ModuleType) -> None:
    clock = core.TickClock(64, 0.0)
    with pytest.raises(ValueError):
        clock.due(float("nan"))
    with pytest.raises(ValueError):
        clock.due(float("inf"))
    assert clock.due(float("-inf")) == -1
    assert clock.index == 1


def test_tick_clock_repr(core: ModuleType) -> None:
    assert repr(core.TickClock(64, 1.0)) == (
        "TickClock(rate=64, index=65, deadline=1.015625, skipped=0)"
    )
