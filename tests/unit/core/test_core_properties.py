"""Properties of the state-diff kernel and the tick clock, over random input.

Every property runs on both implementations (the `core` fixture), and the
`both` tests check that the two give identical results, exceptions included.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import math
from types import ModuleType
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gameserver import _core_py
from gameserver.errors import PathError

# Kept small: the whole module runs in a few seconds on both implementations.
FAST = settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# --- strategies ------------------------------------------------------------

# Keys that stress escaping ("." "~" "" and escape look-alikes) and look like
# list indexes, plus a few ordinary ones.
KEYS = st.sampled_from(["a", "b", "hp", "x", ".", "~", "", "a.b", "~0", "~1", "0", "1", "10"])
ROOT_KEYS = KEYS.filter(bool)  # the empty key at the root has no path
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-2, 2),  # small, so that 1 meets True and 1.0
    st.sampled_from([0.0, -0.0, 1.0, 2.5]),
    st.floats(allow_nan=False),
    st.sampled_from(["", "a", "1"]),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(KEYS, inner, max_size=4),
    max_leaves=10,
)
STATES = st.dictionaries(ROOT_KEYS, VALUES, max_size=5)


def containers(value: Any, segments: tuple[Any, ...] = ()) -> list[tuple[tuple[Any, ...], Any]]:
    """Every map and list in `value` with the segments (keys, indexes) that reach it."""
    found = [(segments, value)]
    if type(value) is dict:
        items: Any = value.items()
    elif type(value) is list:
        items = enumerate(value)
    else:
        return []
    for key, child in items:
        if type(child) in (dict, list):
            found += containers(child, (*segments, key))
    return found


def path_of(segments: tuple[Any, ...]) -> str:
    return ".".join(_core_py.escape_key(str(s)) for s in segments)


def cow_edit(root: Any, segments: tuple[Any, ...], edit: Any) -> Any:
    """A copy of `root` with `edit` run on the container at `segments`.

    Only the containers along the way are copied: everything else is shared
    with `root`, as when a room rebuilds the parts of its state that moved.
    """
    fresh = copy.copy(root)
    if segments:
        fresh[segments[0]] = cow_edit(root[segments[0]], segments[1:], edit)
    else:
        edit(fresh)
    return fresh


@st.composite
def edited(draw: st.DrawFn, old: dict[str, Any]) -> dict[str, Any]:
    """`old` after a few random edits, sharing whatever they did not touch."""
    new = old
    for _ in range(draw(st.integers(1, 4))):
        segments, node = draw(st.sampled_from(containers(new)))
        at_root = not segments
        if type(node) is dict:
            key = draw(st.sampled_from(sorted(node)) if node and draw(st.booleans()) else KEYS)
            if at_root and key == "":
                continue
            if key in node and draw(st.booleans()):
                new = cow_edit(new, segments, lambda c, k=key: c.pop(k))
            else:
                value = draw(VALUES)
                new = cow_edit(new, segments, lambda c, k=key, v=value: c.__setitem__(k, v))
        elif node and draw(st.booleans()):
            index, value = draw(st.integers(0, len(node) - 1)), draw(VALUES)
            new = cow_edit(new, segments, lambda c, i=index, v=value: c.__setitem__(i, v))
        else:
            value = draw(VALUES)
            new = cow_edit(new, segments, lambda c, v=value: c.append(v))
    return new


@st.composite
def state_pairs(draw: st.DrawFn) -> tuple[dict[str, Any], dict[str, Any]]:
    old = draw(STATES)
    return old, draw(st.one_of(STATES, edited(old)))


@st.composite
def commit_cases(draw: st.DrawFn) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A state and a sequence of changes, each valid where it comes."""
    start = draw(STATES)
    scratch = copy.deepcopy(start)
    changes = []
    for _ in range(draw(st.integers(0, 6))):
        # A deep copy: edited() shares subtrees with scratch, which moves on.
        change = copy.deepcopy(draw(valid_change(scratch)))
        changes.append(change)
        scratch = model_step(scratch, copy.deepcopy(change))
    return start, changes


