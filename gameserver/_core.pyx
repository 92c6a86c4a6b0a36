# cython: language_level=3, boundscheck=False, wraparound=False
"""The state-diff kernel and tick-deadline arithmetic, compiled.

Behaves exactly like gameserver/_core_py.py -- same results, same order,
same exceptions and messages -- which documents every rule; the comments
here explain only how this version is made fast.  Import neither directly:
`gameserver._accel` picks one.
"""

cimport cython
from cpython.dict cimport PyDict_GetItemWithError
from cpython.float cimport PyFloat_AS_DOUBLE
from cpython.list cimport PyList_GET_SIZE
from cpython.long cimport PyLong_FromVoidPtr
from cpython.number cimport PyNumber_Index
from cpython.object cimport Py_NE, PyObject, PyObject_RichCompareBool
from cpython.ref cimport Py_INCREF, Py_XDECREF
from libc.math cimport fabs, floor

from gameserver.errors import PathError

cdef extern from "Python.h":
    Py_ssize_t PyDict_GET_SIZE(object)  # the macro: no type check, no call
    bint PyDict_Next(object, Py_ssize_t*, PyObject**, PyObject**)

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

cdef enum:
    _MAX_INDEX_DIGITS = 18  # more digits: out of range for any list
    _MAX_RATE = 1000000
cdef double _MAX_TICKS = 4503599627370496.0  # 2**52: tick indexes stay exact doubles
cdef object _MISSING = object()  # "no such key", where None is a value


# --- paths -----------------------------------------------------------------


cdef str _escape(object key):
    if type(key) is not str:
        raise TypeError(f"state keys must be str, not {type(key).__name__}")
    cdef Py_UCS4 char
    # One scan over the key's own buffer; nearly every key needs no escape.
    for char in <str>key:
        if char == u"~" or char == u".":
            return (<str>key).replace("~", "~0").replace(".", "~1")
    return <str>key


cdef str _unescape(str segment, object path):
    cdef Py_ssize_t i, last = len(segment) - 1
    cdef Py_UCS4 char
    for i in range(last + 1):
        if segment[i] == u"~" and (i == last or (segment[i + 1] != u"0" and segment[i + 1] != u"1")):
            where = f"segment {segment!r}" if path is None else f"path {path!r}"
            raise PathError(f"{where}: bad escape '~' (write '~0' for '~', '~1' for '.')")
    return segment.replace("~1", ".").replace("~0", "~")


def escape_key(key):
    """Return `key` as one path segment: "~" becomes "~0", then "." becomes "~1"."""
    return _escape(key)


def unescape_key(segment):
    """Return the key a path segment names; PathError if it holds a bad "~" escape."""
    if type(segment) is not str:
        raise TypeError(f"a path segment is a str, not {type(segment).__name__}")
    return _unescape(segment, None) if u"~" in <str>segment else segment


def join_path(prefix, key):
    """Return the path of `key` under `prefix` ("" is the root).

    For a list index pass `str(index)`.  Note `join_path("", "")` is "", the
    root itself: the empty key at the root has no path of its own.
    """
    if type(prefix) is not str:
        raise TypeError(f"a path is a str, not {type(prefix).__name__}")
    cdef str escaped = _escape(key)
    if not <str>prefix:
        return escaped
    return f"{<str>prefix}.{escaped}"


def split_path(path):
    """Return the unescaped segments of `path`; PathError on a bad "~" escape."""
    if type(path) is not str:
        raise TypeError(f"a path is a str, not {type(path).__name__}")
    return _split_new(path)  # the caller's own list: never the cached one


cdef list _split_new(str path):
    cdef list segments = path.split(".")
    cdef Py_ssize_t i
    if u"~" in path:  # escapes are rare: check the whole path once
        for i in range(len(segments)):
            segments[i] = _unescape(<str>segments[i], path)
    return segments


# A room names the same few paths tick after tick ("players.p1.x"), so apply
# and commit keep their segments: a hit saves the split, its allocations and
# the hashing of every segment on lookup.  Transparent -- the lists are never
# handed out or changed -- and bounded: emptied when full.
cdef dict _SPLIT_CACHE = {}
cdef enum:
    _SPLIT_CACHE_SIZE = 4096


cdef list _split(str path):
    # Segments of `path` for reading only: the list may be shared.
    cdef PyObject* hit = PyDict_GetItemWithError(_SPLIT_CACHE, path)
    if hit is not NULL:
        return <list>hit
    cdef list segments = _split_new(path)
    if PyDict_GET_SIZE(_SPLIT_CACHE) >= _SPLIT_CACHE_SIZE:
        _SPLIT_CACHE.clear()
    _SPLIT_CACHE[path] = segments
    return segments


