# cython: language_level=3, boundscheck=False, wraparound=False
"""The state-diff kernel and tick-deadline arithmetic, compiled.

Behaves exactly like gameserver/_core_py.py -- same results, same order,
same exceptions and messages -- which documents every rule; the comments
here explain only how this version is made fast.  Import neither directly:
`gameserver._accel` picks one.
"""

cimport cython
from cpython.dict cimport PyDict_Copy, PyDict_GetItemWithError, PyDict_SetItem
from cpython.float cimport PyFloat_AS_DOUBLE
from cpython.list cimport PyList_GET_ITEM, PyList_GET_SIZE
from cpython.long cimport PyLong_FromVoidPtr
from cpython.mem cimport PyMem_Free, PyMem_Malloc
from cpython.number cimport PyNumber_Index
from cpython.object cimport Py_NE, PyObject, PyObject_RichCompareBool
from cpython.ref cimport Py_INCREF, Py_XDECREF, Py_XINCREF
from libc.math cimport fabs, floor
from libc.string cimport memcmp, memcpy

from gameserver.errors import PathError

cdef extern from "Python.h":
    Py_ssize_t PyDict_GET_SIZE(object)  # the macro: no type check, no call
    bint PyDict_Next(object, Py_ssize_t*, PyObject**, PyObject**)
    Py_ssize_t PyUnicode_GET_LENGTH(object)
    int PyUnicode_KIND(object)
    void* PyUnicode_DATA(object)
    Py_UCS4 PyUnicode_READ(int, void*, Py_ssize_t)

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


# --- paths -----------------------------------------------------------------


cdef str _escape(object key):
    if type(key) is not str:
        raise TypeError(f"state keys must be str, not {type(key).__name__}")
    cdef Py_UCS4 char
    cdef const unsigned char* byte
    cdef Py_ssize_t at, length = PyUnicode_GET_LENGTH(key)
    # One scan over the key's own buffer; nearly every key needs no escape.
    # Keys are nearly always one byte per character: a plain byte loop.
    if PyUnicode_KIND(key) == 1:
        byte = <const unsigned char*>PyUnicode_DATA(key)
        for at in range(length):
            if byte[at] == 126 or byte[at] == 46:  # "~" or "."
                return (<str>key).replace("~", "~0").replace(".", "~1")
        return <str>key
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


# A set change is a copy of this, path and value filled in: copying a
# small dict clones its key table in one block, cheaper than building the
# table key by key.  Same keys, same order, so the same dict.
cdef dict _SET_TEMPLATE = {"path": "", "operation": "set", "value": None}


cdef inline dict _set_change(str path, object value):
    cdef dict change = PyDict_Copy(_SET_TEMPLATE)
    PyDict_SetItem(change, _PATH, path)
    PyDict_SetItem(change, _VALUE, value)
    return change


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
    cdef PyObject *old_k
    cdef PyObject *old_v
    cdef PyObject *found
    cdef Py_ssize_t pos = 0, old_pos = 0, size = PyDict_GET_SIZE(new), matched = 0
    cdef bint aligned = True
    cdef int changed
    # PyDict_Next by hand: Cython's own dict loop calls PyDict_Size on every
    # step.  Strong references to key and value, and the size check Python
    # makes, keep it safe should a non-JSON value's __ne__ edit the dict.
    cdef Py_ssize_t step
    for step in range(size):  # `size` calls see every entry, and no more
        if not PyDict_Next(new, &pos, &k, &v):  # only if __ne__ code edited it
            raise RuntimeError("dictionary changed size during iteration")
        key = <object>k
        new_value = <object>v
        # Two versions of one map nearly always hold the same keys in the
        # same order: walk `old` alongside, and while its key at the same
        # step is this one (the same object, or an equal str: keys are
        # unique), its value is the look-up's answer, without the look-up.
        # From the first step that differs on, look each key up.
        found = NULL
        if aligned:
            if PyDict_Next(old, &old_pos, &old_k, &old_v) and (
                old_k == k or (
                    type(key) is str and type(<object>old_k) is str and <str>old_k == <str>key
                )
            ):
                found = old_v
            else:
                aligned = False
        if not aligned:
            # Borrowed and NULL when missing, without raising KeyError.
            found = PyDict_GetItemWithError(old, key)
        if found is NULL:
            out.append(_set_change(_seg_path(at, _escape(key)), new_value))
        else:
            matched += 1
            old_value = <object>found  # now a strong reference
            if old_value is not new_value:
                changed = _scalar_changed(old_value, new_value)
                if changed == 2:
                    changed = _diff_value(old_value, new_value, at, key, -1, out, None)
                if changed:
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
    cdef int changed
    for index in range(PyList_GET_SIZE(new)):
        new_value = new[index]
        old_value = old[index]
        if old_value is not new_value:
            changed = _scalar_changed(old_value, new_value)
            if changed == 2:
                changed = _diff_value(old_value, new_value, at, None, index, out, None)
            if changed:
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


