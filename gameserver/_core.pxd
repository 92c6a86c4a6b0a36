# The contract of gameserver._core, the Cython hot path: read this first.
#
# Mechanism only -- no policy, no logging, no I/O, no clock of its own.  The
# pure-Python twin, gameserver/_core_py.py, is the executable specification;
# gameserver/_accel.py picks which of the two runs.  The module-level
# functions (escape_key, unescape_key, join_path, split_path, diff, apply,
# commit) are plain `def`s: they are called from Python, per tick or per
# message, and validate their arguments the way the twin does.


cdef class TickClock:
    # Deadlines sit on the grid index * period shared by every room of this
    # rate; deadline is always recomputed from the integer index, never
    # accumulated, so it cannot drift.
    cdef readonly int rate
    cdef readonly double period
    cdef readonly long long index
    cdef readonly double deadline
    cdef readonly long long skipped
    cdef readonly double last_lateness

    # -1: not due yet.  >= 0: run one tick now; that many periods were skipped.
    # -2 never returns normally, so it marks a raised exception.
    cpdef long long due(self, double now) except -2