def model_step(state: dict[str, Any], change: dict[str, Any]) -> dict[str, Any]:
    """What one valid change does to a state, by the spec, in the simplest terms."""
    if not change["path"]:
        return change["value"]
    if change["operation"] == "delete" and is_noop(state, change):
        return state
    _core_py.apply(state, [change])
    return state


@st.composite
def valid_change(draw: st.DrawFn, state: dict[str, Any]) -> dict[str, Any]:
    if draw(st.integers(0, 9)) == 0:  # now and then, the whole state
        return {"path": "", "operation": "set", "value": draw(st.one_of(STATES, edited(state)))}
    segments, node = draw(st.sampled_from(containers(state)))
    if type(node) is dict:
        key = draw(st.sampled_from(sorted(node)) if node and draw(st.booleans()) else KEYS)
        if not segments and key == "":
            key = "root"
        if draw(st.integers(0, 3)) == 0:  # may be missing: then commit drops it
            return {"path": path_of((*segments, key)), "operation": "delete"}
    elif node:
        key = draw(st.integers(0, len(node) - 1))
    else:  # an empty list: set it whole
        value = draw(st.lists(VALUES, max_size=2))
        return {"path": path_of(segments), "operation": "set", "value": value}
    current = node[key] if type(node) is list or key in node else None
    value = draw(
        st.one_of(
            VALUES,
            st.just(copy.deepcopy(current)),  # equal: dropped
            edited({"v": copy.deepcopy(current)}).map(lambda d: d.get("v")),  # a near miss
        )
    )
    return {"path": path_of((*segments, key)), "operation": "set", "value": value}


def same(a: Any, b: Any) -> bool:
    """Equality by the kernel's rule: types must match exactly, all the way down."""
    if type(a) is not type(b):
        return False
    if type(a) is dict:
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if type(a) is list:
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def is_noop(state: dict[str, Any], change: dict[str, Any]) -> bool:
    *parents, last = _core_py.split_path(change["path"])
    node: Any = state
    for segment in parents:
        node = node[int(segment)] if type(node) is list else node[segment]
    if change["operation"] == "delete":
        return last not in node
    if type(node) is list:
        return same(node[int(last)], change["value"])
    return last in node and same(node[last], change["value"])


def outcome(call: Any) -> tuple[str, str]:
    """What a call did, comparable across implementations: result or exception."""
    try:
        return "ok", repr(call())
    except Exception as exc:  # any exception: that both raise the same is the point
        return type(exc).__name__, str(exc)


# --- diff ------------------------------------------------------------------


@FAST
@given(pair=state_pairs())
def test_applying_a_diff_gives_the_new_state(core: ModuleType, pair: Any) -> None:
    old, new = pair
    snapshot = copy.deepcopy(old)
    changes = core.diff(old, new)
    assert same(old, snapshot)  # diff reads only
    target = copy.deepcopy(old)
    core.apply(target, copy.deepcopy(changes))
    assert same(target, new)
    # Minimal: no change is a no-op where it lands.
    replay = copy.deepcopy(old)
    for change in copy.deepcopy(changes):
        assert not is_noop(replay, change)
        core.apply(replay, [change])
    assert core.diff(new, copy.deepcopy(new)) == []


@FAST
@given(pair=state_pairs())
def test_diff_agrees_between_implementations(both: Any, pair: Any) -> None:
    compiled, pure = both
    old, new = pair
    assert outcome(lambda: compiled.diff(old, new, "p")) == outcome(
        lambda: pure.diff(old, new, "p")
    )
    assert repr(compiled.diff(old, new)) == repr(pure.diff(old, new))


@FAST
@given(old=st.dictionaries(KEYS, VALUES, max_size=4), new=st.dictionaries(KEYS, VALUES, max_size=4))
def test_diff_with_the_empty_root_key_agrees(both: Any, old: Any, new: Any) -> None:
    compiled, pure = both
    assert outcome(lambda: compiled.diff(old, new)) == outcome(lambda: pure.diff(old, new))


def rekeyed(value: Any, reverse: bool) -> Any:
    """`value` rebuilt with keys that are equal but other objects, maybe reordered."""
    if type(value) is dict:
        items = list(value.items())[:: -1 if reverse else 1]
        return {"".join(["", key]) + "": rekeyed(child, reverse) for key, child in items}
    if type(value) is list:
        return [rekeyed(child, reverse) for child in value]
    return value