# The keys of a change.  Cython interns these literals, and so does Python
# for the dict literals that build changes (scripting/lua_room.py): the
# keys of nearly every change are these very objects.
cdef object _PATH = "path"
cdef object _OPERATION = "operation"
cdef object _VALUE = "value"


cdef str _read_change(object change, PyObject** value):
    # Validate one change's shape and return its path; *value is the value of
    # a set (borrowed from the change), NULL for a delete.
    if type(change) is not dict:
        raise PathError(f"a change must be a map, not {type(change).__name__}")
    cdef PyObject* found = NULL
    cdef PyObject* operation_ptr = NULL
    cdef PyObject* k
    cdef PyObject* v
    cdef Py_ssize_t pos = 0, size = PyDict_GET_SIZE(change), entry
    cdef bint scanned = size <= 3
    value[0] = NULL
    # Fast path: one pass over the (at most 3) entries, matching the keys by
    # identity, instead of three hashed look-ups.  Any other key -- an equal
    # str that is not the interned one, or an extra key -- falls back to the
    # look-ups (in the twin's order), which find the same values.  `size`
    # calls of PyDict_Next see every entry: no extra call to find the end.
    if scanned:
        for entry in range(size):
            if not PyDict_Next(change, &pos, &k, &v):
                break  # cannot happen: nothing runs between the calls
            if k == <PyObject*>_PATH:
                found = v
            elif k == <PyObject*>_OPERATION:
                operation_ptr = v
            elif k == <PyObject*>_VALUE:
                value[0] = v
            else:
                scanned = False
                break
    if not scanned:
        found = PyDict_GetItemWithError(<dict>change, _PATH)
    if found is NULL or type(<object>found) is not str:
        raise PathError("a change needs a 'path' string")
    cdef str path = <str>found
    if not scanned:
        operation_ptr = PyDict_GetItemWithError(<dict>change, _OPERATION)
    if operation_ptr is NULL or type(<object>operation_ptr) is not str:
        raise PathError(f"path {path!r}: the operation must be a string")
    cdef str operation = <str>operation_ptr
    if operation == "set":
        if not scanned:
            value[0] = PyDict_GetItemWithError(<dict>change, _VALUE)
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


# The undo log of one commit: a C array of entries, on the C stack for the
# handful of changes a tick usually has and on the heap past that -- no
# Python list, no appends, no resizing on the common path.  Each entry owns
# its references: a value a change replaced or deleted must outlive the
# commit, since a rollback puts it back.

cdef struct _Undo:
    PyObject* container  # the map or list written to
    PyObject* key  # the map key; NULL for a list slot, or for the root
    Py_ssize_t index  # the list slot; -1 with key NULL: the root
    PyObject* previous  # the value before; NULL: the key was missing

cdef enum:
    _UNDO_LOCAL = 16

cdef struct _UndoLog:
    _Undo* entries  # `local` until it fills up
    Py_ssize_t size
    Py_ssize_t capacity
    _Undo local[_UNDO_LOCAL]


cdef inline void _undo_init(_UndoLog* log) noexcept:
    log.entries = log.local
    log.size = 0
    log.capacity = _UNDO_LOCAL


cdef int _undo_push(_UndoLog* log, object container, PyObject* key, Py_ssize_t index,
                    PyObject* previous) except -1:
    cdef _Undo* entries
    if log.size == log.capacity:
        entries = <_Undo*>PyMem_Malloc(2 * log.capacity * sizeof(_Undo))
        if entries is NULL:
            raise MemoryError()
        memcpy(entries, log.entries, log.size * sizeof(_Undo))
        if log.entries != log.local:
            PyMem_Free(log.entries)
        log.entries = entries
        log.capacity *= 2
    cdef _Undo* entry = &log.entries[log.size]
    Py_INCREF(container)
    entry.container = <PyObject*>container
    Py_XINCREF(key)
    entry.key = key
    entry.index = index
    Py_XINCREF(previous)
    entry.previous = previous
    log.size += 1
    return 0


cdef void _undo_free(_UndoLog* log) noexcept:
    # Drops the log's references (which may free values the commit replaced).
    cdef Py_ssize_t at
    for at in range(log.size):
        Py_XDECREF(log.entries[at].container)
        Py_XDECREF(log.entries[at].key)
        Py_XDECREF(log.entries[at].previous)
    if log.entries != log.local:
        PyMem_Free(log.entries)
    _undo_init(log)


