"""A Lua script as a room's logic: the engine's RoomLogic over LuaRoomScript.

Failures never reach the engine as exceptions: every hook error becomes a
`script_error` to the room's members and the room goes on ticking, with the
state as the failed hook left it. A script that does not even load leaves the
room running without hooks; each joiner hears why.
"""

from __future__ import annotations

from typing import Any

from gameserver.config import Config
from gameserver.engine import Change, Player, Room, ServiceStats
from gameserver.errors import ScriptError
from gameserver.scripting.commands import CommandRunner
from gameserver.scripting.lua_room import LuaRoomScript

__all__ = ["LuaLogic"]


class LuaLogic:
    def __init__(
        self,
        name: str,
        source: str,
        *,
        room_id: str,
        room_config: dict[str, Any],
        memory_limit: int,
        instruction_limit: int,
        tick_instruction_limit: int | None = None,
        commands: CommandRunner | None = None,
        stats: ServiceStats | None = None,
    ) -> None:
        self.name = name
        self.stats = stats
        self.commands = commands or CommandRunner(Config())
        self.room_id = room_id
        self.memory_limit = memory_limit
        self.instruction_limit = instruction_limit
        self.tick_instruction_limit = tick_instruction_limit
        self.room_config = room_config
        self.load_error: ScriptError | None = None
        # An onInit failure happens before anyone is in the room: told to the first joiner.
        self.init_error: ScriptError | None = None
        self.script: LuaRoomScript | None = None
        try:
            self.script = LuaRoomScript(
                f"{name}.lua",  # the chunk name errors show: "arena.lua:12: ..."
                source,
                room_id=room_id,
                memory_limit=memory_limit,
                instruction_limit=instruction_limit,
                tick_instruction_limit=tick_instruction_limit,
                stats=stats,
            )
        except ScriptError as exc:
            self.load_error = exc

    def on_init(self, room: Room) -> None:
        if self.script is None:
            if self.load_error is not None:
                room.script_failed(self.load_error)  # logged; nobody is in the room yet
            return
        try:
            self.script.init(self.room_config)
        except ScriptError as exc:
            self.init_error = exc
            room.script_failed(exc)
        self._after(room)

    def on_join_attempt(self, room: Room, player: Player) -> str | None:
        if self.script is None:
            return None
        try:
            admitted, reason = self.script.join_attempt(player.to_wire())
        except ScriptError as exc:
            room.script_failed(exc)
            return "the room's script failed to decide"  # closed, not open, on failure
        finally:
            self._after(room)
        return None if admitted else (reason or "refused by the room")

    def on_chat(self, room: Room, client_id: str, message: str) -> str | None:
        if self.script is None:
            return message
        try:
            verdict = self.script.chat(client_id, message)
        except ScriptError as exc:
            room.script_failed(exc)
            return None  # a failing filter drops the message rather than let it through
        finally:
            self._after(room)
        if verdict is False:
            return None
        return verdict if isinstance(verdict, str) else message

    def on_join(self, room: Room, player: Player) -> None:
        if self.script is None:
            if self.load_error is not None:  # each joiner hears why the room has no logic
                room.script_failed(self.load_error, only=player.client_id)
            return
        if self.init_error is not None:
            room.script_failed(self.init_error, only=player.client_id)
            self.init_error = None
        try:
            self.script.player_join(player.to_wire())
        except ScriptError as exc:
            room.script_failed(exc)
        self._after(room)

    def on_leave(self, room: Room, player: Player, reason: str) -> None:
        if self.script is not None:
            try:
                self.script.player_leave(player.to_wire(), reason)
            except ScriptError as exc:
                room.script_failed(exc)
            self._after(room)

    def on_disconnect(self, room: Room, player: Player) -> None:
        self._presence(room, "onPlayerDisconnect", player)

    def on_reconnect(self, room: Room, player: Player) -> None:
        self._presence(room, "onPlayerReconnect", player)

    def _presence(self, room: Room, hook: str, player: Player) -> None:
        if self.script is not None:
            try:
                self.script.presence(hook, player.client_id)
            except ScriptError as exc:
                room.script_failed(exc)
            self._after(room)

    def on_tick(
        self, room: Room, dt: float, tick: int, queued: list[tuple[str, dict[str, Any]]]
    ) -> list[Change]:
        script = self.script
        if script is None:  # a room whose script did not load relays
            for client_id, action in queued:
                if client_id in room.members:
                    room.relay(client_id, action)
            return []
        while True:
            # Usually one Lua call; more after each action that fails or
            # issues room commands, which run before anything after it.
            relays, error, commands, changes = script.step(queued, dt, tick)
            # A stopped step's last action relays after its commands, as
            # with one call per action; the tick's outcome comes after all.
            first = relays if changes is not None else relays[:-1]
            if "1" in first:
                for (client_id, action), relay in zip(queued, first, strict=False):
                    if relay == "1":
                        room.relay(client_id, action)
            if error is not None:
                room.script_failed(error)
            if commands:
                self._after(room)
            if changes is not None:
                return changes
            done = len(relays)
            if relays[-1] == "1":
                room.relay(*queued[done - 1])
            # A kick among the commands may have removed a sender.
            queued = [item for item in queued[done:] if item[0] in room.members]

    def reload(self, room: Room, source: str) -> None:
        """Swap in a new version of the script between two ticks, keeping
        room.state. Raises ScriptError (and keeps the old version) when the
        new one does not load. Call `room.settle()` first, so that the state
        handed over is complete."""
        fresh = LuaRoomScript(
            f"{self.name}.lua",
            source,
            room_id=self.room_id,
            memory_limit=self.memory_limit,
            instruction_limit=self.instruction_limit,
            tick_instruction_limit=self.tick_instruction_limit,
            stats=self.stats,
        )
        try:
            fresh.restore(room.state, self.room_config, room.tick)
        except ScriptError:
            fresh.close()
            raise
        old, self.script = self.script, fresh
        self.load_error = None
        if old is not None:
            old.close()

    def take_changes(self, room: Room) -> list[Change]:
        if self.script is None:
            return []
        try:
            return self.script.take_changes()
        except ScriptError as exc:
            room.script_failed(exc)
            return []

    def on_dispose(self, room: Room) -> None:
        if self.script is not None:
            try:
                self.script.dispose()
            except ScriptError as exc:
                room.script_failed(exc)
            self._after(room)
            self.script.close()
            self.script = None

    def _after(self, room: Room) -> None:
        """Carry out the room commands the last hook call queued."""
        if self.script is None:
            return
        try:
            self.commands.run(room, self.script.take_commands())
        except ScriptError as exc:
            room.script_failed(exc)
