"""Reading the compact encoding back into plain messages (clients, tests).

The server side of the encoding is `CompactCodec` (codec.py). A reader keeps
the path table of the room its connection is in: a snapshot (`joined`,
`state`) replaces it, a delta may extend it or start it over.
"""

from __future__ import annotations

from typing import Any

__all__ = ["CompactReader"]


class CompactReader:
    def __init__(self) -> None:
        self.paths: list[str] = []
        self.room_id: str | None = None

    def messages(self, frame: Any) -> list[dict[str, Any]]:
        """One decoded frame (always an array) → its messages, deltas as plain
        `delta` messages (the same shape as the msgpack encoding's)."""
        out = []
        for item in frame:
            if type(item) is list:
                out.append(self.delta(item))
                continue
            if item.get("type") in ("joined", "state") and "paths" in item:
                self.paths = list(item.pop("paths"))
                self.room_id = item.get("roomId")
            out.append(item)
        return out

    def delta(self, item: list[Any]) -> dict[str, Any]:
        from_version, tick = item[0], item[1]
        paths = self.paths
        changes = []
        for change in item[2:]:
            if change is None:  # the room started a new path table
                paths.clear()
                continue
            ref = change[0] if type(change) is list else change
            if type(ref) is str:
                paths.append(ref)
                path = ref
            else:
                path = paths[ref]
            if type(change) is list:
                changes.append({"path": path, "operation": "set", "value": change[1]})
            else:
                changes.append({"path": path, "operation": "delete"})
        return {
            "type": "delta",
            "roomId": self.room_id,
            "delta": {
                "fromVersion": from_version,
                "toVersion": from_version + 1,
                "tick": tick,
                "changes": changes,
            },
        }
