"""The room-handler lifecycle: what a room asks of its game logic.

One interface, implemented per runtime (Lua scripts in gameserver.scripting,
the relay below for rooms without a script). The room calls, in this order:
`on_init` once; then between ticks `on_join` / `on_leave` (and
`on_disconnect` / `on_reconnect` while a dropped player's seat is held); at each tick
`on_tick` with the queued actions in arrival order, which applies them, ticks,
and returns the state changes made since the previous `on_tick` (by any hook);
`on_dispose` once at the end. `take_changes` returns the changes made since
the last `on_tick` or `take_changes` without ticking: the room calls it after
a join, so the joiner's snapshot already shows what joining changed. Logic that fails reports through
`room.script_failed(error)`; it never raises into the room.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from gameserver.engine.room import Player, Room

__all__ = ["RoomLogic", "RelayLogic", "Change"]

Change = dict[str, Any]  # {"path", "operation": "set" | "delete", "value"?}


class RoomLogic(Protocol):
    def on_init(self, room: Room) -> None: ...
    def on_join_attempt(self, room: Room, player: Player) -> str | None:
        """None admits the player; a string refuses it, with that reason."""
        ...

    def on_chat(self, room: Room, client_id: str, message: str) -> str | None:
        """The message to send to every member (maybe changed), or None to drop it."""
        ...

    def on_join(self, room: Room, player: Player) -> None: ...
    def on_leave(self, room: Room, player: Player, reason: str) -> None: ...
    def on_disconnect(self, room: Room, player: Player) -> None: ...
    def on_reconnect(self, room: Room, player: Player) -> None: ...
    def on_tick(
        self, room: Room, dt: float, tick: int, queued: list[tuple[str, dict[str, Any]]]
    ) -> list[Change]:
        """Apply each queued (client_id, action) in order, skipping a client
        that is no longer a member by then, and `room.relay` the ones to send
        to every member as `action` events; then tick. Returns the state
        changes since the previous `on_tick`. One method, so that a runtime
        can do a whole tick in one crossing."""
        ...

    def take_changes(self, room: Room) -> list[Change]: ...
    def on_dispose(self, room: Room) -> None: ...


class RelayLogic:
    """A room without a script: relays every action and keeps its state as it is."""

    def on_init(self, room: Room) -> None:
        pass

    def on_join_attempt(self, room: Room, player: Player) -> str | None:
        return None

    def on_chat(self, room: Room, client_id: str, message: str) -> str | None:
        return message

    def on_join(self, room: Room, player: Player) -> None:
        pass

    def on_leave(self, room: Room, player: Player, reason: str) -> None:
        pass

    def on_disconnect(self, room: Room, player: Player) -> None:
        pass

    def on_reconnect(self, room: Room, player: Player) -> None:
        pass

    def on_tick(
        self, room: Room, dt: float, tick: int, queued: list[tuple[str, dict[str, Any]]]
    ) -> list[Change]:
        for client_id, action in queued:
            if client_id in room.members:
                room.relay(client_id, action)
        return []

    def take_changes(self, room: Room) -> list[Change]:
        return []

    def on_dispose(self, room: Room) -> None:
        pass
