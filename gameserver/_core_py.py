"""The state-diff kernel and tick-deadline arithmetic, in plain Python.

This module is the executable specification of `gameserver._core` (Cython):
both give the same results, in the same order, with the same exceptions and
messages, and the tests run every case against both.  Import neither
directly: `gameserver._accel` picks one.

State is JSON-shaped: None, bool, int, float, str, list, and dict with str
keys; the root is always a dict.  A change is a plain dict in wire shape::

    {"path": "players.p1.x", "operation": "set", "value": 3.5}
    {"path": "players.p1", "operation": "delete"}

A path joins map keys and list indexes (0-based decimal) with ".".  Inside a
key "~" is written "~0" and "." is written "~1", so the key "a.b" under
"stats" is "stats.a~1b".  Any other "~" in a path is malformed.  The path ""
names the whole state; hence the empty key is fine anywhere except directly
under the root, where its path would also be "" (diff raises PathError).

Two values are equal when their types are identical and, for maps and lists,
their contents are equal by the same rule; otherwise by `==`.  So True and 1
differ, 1 and 1.0 differ, and the same object always equals itself.
"""

from __future__ import annotations

import math
import operator
from typing import Any

from gameserver.errors import PathError

__all__ = [
    "escape_key",
    "unescape_key",
    "join_path",
    "split_path",
    "diff",
    "apply",
    "commit",
    "TickClock",
]

Change = dict[str, Any]

# Beyond this many digits a list index is out of range for any real list, and
# int() itself refuses strings over 4300 digits: decide before calling it.
_MAX_INDEX_DIGITS = 18
# |now| * rate must stay below 2**52 so tick indexes are exact in a float.
_MAX_TICKS = 2.0**52
_MAX_RATE = 1_000_000
_MISSING: Any = object()  # "no such key", where None is a value


# --- paths -----------------------------------------------------------------


def escape_key(key: str) -> str:
    """Return `key` as one path segment: "~" becomes "~0", then "." becomes "~1"."""
    if type(key) is not str:
        raise TypeError(f"state keys must be str, not {type(key).__name__}")
    if "~" in key:
        key = key.replace("~", "~0")
    if "." in key:
        key = key.replace(".", "~1")
    return key


def _unescape(segment: str, path: str | None) -> str:
    """Undo `escape_key`; a "~" not followed by "0" or "1" raises PathError.

    The message names `path`, or the segment itself when `path` is None.
    """
    # Validate first: every "~" must open a "~0" or "~1" token.  Afterwards
    # plain replaces are exact, "~1" first so "~01" (the key "~1") survives.
    last = len(segment) - 1
    for i, char in enumerate(segment):
        if char == "~" and (i == last or segment[i + 1] not in "01"):
            where = f"segment {segment!r}" if path is None else f"path {path!r}"
            raise PathError(f"{where}: bad escape '~' (write '~0' for '~', '~1' for '.')")
    return segment.replace("~1", ".").replace("~0", "~")


def unescape_key(segment: str) -> str:
    """Return the key a path segment names; PathError if it holds a bad "~" escape."""
    if type(segment) is not str:
        raise TypeError(f"a path segment is a str, not {type(segment).__name__}")
    return _unescape(segment, None) if "~" in segment else segment


def join_path(prefix: str, key: str) -> str:
    """Return the path of `key` under `prefix` ("" is the root).

    For a list index pass `str(index)`.  Note `join_path("", "")` is "", the
    root itself: the empty key at the root has no path of its own.
    """
    if type(prefix) is not str:
        raise TypeError(f"a path is a str, not {type(prefix).__name__}")
    if not prefix:
        return escape_key(key)
    return f"{prefix}.{escape_key(key)}"


def split_path(path: str) -> list[str]:
    """Return the unescaped segments of `path`; PathError on a bad "~" escape."""
    if type(path) is not str:
        raise TypeError(f"a path is a str, not {type(path).__name__}")
    return _split(path)


def _split(path: str) -> list[str]:
    segments = path.split(".")
    if "~" in path:  # escapes are rare: check the whole path once
        segments = [_unescape(segment, path) for segment in segments]
    return segments


def _child_path(prefix: str, key: str) -> str:
    # Diff's join: the same as join_path, except that it refuses to name the
    # empty key at the root with "", which would mean "the whole state".
    escaped = escape_key(key)
    if not prefix:
        if not escaped:
            raise PathError("the empty key at the root has no path ('' is the whole state)")
        return escaped
    return f"{prefix}.{escaped}"


def _index_path(prefix: str, index: int) -> str:
    return f"{prefix}.{index}" if prefix else str(index)


