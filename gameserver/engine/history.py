"""The last few seconds of a room's deltas, for players who resume.

Kept compact because every ticking room has one: the encoded deltas sit end
to end in one bytearray, with their end offsets and ticks in typed arrays,
instead of a Python object (or three) per delta. Versions are consecutive, so
only the first one is stored.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left

__all__ = ["DeltaHistory"]


class DeltaHistory:
    __slots__ = ("_data", "_ends", "_ticks", "_firsts", "_start", "first_version")

    def __init__(self) -> None:
        self._data = bytearray()
        self._ends = array("Q")  # end offset of each delta in _data
        self._ticks = array("q")
        self._firsts = array("q")  # each delta's first new path number (engine/paths.py)
        self._start = 0  # index of the oldest delta still kept
        self.first_version = 0  # fromVersion of the oldest delta kept

    def __len__(self) -> int:
        return len(self._ends) - self._start

    def append(self, from_version: int, tick: int, data: bytes, first_new: int = 0) -> None:
        if self._start == len(self._ends):  # empty
            self.first_version = from_version
        self._data += data
        self._ends.append(len(self._data))
        self._ticks.append(tick)
        self._firsts.append(first_new)

    def forget_before(self, tick: int, keep_at_most: int) -> None:
        """Drop the deltas of ticks before `tick`, and any beyond the newest `keep_at_most`."""
        end = len(self._ends)
        # Ticks never decrease along the history: a binary search, in C.
        start = max(bisect_left(self._ticks, tick, self._start, end), end - keep_at_most)
        if start <= self._start:
            return
        self.first_version += start - self._start
        self._start = start
        if start > 64 and start * 2 > end:  # compact now and then, not at every tick
            cut = self._ends[start - 1]
            del self._data[:cut]
            self._ends = array("Q", (e - cut for e in self._ends[start:]))
            del self._ticks[:start]
            del self._firsts[:start]
            self._start = 0

    def since(self, version: int) -> list[tuple[bytes, int]] | None:
        """The deltas from fromVersion `version` on, oldest first, each with
        its first new path number; None when `version` is older than what is
        kept (or not a kept version)."""
        skip = version - self.first_version
        if not len(self) or not 0 <= skip < len(self):
            return None
        first = self._start + skip
        begin = self._ends[first - 1] if first else 0
        out = []
        data = memoryview(self._data)
        for end, first_new in zip(self._ends[first:], self._firsts[first:], strict=True):
            out.append((bytes(data[begin:end]), first_new))
            begin = end
        return out