@FAST
@given(pair=state_pairs(), reverse=st.booleans())
def test_diff_agrees_whatever_the_key_objects_and_order(
    both: Any, pair: Any, reverse: bool
) -> None:
    # The compiled diff walks `old` alongside `new` while their keys match
    # (by identity or as equal strs) and looks keys up from the first
    # mismatch on: neither may change the answer.
    compiled, pure = both
    old, new = pair
    new = rekeyed(new, reverse)
    assert outcome(lambda: compiled.diff(old, new, "p")) == outcome(
        lambda: pure.diff(old, new, "p")
    )


# --- commit ----------------------------------------------------------------


@FAST
@given(case=commit_cases())
def test_commit_law(core: ModuleType, case: Any) -> None:
    start, changes = case
    state = copy.deepcopy(start)
    # Copied only once the commit is over, as the wire encoder sees them.
    effective = copy.deepcopy(core.commit(state, copy.deepcopy(changes)))
    expected = copy.deepcopy(start)
    for change in copy.deepcopy(changes):
        expected = model_step(expected, change)
    assert same(state, expected)  # commit applies the changes
    client = copy.deepcopy(start)
    for change in effective:
        assert not is_noop(client, change), change
        core.apply(client, [change])
    assert same(client, state)  # and the effective ones reproduce them


@FAST
@given(case=commit_cases())
def test_commit_sends_no_noops(core: ModuleType, case: Any) -> None:
    # One change per commit, the result copied at once: a value that a later
    # change edits in place would otherwise make that later change look void.
    start, changes = case
    state, client = copy.deepcopy(start), copy.deepcopy(start)
    for change in copy.deepcopy(changes):
        for effective in copy.deepcopy(core.commit(state, [change])):
            assert not is_noop(client, effective), effective
            core.apply(client, [effective])
        assert same(client, state)


@FAST
@given(case=commit_cases())
def test_commit_agrees_between_implementations(both: Any, case: Any) -> None:
    start, changes = case
    results = []
    for impl in both:
        state = copy.deepcopy(start)
        results.append(
            (outcome(functools.partial(impl.commit, state, copy.deepcopy(changes))), repr(state))
        )
    assert results[0] == results[1]


# Runs of changes under shared parents, at mixed depths, with sets that
# replace a container by a scalar (so that later paths fail) and back.
NESTED = {
    "a": {"b": {"c": 0, "d": 0}, "x": 0, "b.c": 0, "t~": {"k": 0}},
    "l": [{"k": 0}, {"k": 0, "m": {"n": 0}}],
    "~r": 0,
}
NESTED_PATHS = [
    *("a.b.c", "a.b.d", "a.x", "a.b~1c", "a.b", "a", "l.0.k", "l.1.k", "l.1.m.n", "l.1.m"),
    *("a.t~0.k", "a.t~0", "~0r", "a.t~.k", "~r", "a.b.~"),  # escapes, good and bad
]
NESTED_CHANGES = st.lists(
    st.one_of(
        st.builds(
            lambda p, v: {"path": p, "operation": "set", "value": v},
            st.sampled_from(NESTED_PATHS),
            VALUES,
        ),
        st.builds(lambda p: {"path": p, "operation": "delete"}, st.sampled_from(NESTED_PATHS)),
        st.sampled_from(NESTED_PATHS).map(lambda p: {"path": p, "operation": "set", "value": 1}),
    ),
    max_size=8,
)


@settings(FAST, max_examples=60)
@given(changes=NESTED_CHANGES)
def test_commit_of_runs_agrees_between_implementations(both: Any, changes: Any) -> None:
    results = []
    for impl in both:
        state = copy.deepcopy(NESTED)
        run = functools.partial(impl.commit, state, copy.deepcopy(changes))
        results.append((outcome(run), repr(state)))
    assert results[0] == results[1]


# --- garbage ---------------------------------------------------------------