# Diff builds paths lazily.  Each level of the walk describes where it is
# with a _Seg on the C stack -- its escaped key or its list index, and a
# pointer to the level above -- and a path is made only to name a change,
# once per map or list that has one: a player whose fields are all
# unchanged costs no allocation, and one whose x and y moved builds
# "players.p1" once.  The Python twin builds every path eagerly with
# _child_path; the results, and the points where errors arise, are the same.

cdef struct _Seg:
    _Seg* up  # NULL at the top: then `key` is the whole path
    PyObject* key  # a str, kept alive by the frame that made this _Seg; or NULL
    Py_ssize_t index  # when key is NULL
    PyObject* path  # this level's path once built: an owned reference, or NULL


cdef str _seg_full(_Seg* at):
    # The path of the level `at` itself, built once and kept in at.path; the
    # frame that made the _Seg releases it.
    if at.path is not NULL:
        return <str>at.path
    cdef str own = <str>at.key if at.key is not NULL else f"{at.index}"
    cdef str path = own if at.up is NULL else f"{_seg_full(at.up)}.{own}"
    Py_INCREF(path)
    at.path = <PyObject*>path
    return path


cdef str _seg_path(_Seg* at, str escaped):
    # The path of `escaped` (an escaped key, or an index as a str) under `at`.
    if at is NULL:
        if not escaped:
            raise PathError("the empty key at the root has no path ('' is the whole state)")
        return escaped
    return f"{_seg_full(at)}.{escaped}"


cdef inline dict _set_change(str path, object value):
    return {"path": path, "operation": "set", "value": value}


# --- diff ------------------------------------------------------------------


def diff(old, new, prefix=""):
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
    cdef list out = []
    cdef _Seg top
    if not prefix:
        _diff_dict(<dict>old, <dict>new, NULL, out)
        return out
    top.up, top.key, top.index, top.path = NULL, <PyObject*>prefix, -1, NULL
    _descend(<dict>old, <dict>new, &top, out)
    return out


cdef int _diff_dict(dict old, dict new, _Seg* at, list out) except -1:
    cdef object key, new_value, old_value
    cdef PyObject *k
    cdef PyObject *v
    cdef PyObject *found
    cdef Py_ssize_t pos = 0, size = PyDict_GET_SIZE(new), matched = 0
    # PyDict_Next by hand: Cython's own dict loop calls PyDict_Size on every
    # step.  Strong references to key and value, and the size check Python
    # makes, keep it safe should a non-JSON value's __ne__ edit the dict.
    while PyDict_Next(new, &pos, &k, &v):
        key = <object>k
        new_value = <object>v
        # Borrowed and NULL when missing, without raising KeyError.
        found = PyDict_GetItemWithError(old, key)
        if found is NULL:
            out.append(_set_change(_seg_path(at, _escape(key)), new_value))
        else:
            matched += 1
            old_value = <object>found  # now a strong reference
            if old_value is not new_value and _diff_value(old_value, new_value, at, key, -1, out, None):
                out.append(_set_change(_seg_path(at, _escape(key)), new_value))
        if PyDict_GET_SIZE(new) != size:
            raise RuntimeError("dictionary changed size during iteration")
    # Every key of `old` was matched by one of `new`: none to delete.  The
    # common case, and it saves a second pass.
    if matched == PyDict_GET_SIZE(old):
        return 0
    for key in old:
        if key not in new:
            out.append({"path": _seg_path(at, _escape(key)), "operation": "delete"})
    return 0


# Values of non-JSON types can run Python code in __ne__ that resizes a list
# under us: keep bounds checks here so that costs an IndexError, not a crash.
@cython.boundscheck(True)
cdef int _diff_list(list old, list new, _Seg* at, list out) except -1:
    cdef Py_ssize_t index
    cdef object old_value, new_value
    for index in range(PyList_GET_SIZE(new)):
        new_value = new[index]
        old_value = old[index]
        if old_value is not new_value and _diff_value(old_value, new_value, at, None, index, out, None):
            out.append(_set_change(_seg_path(at, f"{index}"), new_value))
    return 0


