"""What a script's room commands do: `room:broadcast`, `room:send`,
`room:kick`, `room:lock`/`unlock`, `room:setMetadata`, `room:log`.

The Lua side only queues them (no Python object ever reaches a script); the
room's logic carries them out here after each hook call, in order.
"""

from __future__ import annotations

import logging
from typing import Any

from gameserver.config import Config
from gameserver.engine import Room
from gameserver.errors import ScriptError

__all__ = ["CommandRunner", "SERVER_ID"]

SERVER_ID = "$server"  # the clientId of actions a script broadcasts or sends

log = logging.getLogger("gameserver.script")
# room:log's levels; any other word logs at info (a script cannot write
# CRITICAL lines, nor ones that vanish).
_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}


def _server_action(room: Room, action_type: str, data: Any) -> dict[str, Any]:
    return {
        "type": "action",
        "roomId": room.id,
        "clientId": SERVER_ID,
        "action": {"type": action_type, "data": data},
        "tick": room.tick,
    }


class CommandRunner:
    def __init__(self, config: Config) -> None:
        self._max_entries = config.max_metadata_entries
        self._max_key = config.max_id_length
        self._max_value = config.max_metadata_value_length
        self._max_log_lines = config.script_log_lines_per_second
        self._log_window = -1
        self._log_lines = 0
        self._log_dropped = 0

    def run(self, room: Room, commands: list[tuple[Any, ...]]) -> None:
        for op, a, b, c in commands:
            if op == "broadcast":
                room.sink.broadcast(room, _server_action(room, a, b))
            elif op == "send":
                room.sink.send(room, a, _server_action(room, b, c))
            elif op == "kick":
                room.kick(a, b)
            elif op == "lock":
                room.locked = bool(a)
            elif op == "meta":
                self._set_metadata(room, a, b)
            elif op == "log":
                self._log(room, a, b)

    def _set_metadata(self, room: Room, key: str, value: str | None) -> None:
        if value is None:
            room.metadata.pop(key, None)
            return
        if len(key) > self._max_key or len(value) > self._max_value:
            raise ScriptError(
                f"room:setMetadata: keys are at most {self._max_key} and values at most "
                f"{self._max_value} characters",
                script=room.script_name or "",
                hook="room:setMetadata",
            )
        if key not in room.metadata and len(room.metadata) >= self._max_entries:
            raise ScriptError(
                f"room:setMetadata: at most {self._max_entries} entries",
                script=room.script_name or "",
                hook="room:setMetadata",
            )
        room.metadata[key] = value

    def _log(self, room: Room, level: str, text: str) -> None:
        # A window of one second of the room's own ticks: deterministic, no clock.
        window = room.tick // max(1, room.tick_rate)
        if window != self._log_window:
            if self._log_dropped:
                log.warning(
                    "room %s/%s: %d script log lines dropped",
                    room.app_id,
                    room.id,
                    self._log_dropped,
                )
            self._log_window, self._log_lines, self._log_dropped = window, 0, 0
        if self._log_lines >= self._max_log_lines:
            self._log_dropped += 1
            return
        self._log_lines += 1
        log.log(
            _LEVELS.get(level.lower(), logging.INFO),
            "room %s/%s: %s",
            room.app_id,
            room.id,
            text[:2000],
        )
