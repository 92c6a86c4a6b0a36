"""Reading the compact encoding back into plain messages (clients, tests).

The server side of the encoding is `CompactCodec` (codec.py). A reader keeps
the path table and the version of the room its connection is in: a snapshot
(`joined`, `state`) replaces them, `resumed` gives the version, a delta may
extend the table or start it over.
"""

from __future__ import annotations

from typing import Any

__all__ = ["CompactReader"]


class CompactReader:
    def __init__(self) -> None:
        self.paths: list[str] = []
        self.room_id: str | None = None
        self.version = 0  # the version the next delta starts from

    def messages(self, frame: Any) -> list[dict[str, Any]]:
        """One decoded frame → its messages, deltas as plain `delta` messages
        (the same shape as the msgpack encoding's)."""
        if type(frame) is not list or (frame and type(frame[0]) is int):
            frame = [frame]  # one message alone: a map, or a delta
        out = []
        for item in frame:
            if type(item) is list:
                out.append(self.delta(item))
                continue
            kind = item.get("type")
            if kind in ("joined", "state") and "paths" in item:
                self.paths = list(item.pop("paths"))
                self.room_id = item.get("roomId")
                self.version = item["state"]["version"]
            elif kind == "resumed":
                self.version = item["fromVersion"]
            out.append(item)
        return out

    def delta(self, item: list[Any]) -> dict[str, Any]:
        # The low 7 bits of fromVersion: the next version that has them. In an
        # unbroken chain that is self.version; otherwise the delta shows a gap
        # and the client's own chain check (fromVersion) takes over.
        from_version = self.version + ((item[0] - self.version) & 127)
        self.version = from_version + 1
        paths = self.paths
        changes: list[dict[str, Any]] = []
        i, end = 2, len(item)
        while i < end:
            ref = item[i]
            i += 1
            if ref is None:  # the room started a new path table
                paths.clear()
                continue
            deleted = type(ref) is list
            if deleted:
                ref = ref[0]
            if type(ref) is str:
                paths.append(ref)
                path = ref
            else:
                path = paths[ref]
            if deleted:
                changes.append({"path": path, "operation": "delete"})
            else:
                changes.append({"path": path, "operation": "set", "value": item[i]})
                i += 1
        return {
            "type": "delta",
            "roomId": self.room_id,
            "delta": {
                "fromVersion": from_version,
                "toVersion": from_version + 1,
                "tick": from_version + item[1],
                "changes": changes,
            },
        }