cdef int _diff_value(object old, object new, _Seg* at, object key, Py_ssize_t index,
                     list out, str path) except -1:
    # 1: one whole set of `new` is needed (the caller appends it); 0: done.
    # Where the pair sits: at `path` if that is not None (commit knows it),
    # else under `at`, at list `index` if >= 0, else at map `key`.
    cdef type kind = type(new)
    cdef _Seg here
    cdef str escaped
    if type(old) is not kind:
        return 1
    # Scalars first, the common case, each by its cheapest exact comparison.
    if kind is float:
        return PyFloat_AS_DOUBLE(old) != PyFloat_AS_DOUBLE(new)
    if kind is str:
        return not (<str>old == <str>new)
    if kind is not dict and kind is not list:
        return PyObject_RichCompareBool(old, new, Py_NE)
    if kind is list and PyList_GET_SIZE(old) != PyList_GET_SIZE(new):
        return 1
    # Descend: `here` describes the pair's place; `escaped` or `path` keeps
    # the str it points to alive until the recursion returns.
    if path is not None:
        here.up, here.key, here.index = NULL, <PyObject*>path, -1
    elif index >= 0:
        here.up, here.key, here.index = at, NULL, index
    else:
        escaped = _escape(key)
        if at is NULL and not escaped:
            raise PathError("the empty key at the root has no path ('' is the whole state)")
        here.up, here.key, here.index = at, <PyObject*>escaped, -1
    here.path = NULL
    _descend(old, new, &here, out)
    return 0


cdef int _descend(object old, object new, _Seg* here, list out) except -1:
    # Diff two maps or two same-length lists at `here`, then drop the path
    # `here` may have cached, whether or not the diff raised.
    try:
        if type(new) is dict:
            _diff_dict(<dict>old, <dict>new, here, out)
        else:
            _diff_list(<list>old, <list>new, here, out)
    finally:
        Py_XDECREF(here.path)
        here.path = NULL
    return 0


# --- apply and commit ------------------------------------------------------


cdef str _read_change(object change, PyObject** value):
    # Validate one change's shape and return its path; *value is the value of
    # a set (borrowed from the change), NULL for a delete.
    if type(change) is not dict:
        raise PathError(f"a change must be a map, not {type(change).__name__}")
    cdef PyObject* found = PyDict_GetItemWithError(<dict>change, "path")
    if found is NULL or type(<object>found) is not str:
        raise PathError("a change needs a 'path' string")
    cdef str path = <str>found
    found = PyDict_GetItemWithError(<dict>change, "operation")
    if found is NULL or type(<object>found) is not str:
        raise PathError(f"path {path!r}: the operation must be a string")
    cdef str operation = <str>found
    if operation == "set":
        value[0] = PyDict_GetItemWithError(<dict>change, "value")
        if value[0] is NULL:
            raise PathError(f"path {path!r}: a set needs a 'value'")
        return path
    if operation == "delete":
        value[0] = NULL
        return path
    raise PathError(f"path {path!r}: unknown operation {operation!r}")


cdef Py_ssize_t _list_index(list items, str segment, str path) except -1:
    cdef Py_ssize_t length = len(segment), value = 0, i
    cdef Py_UCS4 char
    # Canonical decimal only: ASCII digits, no sign, no leading zero.
    if length == 0 or (length > 1 and segment[0] == u"0"):
        raise PathError(f"path {path!r}: {segment!r} is not a list index")
    for i in range(length):
        char = segment[i]
        if char < u"0" or char > u"9":
            raise PathError(f"path {path!r}: {segment!r} is not a list index")
    if length <= _MAX_INDEX_DIGITS:
        for i in range(length):
            value = value * 10 + (<Py_ssize_t>segment[i] - 48)
        if value < PyList_GET_SIZE(items):
            return value
    raise PathError(f"path {path!r}: index {segment} is out of range (length {len(items)})")


cdef object _walk(dict state, str path, list segments, set fresh, bint* buried):
    # Also sets *buried when the way passes through a container whose id is
    # in `fresh` (commit's record of values it has just sent whole); apply
    # passes fresh=None.
    cdef object node = state
    cdef str segment
    cdef PyObject* found
    cdef Py_ssize_t depth
    buried[0] = False
    for depth in range(PyList_GET_SIZE(segments) - 1):
        segment = <str>segments[depth]
        if type(node) is dict:
            found = PyDict_GetItemWithError(<dict>node, segment)
            if found is NULL:
                raise PathError(f"path {path!r}: no key {segment!r}")
            node = <object>found
        elif type(node) is list:
            node = (<list>node)[_list_index(<list>node, segment, path)]
        else:
            raise _not_container(node, segment, path)
        # Nearly always skipped: fresh is empty unless a map or list was sent.
        if fresh and not buried[0]:
            buried[0] = PyLong_FromVoidPtr(<void*>node) in fresh
    return node