# Bounds checks on: a non-JSON value's __ne__ could have shrunk a list.
@cython.boundscheck(True)
cdef void _rollback(_UndoLog* log):
    # Newest first: a later change may have edited inside a value that an
    # earlier one inserted.  Only plain stores and deletes of what was
    # there: nothing here can fail on JSON-shaped state.
    cdef Py_ssize_t at
    cdef _Undo* entry
    cdef object container
    for at in range(log.size - 1, -1, -1):
        entry = &log.entries[at]
        container = <object>entry.container
        if entry.key is not NULL:
            if entry.previous is NULL:
                del (<dict>container)[<object>entry.key]
            else:
                (<dict>container)[<object>entry.key] = <object>entry.previous
        elif entry.index >= 0:
            (<list>container)[entry.index] = <object>entry.previous
        else:
            (<dict>container).clear()
            (<dict>container).update(<object>entry.previous)


cdef inline int _scalar_changed(object old, object new) except -1:
    # _diff_value for two different objects, when that needs no Python code:
    # 1 changed, 0 equal; 2 when it takes _diff_value itself (maps, lists,
    # bools, other types), which may append to the effective changes.
    cdef type kind = type(new)
    if type(old) is not kind:
        return 1
    if kind is float:
        return PyFloat_AS_DOUBLE(old) != PyFloat_AS_DOUBLE(new)
    if kind is str:
        return not (<str>old == <str>new)
    if kind is int:
        return PyObject_RichCompareBool(old, new, Py_NE)
    return 2


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
    # The effective changes.  None while every change so far is effective
    # as given (the usual tick: each set moves something): then they are
    # changes[:done], copied in one slice at the end instead of appended
    # one by one.  Made as soon as a change is dropped or diffed.
    cdef list out = None
    cdef _UndoLog log
    # The ids of the maps and lists that `out` sets whole; made on first need.
    cdef set fresh = None
    # The parent container of the last change that walked, and its path.
    cdef object memo = None
    cdef str memo_path = None
    cdef Py_ssize_t prefix, memo_prefix = -1
    cdef object change, value, parent, old
    cdef PyObject* value_ptr
    cdef PyObject* found
    cdef str path, last
    cdef list segments
    cdef Py_ssize_t index, sent, done = 0
    cdef bint buried, escaped, hit
    cdef int keep
    _undo_init(&log)
    # One loop, inlined: this runs for every change of every room's tick.
    # Indexed, not iterated, so that `done` counts the changes behind us;
    # the size is read each time, as a list iterator does.
    try:
        while done < PyList_GET_SIZE(changes):
            change = (<list>changes)[done]
            path = _read_change(change, &value_ptr)
            value = <object>value_ptr if value_ptr is not NULL else None
            if not path:
                memo = None
                if out is None:
                    out = (<list>changes)[:done]
                sent = PyList_GET_SIZE(out)
                _commit_root(<dict>state, value_ptr is not NULL, value, out, &log)
                fresh = _note_fresh(out, sent, fresh)
                done += 1
                continue
            # Changes come in runs under one parent ("players.p1.x", then
            # "players.p1.y"): when this one's parent path is the one
            # before's, so is its container, and the walk is skipped.  The
            # change just before could only write inside that container,
            # never on the way to it (the state is a tree); every other
            # kind of change clears the memo.  Then, and for a path of one
            # segment, the segments come from the path itself without the
            # split cache's look-up, unless an escape needs decoding.
            prefix = _last_dot(path, &escaped)
            if fresh:  # `buried` needs the walk: rare
                memo = None
            if escaped:
                hit = False
            elif prefix < 0:
                parent, buried, last = state, False, path
                memo = None  # this change may replace any container
            else:
                hit = memo is not None and prefix == memo_prefix and _same_start(path, memo_path, prefix)
                if hit:
                    parent, buried, last = memo, False, path[prefix + 1:]
            if escaped or (prefix >= 0 and not hit):
                segments = _split(path)
                last = <str>segments[PyList_GET_SIZE(segments) - 1]
                if PyList_GET_SIZE(segments) == 1:
                    parent, buried = state, False
                    memo = None
                else:
                    parent = _walk(<dict>state, path, segments, fresh, &buried)
                    memo, memo_path, memo_prefix = parent, path, prefix
            # Where the value goes: a map key (index -1) or a list slot.
            if type(parent) is dict:
                index = -1
                found = PyDict_GetItemWithError(<dict>parent, last)
            elif type(parent) is list:
                if value_ptr is NULL:
                    raise PathError(f"path {path!r}: cannot delete a list item (set the whole list)")
                index = _list_index(<list>parent, last, path)
                found = PyList_GET_ITEM(parent, index)
            else:
                raise _not_container(parent, last, path)
            # `buried`: the change lands inside a value sent whole earlier in
            # this commit, which carries it already.  Apply it, send nothing.
            if value_ptr is NULL:  # a delete; of a missing key, it changes nothing
                keep = found is not NULL and not buried
                if found is not NULL:
                    _undo_push(&log, parent, <PyObject*>last, -1, found)
                    del (<dict>parent)[last]
            else:
                # A strong reference: the comparison may run Python code.
                old = <object>found if found is not NULL else None
                if buried:
                    keep = 0
                elif found is NULL:
                    keep = 1
                elif old is value:
                    keep = 0
                else:
                    keep = _scalar_changed(old, value)
                    if keep == 2:  # maps, lists, bools, other types: rare
                        memo = None  # Python code may run: trust no walk
                        if out is None:
                            out = (<list>changes)[:done]
                        if fresh is None:
                            fresh = set()
                        keep = _diff_set(old, value, path, out, fresh)
                if index < 0:
                    _undo_push(&log, parent, <PyObject*>last, -1, <PyObject*>old if found is not NULL else NULL)
                    (<dict>parent)[last] = value
                else:
                    _undo_push(&log, parent, NULL, index, <PyObject*>old)
                    (<list>parent)[index] = value
            if keep:
                if out is not None:
                    out.append(change)
                if type(value) is dict or type(value) is list:
                    fresh = _add_fresh(fresh, value)
            elif out is None:
                out = (<list>changes)[:done]
            done += 1
    except BaseException:
        _rollback(&log)
        raise
    finally:
        _undo_free(&log)
    if out is None:
        return (<list>changes)[:done]
    return out


