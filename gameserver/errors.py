"""The exception tree. A peer never sees a traceback, only a `code`.

GameServerError                 base; `code` is what a client or operator sees
├── RemoteError                 the peer misbehaved; answered with an `error` message
│   ├── BadRequest              bad_request: frame or field does not decode/validate
│   ├── UnknownType             unknown_type: a message type we do not know
│   └── RoomError               room_not_found, room_full, room_exists,
│                               already_in_room, not_in_room, script_not_found,
│                               rate_limited
├── ScriptError                 script_error: a room's Lua script failed (syntax,
│                               runtime error, budget); the room keeps ticking
├── PathError                   a delta path that does not resolve in a state
└── ConfigError                 local misuse: bad flag, unreadable data dir
"""

from __future__ import annotations

__all__ = [
    "GameServerError",
    "RemoteError",
    "BadRequest",
    "UnknownType",
    "RoomError",
    "ScriptError",
    "PathError",
    "ConfigError",
]


class GameServerError(Exception):
    code = "internal_error"

    def __init__(self, message: str = "", *, code: str | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code

    @property
    def message(self) -> str:
        return str(self)


class RemoteError(GameServerError):
    """Something a client sent that we refuse; the connection stays up."""


class BadRequest(RemoteError):
    code = "bad_request"


class UnknownType(RemoteError):
    code = "unknown_type"


class RoomError(RemoteError):
    """A request that is well formed but not possible now (`code` says why)."""


class ScriptError(GameServerError):
    """A room script failed. `hook` and `line` locate it when known. `fatal`
    means the room cannot go on (its runtime ran out of memory: what the
    script keeps reachable stays used, and every allocation near the cap
    costs a full garbage collection)."""

    code = "script_error"

    def __init__(
        self,
        message: str,
        *,
        script: str = "",
        hook: str = "",
        line: int | None = None,
        fatal: bool = False,
    ) -> None:
        super().__init__(message)
        self.script = script
        self.hook = hook
        self.line = line
        self.fatal = fatal


class PathError(GameServerError):
    code = "bad_path"


class ConfigError(GameServerError):
    code = "config_error"