cdef object _not_container(object node, str segment, str path):
    return PathError(f"path {path!r}: {segment!r} is under a {type(node).__name__}, not a map or list")


def apply(state, changes):
    """Apply `changes` to `state` in order, in place, inserting values uncopied.

    Total for bad input: whatever `changes` holds, only PathError escapes.  The
    changes before a bad one stay applied, so after a PathError the caller's
    state is no longer the server's: it must ask for a full state.
    """
    if type(state) is not dict:
        raise TypeError("apply() needs a dict state")
    if type(changes) is not list:
        raise PathError(f"changes must be a list, not {type(changes).__name__}")
    cdef object change, parent, value
    cdef PyObject* value_ptr
    cdef str path, last
    cdef list segments
    cdef bint buried
    for change in <list>changes:
        path = _read_change(change, &value_ptr)
        value = <object>value_ptr if value_ptr is not NULL else None
        if not path:
            raise PathError("path '': only commit can replace the whole state")
        segments = _split(path)
        parent = _walk(<dict>state, path, segments, None, &buried)
        last = <str>segments[PyList_GET_SIZE(segments) - 1]
        if type(parent) is dict:
            if value_ptr is not NULL:
                (<dict>parent)[last] = value
            elif last in <dict>parent:
                del (<dict>parent)[last]
            else:
                raise PathError(f"path {path!r}: no key {last!r} to delete")
        elif type(parent) is list:
            if value_ptr is NULL:
                raise PathError(f"path {path!r}: cannot delete a list item (set the whole list)")
            (<list>parent)[_list_index(<list>parent, last, path)] = value
        else:
            raise _not_container(parent, last, path)


# Bounds checks on: a non-JSON value's __ne__ (run by _diff_value) could
# resize a list between the index check and the store.
@cython.boundscheck(True)
def commit(state, changes):
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
    cdef list out = []
    # Flat triples (container, key or index, previous value or _MISSING),
    # three appends and no tuple per change; a None key stands for the
    # root, its previous value a shallow copy.
    cdef list undo = []
    # The ids of the maps and lists that `out` sets whole; made on first need.
    cdef set fresh = None
    cdef object change, value, parent, old
    cdef PyObject* value_ptr
    cdef PyObject* found
    cdef str path, last
    cdef list segments
    cdef Py_ssize_t index, sent
    cdef bint buried, keep
    # One loop, inlined: this runs for every change of every room's tick.
    try:
        for change in <list>changes:
            path = _read_change(change, &value_ptr)
            value = <object>value_ptr if value_ptr is not NULL else None
            sent = PyList_GET_SIZE(out)
            if not path:
                _commit_root(<dict>state, value_ptr is not NULL, value, out, undo)
                fresh = _note_fresh(out, sent, fresh)
                continue
            segments = _split(path)
            parent = _walk(<dict>state, path, segments, fresh, &buried)
            last = <str>segments[PyList_GET_SIZE(segments) - 1]
            # `buried`: the change lands inside a value sent whole earlier in
            # this commit, which carries it already.  Apply it, send nothing.
            if type(parent) is dict:
                found = PyDict_GetItemWithError(<dict>parent, last)
                old = _MISSING if found is NULL else <object>found
                if value_ptr is NULL:
                    if found is not NULL:  # deleting a missing key changes nothing
                        undo.append(parent)
                        undo.append(last)
                        undo.append(old)
                        del (<dict>parent)[last]
                        if not buried:
                            out.append(change)
                    continue
                keep = not buried and (
                    found is NULL
                    or (old is not value and _diff_value(old, value, NULL, None, -1, out, path))
                )
                undo.append(parent)
                undo.append(last)
                undo.append(old)
                (<dict>parent)[last] = value
            elif type(parent) is list:
                if value_ptr is NULL:
                    raise PathError(f"path {path!r}: cannot delete a list item (set the whole list)")
                index = _list_index(<list>parent, last, path)
                old = (<list>parent)[index]
                keep = not buried and old is not value and _diff_value(old, value, NULL, None, -1, out, path)
                undo.append(parent)
                undo.append(index)
                undo.append(old)
                (<list>parent)[index] = value
            else:
                raise _not_container(parent, last, path)
            if PyList_GET_SIZE(out) != sent:  # a map or list diffed: rare
                fresh = _note_fresh(out, sent, fresh)
            if keep:
                out.append(change)
                if type(value) is dict or type(value) is list:
                    fresh = _add_fresh(fresh, value)
    except BaseException:
        _rollback(undo)
        raise
    return out


