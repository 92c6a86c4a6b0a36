"""The one place rooms are looked up: by app and room id.

Everything that finds a room goes through here, so that a multi-node
directory (rooms reachable from any node) can later replace this one without
touching the callers.
"""

from __future__ import annotations

from collections.abc import Iterator

from gameserver.engine.room import Room
from gameserver.errors import RoomError

__all__ = ["RoomDirectory"]


class RoomDirectory:
    def __init__(self) -> None:
        self._rooms: dict[tuple[str, str], Room] = {}
        self._per_app: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self._rooms)

    def __iter__(self) -> Iterator[Room]:
        return iter(list(self._rooms.values()))

    def add(self, room: Room) -> None:
        key = (room.app_id, room.id)
        if key in self._rooms:
            raise RoomError(f"room {room.id!r} already exists", code="room_exists")
        self._rooms[key] = room
        self._per_app[room.app_id] = self._per_app.get(room.app_id, 0) + 1

    def exists(self, app_id: str, room_id: str) -> bool:
        return (app_id, room_id) in self._rooms

    def get(self, app_id: str, room_id: str) -> Room:
        room = self._rooms.get((app_id, room_id))
        if room is None:
            raise RoomError(f"room {room_id!r} not found", code="room_not_found")
        return room

    def remove(self, room: Room) -> None:
        if self._rooms.pop((room.app_id, room.id), None) is not None:
            self._per_app[room.app_id] -= 1

    def count(self, app_id: str) -> int:
        return self._per_app.get(app_id, 0)

    def listing(self, app_id: str, category_id: str | None) -> list[Room]:
        return [
            room
            for (app, _), room in self._rooms.items()
            if app == app_id and (category_id is None or room.category_id == category_id)
        ]
