"""Path interning: each room numbers the paths its deltas change.

A compact encoding sends a path's text once and its number afterwards. The
numbering belongs to the room's version chain, not to a connection: it is a
function of the version, so one encoding of a delta is right for every member
(the same bytes to all), a joiner gets the table with its snapshot, and a
resuming player replays the missed deltas, definitions included.

The table grows with every new path a delta carries; when it holds
`max_paths` entries the next delta starts a new one (it is flagged `reset`
and numbers its paths from 0), so a long-lived room stays bounded. A new
table is a new `ids` dict: the old one stays as it was for the deltas that
used it, which a resuming player may still be sent.
"""

from __future__ import annotations

from typing import Any

__all__ = ["PathTable", "DeltaMessage", "Snapshot"]


class DeltaMessage(dict[str, Any]):
    """A `delta` message, plus what a compact encoder needs: the room's path
    numbers, and the number of the first path this delta defines (-1: the
    delta starts a new table). Plain encoders see only the dict. `packed`
    is its plain msgpack encoding when the room made one anyway (for the
    resume history), so that it is not made twice; else None."""

    __slots__ = ("ids", "first_new", "packed")

    ids: dict[str, int]
    first_new: int
    packed: bytes | None


class Snapshot(dict[str, Any]):
    """A GameState, plus the room's path table at its version (`paths[id]`)."""

    __slots__ = ("paths",)

    paths: list[str]


class PathTable:
    __slots__ = ("ids", "names", "max_paths")

    def __init__(self, max_paths: int) -> None:
        self.ids: dict[str, int] = {}
        self.names: list[str] = []
        self.max_paths = max_paths

    def intern(self, changes: list[dict[str, Any]]) -> int:
        """Number the new paths of one delta's changes, in order. Returns the
        first number given (-1 when the table started over for this delta:
        `ids` is a new dict then, so read it after this call)."""
        first = len(self.names)
        if first >= self.max_paths:
            self.ids, self.names = {}, []
            first = -1
        ids, names = self.ids, self.names
        for change in changes:
            path = change["path"]
            if path not in ids:
                ids[path] = len(names)
                names.append(path)
        return first