cdef inline Py_ssize_t _last_dot(str path, bint* escaped) noexcept:
    # Where the parent path ends: the last ".", which is always a separator
    # (a "." in a key is escaped); -1 if none.  *escaped: a "~" after it.
    cdef int kind = PyUnicode_KIND(path)
    cdef void* data = PyUnicode_DATA(path)
    cdef Py_ssize_t at = PyUnicode_GET_LENGTH(path) - 1
    cdef Py_UCS4 char
    escaped[0] = False
    while at >= 0:
        char = PyUnicode_READ(kind, data, at)
        if char == 46:  # "."
            break
        if char == 126:  # "~"
            escaped[0] = True
        at -= 1
    return at


cdef inline bint _same_start(str path, str other, Py_ssize_t length) noexcept:
    # Whether the first `length` characters of both are the same (both are
    # longer).  Equal strs share a kind, so comparing the buffers is exact.
    cdef int kind = PyUnicode_KIND(path)
    return PyUnicode_KIND(other) == kind and memcmp(
        PyUnicode_DATA(path), PyUnicode_DATA(other), length * kind
    ) == 0


cdef int _diff_set(object old, object new, str path, list out, set fresh) except -1:
    # _diff_value for a set over a value that is not a plain scalar: 1 when
    # the set goes out as given, 0 when equal or diffed into `out`, whose
    # maps and lists sent whole then go into `fresh`.
    cdef Py_ssize_t sent = PyList_GET_SIZE(out)
    cdef int changed = _diff_value(old, new, NULL, None, -1, out, path)
    if PyList_GET_SIZE(out) != sent:
        _note_fresh(out, sent, fresh)
    return changed


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


cdef int _commit_root(dict state, bint is_set, object value, list out, _UndoLog* log) except -1:
    if not is_set or type(value) is not dict:
        raise PathError("path '': the whole state can only be set, to a map")
    if value is not state:
        _diff_dict(state, <dict>value, NULL, out)  # raises before mutating, if it raises
        previous = state.copy()
        _undo_push(log, state, NULL, -1, <PyObject*>previous)
        state.clear()
        state.update(<dict>value)
    return 0


# --- tick deadlines --------------------------------------------------------


cdef inline int _check_now(double now, double period) except -1:
    # Also true for NaN.  The bound keeps now / period, and so every tick
    # index, exactly representable in a double -- and in a long long.
    if not fabs(now) < period * _MAX_TICKS:
        raise ValueError("now must be a finite time within 2**52 ticks of 0")
    return 0


cdef class TickClock:
    """When a room's next tick is due, on a fixed grid of deadlines.

    Deadlines are `index * period` for an integer `index`, so they never
    drift and rooms sharing a clock tick together (the scheduler shifts a
    phase's times by its offset).  The caller feeds the
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