# --- diff ------------------------------------------------------------------


def diff(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> list[Change]:
    """Return the changes that turn `old` into `new`, with paths under `prefix`.

    Order: a set for each new or changed key in `new`'s order (recursing into
    maps and into lists of unchanged length), then a delete for each vanished
    key in `old`'s order.  Change values are the objects from `new`, not
    copies: encode the changes before mutating `new`.  `old` must be a true
    snapshot: a container that both sides share is taken as unchanged.
    """
    if type(old) is not dict or type(new) is not dict:
        raise TypeError("diff() compares two dicts")
    if type(prefix) is not str:
        raise TypeError(f"a path is a str, not {type(prefix).__name__}")
    out: list[Change] = []
    _diff_dict(old, new, prefix, out)
    return out


def _diff_dict(old: dict[str, Any], new: dict[str, Any], prefix: str, out: list[Change]) -> None:
    matched = 0
    for key, new_value in new.items():
        if key not in old:
            out.append({"path": _child_path(prefix, key), "operation": "set", "value": new_value})
            continue
        matched += 1
        old_value = old[key]
        # Identity first: a subtree both sides share is unchanged and costs nothing.
        if old_value is not new_value and _diff_value(old_value, new_value, prefix, key, -1, out):
            out.append({"path": _child_path(prefix, key), "operation": "set", "value": new_value})
    if matched == len(old):
        return  # every key of old is in new: nothing to delete (the usual case)
    for key in old:
        if key not in new:
            out.append({"path": _child_path(prefix, key), "operation": "delete"})


def _diff_list(old: list[Any], new: list[Any], prefix: str, out: list[Change]) -> None:
    # The caller checked that the lengths are equal.
    for index, new_value in enumerate(new):
        old_value = old[index]
        if old_value is not new_value and _diff_value(
            old_value, new_value, prefix, None, index, out
        ):
            out.append({"path": _index_path(prefix, index), "operation": "set", "value": new_value})


def _diff_value(
    old: Any, new: Any, prefix: str, key: str | None, index: int, out: list[Change]
) -> bool:
    """Diff two values that are not the same object, found under `prefix`.

    They sit at list `index` if that is >= 0, else at map `key`, else (key
    None) `prefix` is their own path.  Appends the changes for maps and
    same-length lists, building their path only then, and returns False;
    returns True when the answer is one whole set of `new`, which the
    caller appends -- or, in commit, keeps the change it was given.
    Values of differing types always need a whole set, and so do unequal
    scalars.
    """
    kind = type(new)
    if type(old) is not kind:
        return True
    if kind is dict or kind is list:
        if kind is list and len(old) != len(new):
            return True
        if index >= 0:
            path = _index_path(prefix, index)
        elif key is None:
            path = prefix
        else:
            path = _child_path(prefix, key)
        if kind is dict:
            _diff_dict(old, new, path, out)
        else:
            _diff_list(old, new, path, out)
        return False
    return bool(old != new)


# --- apply and commit ------------------------------------------------------


def _read_change(change: Any) -> tuple[str, bool, Any]:
    """Validate one change's shape; return (path, is_set, value)."""
    if type(change) is not dict:
        raise PathError(f"a change must be a map, not {type(change).__name__}")
    path = change.get("path")
    if type(path) is not str:
        raise PathError("a change needs a 'path' string")
    operation = change.get("operation")
    if type(operation) is not str:
        raise PathError(f"path {path!r}: the operation must be a string")
    if operation == "set":
        if "value" not in change:
            raise PathError(f"path {path!r}: a set needs a 'value'")
        return path, True, change["value"]
    if operation == "delete":
        return path, False, None
    raise PathError(f"path {path!r}: unknown operation {operation!r}")


def _list_index(items: list[Any], segment: str, path: str) -> int:
    """Return the list index `segment` names: canonical decimal and in range."""
    # isascii() first: isdigit() alone would also take "²" or Arabic-Indic digits.
    if not (segment.isascii() and segment.isdigit()) or (segment[0] == "0" and len(segment) > 1):
        raise PathError(f"path {path!r}: {segment!r} is not a list index")
    if len(segment) > _MAX_INDEX_DIGITS or int(segment) >= len(items):
        raise PathError(f"path {path!r}: index {segment} is out of range (length {len(items)})")
    return int(segment)


def _walk(
    state: dict[str, Any], path: str, segments: list[str], fresh: set[int] | None = None
) -> tuple[Any, bool]:
    """Return the container the last segment of `path` is looked up in.

    And whether the way there passes through a container whose id is in
    `fresh` (commit's record of values it has just sent whole).
    """
    node: Any = state
    buried = False
    for depth in range(len(segments) - 1):
        segment = segments[depth]
        if type(node) is dict:
            if segment not in node:
                raise PathError(f"path {path!r}: no key {segment!r}")
            node = node[segment]
        elif type(node) is list:
            node = node[_list_index(node, segment, path)]
        else:
            raise _not_container(node, segment, path)
        if fresh and not buried:
            buried = id(node) in fresh
    return node, buried


def _not_container(node: Any, segment: str, path: str) -> PathError:
    return PathError(
        f"path {path!r}: {segment!r} is under a {type(node).__name__}, not a map or list"
    )


def apply(state: dict[str, Any], changes: list[Change]) -> None:
    """Apply `changes` to `state` in order, in place, inserting values uncopied.

    Total for bad input: whatever `changes` holds, only PathError escapes.  The
    changes before a bad one stay applied, so after a PathError the caller's
    state is no longer the server's: it must ask for a full state.
    """
    if type(state) is not dict:
        raise TypeError("apply() needs a dict state")
    if type(changes) is not list:
        raise PathError(f"changes must be a list, not {type(changes).__name__}")
    for change in changes:
        path, is_set, value = _read_change(change)
        if not path:
            raise PathError("path '': only commit can replace the whole state")
        segments = _split(path)
        parent, _ = _walk(state, path, segments)
        last = segments[-1]
        if type(parent) is dict:
            if is_set:
                parent[last] = value
            elif last in parent:
                del parent[last]
            else:
                raise PathError(f"path {path!r}: no key {last!r} to delete")
        elif type(parent) is list:
            if not is_set:
                raise PathError(f"path {path!r}: cannot delete a list item (set the whole list)")
            parent[_list_index(parent, last, path)] = value
        else:
            raise _not_container(parent, last, path)


def commit(state: dict[str, Any], changes: list[Change]) -> list[Change]:
    """Apply `changes` to `state` in place and return the effective changes.

    The effective changes are what a client needs to follow: a set to an
    equal value and a delete of a missing key are dropped; a map set over a
    map, or a list over a list of the same length, becomes the diff between
    them; the path "" with a map replaces the whole state (by diff, then
    clear and update); any other change is kept -- the very dict given.

    Values are not copied, so a map or list that one change sets whole is
    sent as it stands once the commit is over, edits of later changes
    included: those later changes inside it are dropped (replayed after it,
    they could name keys that no longer exist).  Encode the effective
    changes before the state moves on, and keep the state a tree: no
    object in two places.

    All or nothing: if any change is bad (PathError, as in `apply`) commit
    undoes the ones before it and raises, so the caller can report the error
    and go on with the state it had, sending nothing.  The undo restores
    every value, but a key that was deleted and put back moves to the end of
    its map's iteration order.
    """
    if type(state) is not dict:
        raise TypeError("commit() needs a dict state")
    if type(changes) is not list:
        raise PathError(f"changes must be a list, not {type(changes).__name__}")
    out: list[Change] = []
    # Flat triples (container, key or index, previous value or _MISSING);
    # a None key stands for the root, its previous value a shallow copy.
    undo: list[Any] = []
    # The ids of the maps and lists that `out` sets whole.
    fresh: set[int] = set()
    try:
        for change in changes:
            _commit_one(state, change, out, undo, fresh)
    except BaseException:
        _rollback(undo)
        raise
    return out


def _commit_one(
    state: dict[str, Any], change: Any, out: list[Change], undo: list[Any], fresh: set[int]
) -> None:
    path, is_set, value = _read_change(change)
    sent = len(out)
    if not path:
        _commit_root(state, is_set, value, out, undo)
        _note_fresh(out, sent, fresh)
        return
    segments = _split(path)
    parent, buried = _walk(state, path, segments, fresh)
    last = segments[-1]
    # `buried`: the change lands inside a value sent whole earlier in this
    # commit, which carries it already.  Apply it, send nothing.
    if type(parent) is dict:
        old = parent.get(last, _MISSING)
        if not is_set:
            if old is not _MISSING:  # deleting a missing key changes nothing
                undo += (parent, last, old)
                del parent[last]
                if not buried:
                    out.append(change)
            return
        if not buried and (
            old is _MISSING or (old is not value and _diff_value(old, value, path, None, -1, out))
        ):
            out.append(change)
        undo += (parent, last, old)
        parent[last] = value
    elif type(parent) is list:
        if not is_set:
            raise PathError(f"path {path!r}: cannot delete a list item (set the whole list)")
        index = _list_index(parent, last, path)
        old = parent[index]
        if not buried and old is not value and _diff_value(old, value, path, None, -1, out):
            out.append(change)
        undo += (parent, index, old)
        parent[index] = value
    else:
        raise _not_container(parent, last, path)
    _note_fresh(out, sent, fresh)


def _note_fresh(out: list[Change], sent: int, fresh: set[int]) -> None:
    # Record the maps and lists that the changes from out[sent] on set whole.
    # Every one stays referenced by `out`, so its id cannot be reused.
    for at in range(sent, len(out)):
        change = out[at]
        if change["operation"] == "set" and type(change["value"]) in (dict, list):
            fresh.add(id(change["value"]))


def _commit_root(
    state: dict[str, Any], is_set: bool, value: Any, out: list[Change], undo: list[Any]
) -> None:
    if not is_set or type(value) is not dict:
        raise PathError("path '': the whole state can only be set, to a map")
    if value is not state:
        _diff_dict(state, value, "", out)  # raises before mutating, if it raises
        undo += (state, None, dict(state))
        state.clear()
        state.update(value)


def _rollback(undo: list[Any]) -> None:
    # Newest first: a later change may have edited inside a value that an
    # earlier one inserted.
    for at in range(len(undo) - 3, -1, -3):
        container, key, previous = undo[at], undo[at + 1], undo[at + 2]
        if key is None:
            container.clear()
            container.update(previous)
        elif previous is _MISSING:
            del container[key]
        else:
            container[key] = previous


# --- tick deadlines --------------------------------------------------------


def _check_now(now: float, period: float) -> None:
    # Also false for NaN.  The bound keeps now / period, and so every tick
    # index, exactly representable in a double.
    if not abs(now) < period * _MAX_TICKS:
        raise ValueError("now must be a finite time within 2**52 ticks of 0")


class TickClock:
    """When a room's next tick is due, on a fixed grid of deadlines.

    Deadlines are `index * period` for an integer `index`, so they never
    drift and rooms sharing a clock tick together (the scheduler shifts a
    phase's times by its offset).  The caller feeds the
    current time to `due` and runs one tick whenever it returns >= 0; a
    late room skips the periods it missed rather than bursting to catch up.
    All attributes are read-only.
    """

    __slots__ = ("_rate", "_period", "_index", "_deadline", "_skipped", "_last_lateness")

    def __init__(self, rate: int, now: float) -> None:
        rate = operator.index(rate)
        if not 0 < rate <= _MAX_RATE:
            raise ValueError(f"rate must be 1..{_MAX_RATE} ticks per second, not {rate}")
        period = 1.0 / rate
        _check_now(now, period)
        # The first grid point strictly after now.  The division may round
        # across a grid point; the loops settle it with the same products
        # that give the deadline.
        index = math.floor(now / period) + 1
        while index * period <= now:
            index += 1
        while (index - 1) * period > now:
            index -= 1
        self._rate = rate
        self._period = period
        self._index = index
        self._deadline = index * period
        self._skipped = 0
        self._last_lateness = 0.0

    @property
    def rate(self) -> int:
        """Ticks per second."""
        return self._rate

    @property
    def period(self) -> float:
        """Seconds per tick, 1.0 / rate."""
        return self._period

    @property
    def index(self) -> int:
        """The grid index of the next deadline."""
        return self._index

    @property
    def deadline(self) -> float:
        """When the next tick is due: index * period."""
        return self._deadline

    @property
    def skipped(self) -> int:
        """Ticks skipped so far because the room was late."""
        return self._skipped

    @property
    def last_lateness(self) -> float:
        """Seconds between the last due tick's deadline and the time it ran."""
        return self._last_lateness

    def due(self, now: float) -> int:
        """Return -1 if no tick is due at `now`, else the periods skipped (>= 0).

        On a return >= 0 the caller runs exactly one tick now; the clock has
        moved on to the first grid point strictly after `now`.
        """
        if now < self._deadline:
            return -1
        period = self._period
        _check_now(now, period)
        index = self._index
        self._last_lateness = now - self._deadline
        skipped = math.floor(self._last_lateness / period)
        # As in __init__: settle a division that rounded across a grid point.
        while (index + skipped + 1) * period <= now:
            skipped += 1
        while skipped > 0 and (index + skipped) * period > now:
            skipped -= 1
        self._index = index = index + 1 + skipped
        self._deadline = index * period
        self._skipped += skipped
        return skipped

    def __repr__(self) -> str:
        return (
            f"TickClock(rate={self._rate}, index={self._index}, "
            f"deadline={self._deadline!r}, skipped={self._skipped})"
        )