PATHS = st.one_of(
    st.text(alphabet="ab01.~-+ ٣", max_size=8),
    st.sampled_from(["", "a", "a.b", "a.0", "l.0", "l.1.x", "m.", "m.~0", "~", "l.01"]),
)
GARBAGE_CHANGES = st.one_of(
    VALUES,
    st.fixed_dictionaries(
        {},
        optional={
            "path": st.one_of(PATHS, VALUES),
            "operation": st.one_of(st.sampled_from(["set", "delete", "put", ""]), VALUES),
            "value": VALUES,
        },
    ),
)
GARBAGE_LISTS = st.one_of(st.lists(GARBAGE_CHANGES, max_size=5), VALUES)
GARBAGE_STATES = st.one_of(
    STATES,
    st.just({"a": {"b": 1, "0": [1]}, "l": [0, {"x": 1}], "m": {"": 1, "~": 2}}),
)


@settings(FAST, max_examples=60)
@given(state=GARBAGE_STATES, changes=GARBAGE_LISTS)
def test_apply_and_commit_only_ever_raise_path_error(
    core: ModuleType, state: Any, changes: Any
) -> None:
    for run in (core.apply, core.commit):
        with contextlib.suppress(PathError):
            run(copy.deepcopy(state), copy.deepcopy(changes))


@FAST
@given(state=GARBAGE_STATES, changes=GARBAGE_LISTS)
def test_garbage_gets_the_same_answer_from_both(both: Any, state: Any, changes: Any) -> None:
    for name in ("apply", "commit"):
        results = []
        for impl in both:
            target = copy.deepcopy(state)
            run = functools.partial(getattr(impl, name), target, copy.deepcopy(changes))
            results.append((outcome(run), repr(target)))
        assert results[0] == results[1]


# --- TickClock -------------------------------------------------------------

RATES = st.one_of(st.sampled_from([1, 10, 20, 30, 60, 64, 128, 144]), st.integers(1, 1000))
STARTS = st.one_of(st.floats(-1e3, 1e7), st.integers(0, 10**6).map(lambda n: n / 64))


@st.composite
def clock_runs(draw: st.DrawFn) -> tuple[int, float, list[float]]:
    """A rate, a start time, and the times a fake clock reads, never backwards."""
    rate, now = draw(RATES), draw(STARTS)
    period, times = 1.0 / rate, []
    for _ in range(draw(st.integers(1, 12))):
        step = draw(
            st.one_of(
                st.just(0.0),
                st.floats(0, 5).map(lambda f: f * period),  # a few periods, jittered
                st.integers(0, 4).map(lambda k: k * period),  # on the grid, if start was
                st.floats(0, 1e4),  # a long stall
            )
        )
        now += step
        times.append(now)
    return rate, times[0] - draw(st.floats(0, 3)) * period, times


@settings(FAST, max_examples=60)
@given(run=clock_runs())
def test_tick_clock_invariants(core: ModuleType, run: Any) -> None:
    rate, start, times = run
    clock = core.TickClock(rate, start)
    period = clock.period
    assert clock.deadline == clock.index * period > start >= (clock.index - 1) * period
    for now in times:
        index, deadline, skipped = clock.index, clock.deadline, clock.skipped
        lateness = clock.last_lateness
        got = clock.due(now)
        if now < deadline:
            assert got == -1
            assert (clock.index, clock.deadline, clock.skipped) == (index, deadline, skipped)
            assert clock.last_lateness == lateness
            continue
        assert got >= 0
        assert clock.index == index + 1 + got  # strictly increases
        assert clock.deadline == clock.index * period  # from the index: no drift
        assert clock.deadline > now  # never behind after a tick
        assert (clock.index - 1) * period <= now  # and skipped no more than missed
        assert clock.skipped == skipped + got
        assert clock.last_lateness == now - deadline
        assert abs(got - math.floor((now - deadline) / period)) <= 1  # the spec's formula


@settings(FAST, max_examples=30)
@given(run=clock_runs())
def test_tick_clock_agrees_between_implementations(both: Any, run: Any) -> None:
    rate, start, times = run
    clocks = [impl.TickClock(rate, start) for impl in both]
    for now in times:
        seen = [
            (c.due(now), c.index, c.deadline, c.skipped, c.last_lateness, c.period) for c in clocks
        ]
        assert seen[0] == seen[1]