cdef set _add_fresh(set fresh, object value):
    # Every value added stays referenced by `out`, so its id cannot be reused.
    if fresh is None:
        fresh = set()
    fresh.add(PyLong_FromVoidPtr(<void*>value))
    return fresh


cdef set _note_fresh(list out, Py_ssize_t sent, set fresh):
    # Record the maps and lists that the changes from out[sent] on set whole.
    cdef Py_ssize_t at
    cdef dict change
    cdef object value
    for at in range(sent, PyList_GET_SIZE(out)):
        change = <dict>out[at]
        if change["operation"] == "set":
            value = change["value"]
            if type(value) is dict or type(value) is list:
                fresh = _add_fresh(fresh, value)
    return fresh


cdef int _commit_root(dict state, bint is_set, object value, list out, list undo) except -1:
    if not is_set or type(value) is not dict:
        raise PathError("path '': the whole state can only be set, to a map")
    if value is not state:
        _diff_dict(state, <dict>value, NULL, out)  # raises before mutating, if it raises
        undo.append(state)
        undo.append(None)
        undo.append(state.copy())
        state.clear()
        state.update(<dict>value)
    return 0


cdef void _rollback(list undo):
    # Newest first: a later change may have edited inside a value that an
    # earlier one inserted.  Only plain stores and deletes of what was
    # there: nothing here can fail on JSON-shaped state.
    cdef Py_ssize_t at
    cdef object container, key, previous
    for at in range(PyList_GET_SIZE(undo) - 3, -1, -3):
        container = undo[at]
        key = undo[at + 1]
        previous = undo[at + 2]
        if key is None:
            (<dict>container).clear()
            (<dict>container).update(previous)
        elif previous is _MISSING:
            del container[key]
        else:
            container[key] = previous


# --- tick deadlines --------------------------------------------------------


cdef inline int _check_now(double now, double period) except -1:
    # Also true for NaN.  The bound keeps now / period, and so every tick
    # index, exactly representable in a double -- and in a long long.
    if not fabs(now) < period * _MAX_TICKS:
        raise ValueError("now must be a finite time within 2**52 ticks of 0")
    return 0


cdef class TickClock:
    """When a room's next tick is due, on a grid shared by all rooms of a rate.

    Deadlines are `index * period` for an integer `index`, so they never
    drift and rooms of the same rate tick together.  The caller feeds the
    current time to `due` and runs one tick whenever it returns >= 0; a
    late room skips the periods it missed rather than bursting to catch up.
    All attributes are read-only.
    """

    def __init__(self, rate, now):
        rate = PyNumber_Index(rate)
        if not 0 < rate <= _MAX_RATE:
            raise ValueError(f"rate must be 1..{_MAX_RATE} ticks per second, not {rate}")
        cdef double period = 1.0 / <int>rate
        cdef double start = now
        _check_now(start, period)
        # The first grid point strictly after now.  The division may round
        # across a grid point; the loops settle it with the same products
        # that give the deadline.
        cdef long long index = <long long>floor(start / period) + 1
        while index * period <= start:
            index += 1
        while (index - 1) * period > start:
            index -= 1
        self.rate = rate
        self.period = period
        self.index = index
        self.deadline = index * period
        self.skipped = 0
        self.last_lateness = 0.0

    cpdef long long due(self, double now) except -2:
        """Return -1 if no tick is due at `now`, else the periods skipped (>= 0).

        On a return >= 0 the caller runs exactly one tick now; the clock has
        moved on to the first grid point strictly after `now`.
        """
        if now < self.deadline:
            return -1
        cdef double period = self.period
        _check_now(now, period)
        cdef long long index = self.index
        self.last_lateness = now - self.deadline
        cdef long long skipped = <long long>floor(self.last_lateness / period)
        # As in __init__: settle a division that rounded across a grid point.
        while (index + skipped + 1) * period <= now:
            skipped += 1
        while skipped > 0 and (index + skipped) * period > now:
            skipped -= 1
        index += 1 + skipped
        self.index = index
        self.deadline = index * period
        self.skipped += skipped
        return skipped

    def __repr__(self):
        return (
            f"TickClock(rate={self.rate}, index={self.index}, "
            f"deadline={self.deadline!r}, skipped={self.skipped})"
        )
