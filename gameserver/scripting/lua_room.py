"""`LuaRoomScript`: the room-handler lifecycle, implemented by a Lua script.

The engine calls `init` once, then `player_join` / `player_leave` as they
happen, and at each tick `step` with the queued actions, which runs them and
then onTick. Each call is exactly one Lua call. Hooks other than those of
`step` raise `ScriptError` when the script fails; `step` returns its error
instead, so the room keeps ticking. Changes a script makes to `room.state`
are never lost to a failure: a ticking `step` returns all of them, in wire
form, since the previous tick.

Python values reach Lua as plain tables: `_flatten` turns a JSON value into a
shape string and its scalars, and the prelude rebuilds the tables in Lua. That
costs about what `LuaRuntime.table_from(..., recursive=True)` does (about 2 us
for an action), and unlike it marks JSON arrays as `list()`s, so an empty
array a script stores in room.state stays an array.

Changes come back from Lua as `(path, value)` pairs for scalar sets, and one
JSON array for deletes and table-valued sets (see `state.lua`): formatting
numbers in Lua is what made an all-JSON batch slow.
"""

from __future__ import annotations

import math
from time import perf_counter
from typing import Any, NoReturn

import lupa.lua54 as lupa
import msgspec
from lupa.lua54 import LuaError, LuaMemoryError

from gameserver.engine.stats import ServiceStats
from gameserver.errors import ScriptError
from gameserver.scripting.sandbox import new_seed, open_runtime

__all__ = ["LuaRoomScript"]

Change = dict[str, Any]

_decode_json = msgspec.json.Decoder().decode
_LUA_INT_MIN, _LUA_INT_MAX = -(2**63), 2**63 - 1


def _flatten_into(value: object, shape: list[str], scalars: list[object]) -> None:
    if isinstance(value, dict):
        shape.append("{")
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"map keys passed to Lua must be str, not {type(key).__name__}")
            scalars.append(key)
            _flatten_into(item, shape, scalars)
        shape.append("}")
    elif isinstance(value, list | tuple):
        shape.append("[")
        for item in value:
            _flatten_into(item, shape, scalars)
        shape.append("]")
    elif value is None or isinstance(value, str | float | bool):
        shape.append("v")
        scalars.append(value)
    elif isinstance(value, int):
        shape.append("v")
        # Lua integers are 64-bit; a JSON integer beyond that arrives as a float.
        scalars.append(value if _LUA_INT_MIN <= value <= _LUA_INT_MAX else float(value))
    else:
        # Anything else would reach the script as a Python object.
        raise TypeError(f"cannot pass a {type(value).__name__} to Lua")


_PLAIN = frozenset((str, float, bool, type(None)))  # scalars that reach Lua as they are
# The shape of a flat map of n scalars (most actions' data: {x = .., y = ..}).
_FLAT_SHAPES = ["{" + "v" * n + "}" for n in range(9)]


def _flatten(value: object) -> list[object]:
    """`[shape, *scalars]` for a JSON value: the arguments the prelude rebuilds it from."""
    if type(value) is dict and len(value) < len(_FLAT_SHAPES):
        # A flat map of plain scalars and 64-bit ints: one loop, no recursion.
        args: list[object] = [_FLAT_SHAPES[len(value)]]
        for key, item in value.items():
            kind = type(item)
            if type(key) is not str or not (
                kind in _PLAIN or kind is int and _LUA_INT_MIN <= item <= _LUA_INT_MAX  # type: ignore[operator]
            ):  # a nested value, a big int, a bad key: the general path says what to do
                break
            args += (key, item)
        else:
            return args
    return _flatten_any(value)


def _flatten_any(value: object) -> list[object]:
    """`_flatten` for any value, recursively."""
    shape: list[str] = []
    args: list[object] = [None]
    _flatten_into(value, shape, args)
    args[0] = "".join(shape)
    return args


_MAX_DEPTH = 32


def _from_lua(value: Any, depth: int) -> Any:
    """A plain Lua value (from a room command) as a JSON-shaped Python value:
    a table with keys 1..n is a list, any other table a map with string keys."""
    if lupa.lua_type(value) != "table":
        if isinstance(value, float) and not math.isfinite(value):
            return None
        if value is None or isinstance(value, bool | int | float | str):
            return value
        raise ValueError("only nil, booleans, numbers, strings and tables can be sent")
    if depth >= _MAX_DEPTH:
        raise ValueError("tables nested too deep")
    items = list(value.items())
    if items and all(type(k) is int for k, _ in items):
        keys = sorted(k for k, _ in items)
        if keys == list(range(1, len(keys) + 1)):
            return [_from_lua(value[k], depth + 1) for k in keys]
    return {str(k): _from_lua(v, depth + 1) for k, v in items}


def _out_of_memory(message: object) -> bool:
    # The driver's wording for a script that ran out of memory (prelude.lua).
    return isinstance(message, str) and message.endswith(" memory limit exceeded")


def _closed(*_: object) -> NoReturn:
    raise RuntimeError("LuaRoomScript is closed")


class LuaRoomScript:
    """One room's script in its own sandboxed Lua 5.4 runtime.

    `name` is the chunk name errors show (`arena.lua:12: ...`). `seed` seeds
    the script's `math.random` (None: a fresh one); `self.seed` keeps it, so a
    replay can pass it again. A syntax error, or an error or budget overrun in
    the script's top-level code, raises `ScriptError(hook="load")`. Call
    `close()` when the room goes.
    """

    def __init__(
        self,
        name: str,
        source: str,
        *,
        room_id: str,
        memory_limit: int,
        instruction_limit: int,
        seed: int | None = None,
        tick_instruction_limit: int | None = None,
        stats: ServiceStats | None = None,
    ) -> None:
        self.name = name
        # Where the time spent in Lua is added up (the server's counters, for
        # /metrics); a private one when nobody reads it.
        self._stats = stats if stats is not None else ServiceStats()
        self.room_id = room_id
        # The seed of the room's math.random (0 <= seed < 2**64): a replay that
        # passes it again gets the same random numbers.
        self.seed = new_seed() if seed is None else seed
        try:
            self._runtime, driver = open_runtime(
                room_id=room_id,
                memory_limit=memory_limit,
                instruction_limit=instruction_limit,
                seed=self.seed,
                tick_instruction_limit=tick_instruction_limit,
            )
        except LuaMemoryError:
            raise ScriptError(
                f"{name}: memory limit too small for the runtime", script=name, hook="load"
            ) from None
        self._lua_init = driver.init
        self._lua_join = driver.join
        self._lua_leave = driver.leave
        self._lua_step = driver.step
        self._lua_collect = driver.collect
        self._lua_restore = driver.restore
        self._lua_join_attempt = driver.join_attempt
        self._lua_chat = driver.chat
        self._lua_dispose = driver.dispose
        self._lua_presence = driver.presence
        self._lua_drain = driver.drain
        self._pending = driver.pending
        self._progress = driver.progress
        self._lua_configure = driver.configure
        self._lua_read = driver.read
        self._resync = False
        self._call("load", driver.load, name, source)

    def init(self, config: dict[str, Any]) -> None:
        """Calls `onInit(room, config)`; `room.config` is that same table."""
        self._call("onInit", self._lua_init, *_flatten(config))

    def player_join(self, player: dict[str, Any]) -> None:
        """Calls `onPlayerJoin(room, player)`."""
        self._call("onPlayerJoin", self._lua_join, *_flatten(player))

    def join_attempt(self, player: dict[str, Any]) -> tuple[bool, str | None]:
        """Calls `onJoinAttempt(room, player)`: (admitted, reason the script gave)."""
        try:
            ok, admitted, extra = self._lua_join_attempt(*_flatten(player))
        except LuaError as e:
            raise self._runtime_failure("onJoinAttempt", e) from None
        if not ok:
            raise ScriptError(admitted, script=self.name, hook="onJoinAttempt", line=extra)
        return bool(admitted), extra

    def chat(self, client_id: str, message: str) -> bool | str | None:
        """Calls `onChat(room, clientId, message)`: False drops the message, a
        string replaces it, None keeps it."""
        verdict: bool | str | None = self._call("onChat", self._lua_chat, client_id, message)
        return verdict

    def take_commands(self) -> list[tuple[Any, ...]]:
        """The room commands (`room:broadcast`, `room:kick`, ...) the script
        issued since the last take, as (op, args...) with Python values.
        Costs one table read when there are none."""
        if not self._pending["n"]:
            return []
        commands = self._lua_drain()
        out = []
        for i in range(1, len(commands) + 1):
            entry = commands[i]
            try:
                out.append(tuple(_from_lua(entry[k], 0) for k in range(1, 5)))
            except (ValueError, UnicodeDecodeError) as exc:
                raise ScriptError(
                    f"{self.name}: room.{entry[1]}: {exc}", script=self.name, hook="room"
                ) from None
        return out

    def dispose(self) -> None:
        """Calls `onDispose(room)`; the caller then closes the script."""
        self._call("onDispose", self._lua_dispose)

    def player_leave(self, player: dict[str, Any], reason: str) -> None:
        """Calls `onPlayerLeave(room, player, reason)`."""
        self._call("onPlayerLeave", self._lua_leave, reason, *_flatten(player))

    def presence(self, hook: str, client_id: str) -> None:
        """Calls `onPlayerDisconnect` or `onPlayerReconnect` (`hook`) with
        (room, player), the player as in `room.players`."""
        self._call(hook, self._lua_presence, hook, client_id)

    def action(self, client_id: str, action: dict[str, Any], tick: int = -1) -> bool:
        """Calls `onAction(room, clientId, action)`; True means relay it to every member.

        The script sees `action.type` and `action.data` (other keys are not
        passed). Without an `onAction` hook every action is relayed. `tick`,
        if given, is the tick applying the action: `room.tick` during the hook.
        """
        relays, error = self.actions([(client_id, action)], tick)
        if error is not None:
            raise error
        return relays[0]

    def actions(
        self, queued: list[tuple[str, dict[str, Any]]], tick: int = -1
    ) -> tuple[list[bool], ScriptError | None]:
        """`action` for several (client_id, action) in order, in one Lua call
        (`step` without onTick): the relay verdicts of the actions that ran
        and the last one's error, if it failed."""
        relays, error, _, _ = self.step(queued, None, tick)
        return [relay == "1" for relay in relays], error

    def tick(self, dt: float, tick: int) -> tuple[list[Change], ScriptError | None]:
        """Runs `onTick` and returns every state change since the previous tick.

        The changes include those of the other hooks, and those a failing hook
        made before it failed; the error is onTick's, if it failed.
        """
        _, error, _, changes = self.step([], dt, tick)
        assert changes is not None
        return changes, error

    def step(
        self, queued: list[tuple[str, dict[str, Any]]], dt: float | None, tick: int
    ) -> tuple[str, ScriptError | None, int, list[Change] | None]:
        """One room-tick of script work in one Lua call: `onAction` for each
        queued (client_id, action) in order, then, unless `dt` is None,
        `onTick`. It stops after an action that fails or queues room commands,
        which the caller must carry out before anything else runs; call again
        with the rest. Returns `(relays, error, commands, changes)`:
        - relays: "1" (relay it to every member) or "0" per action that ran;
        - error: the last action's failure, or onTick's;
        - commands: how many room commands wait for `take_commands`;
        - changes: None if onTick did not run, else every state change since
          the previous tick (those of failed hooks included).
        The driver itself failing (out of memory) ends the step where it
        was (`_failed_step`)."""
        args: list[object] = [tick, dt, self._resync, len(queued)]
        for client_id, action in queued:
            action_type = action["type"]
            if not isinstance(action_type, str):
                raise TypeError(f"action type must be str, not {type(action_type).__name__}")
            args += (client_id, action_type)
            args += _flatten(action.get("data"))
        started = perf_counter()
        try:
            result = self._lua_step(*args)
        except LuaError as e:
            return self._failed_step(len(queued), e)
        finally:
            self._stats.script_seconds += perf_counter() - started
        ok, relays, commands, ticked = result[0], result[3], result[4], result[5]
        changes = None
        if ticked:
            self._resync = False
            changes = self._read_changes(result, 6)
        if ok:
            return relays, None, commands, changes
        message, line = result[1], result[2]
        error = ScriptError(
            message,
            script=self.name,
            hook="onTick" if ticked else "onAction",
            line=line,
            fatal=_out_of_memory(message),
        )
        return relays, error, commands, changes

    def restore(self, state: dict[str, Any], config: dict[str, Any], tick: int) -> None:
        """Take over a running room (live reload): `room.state`, `room.config` and
        `room.tick` become the given ones without running any hook or recording
        a change. `state` must be what clients already have."""
        try:
            self._lua_configure(*_flatten(config))
            self._lua_restore(tick, *_flatten(state))
        except LuaError as e:
            raise self._runtime_failure("reload", e) from None

    def _failed_step(
        self, count: int, e: LuaError
    ) -> tuple[str, ScriptError, int, list[Change] | None]:
        """`step`'s result when the driver itself failed mid-step (out of
        memory, in practice). What ran before still counts: the relays of
        the actions done and the room commands they queued. Failing among the
        actions, all of them are used up (the rest do not relay) and onTick
        is still to run; failing in onTick or in collecting the changes, the
        changes may be lost, so the next tick resends the whole state."""
        try:
            progress = self._progress
            phase, done = progress["phase"], progress["done"]
            relays = "".join(progress["relays"][i] for i in range(1, done + 1))
            commands = self._pending["n"]
        except LuaError:  # not even that can be read: nothing ran
            phase, done, relays, commands = "onAction", 0, "", 0
        error = self._runtime_failure(phase, e)
        if phase == "onTick":
            self._resync = True
            return relays, error, commands, []
        return relays + "0" * (count - done), error, commands, None

    def take_changes(self) -> list[Change]:
        """Every state change since the previous `tick` or `take_changes`, without
        running onTick (so that a joiner's snapshot includes what its join did)."""
        started = perf_counter()
        try:
            result = self._lua_collect(self._resync)
        except LuaError as e:
            self._resync = True  # the changes may be lost with this batch
            raise self._runtime_failure("collect", e) from None
        finally:
            self._stats.script_seconds += perf_counter() - started
        self._resync = False
        return self._read_changes(result, 3)  # after ok, message, line

    @staticmethod
    def _read_changes(result: Any, at: int) -> list[Change]:
        """The changes in a driver result from index `at`: a JSON array (or
        None), then path, value, path, value, ... for scalar sets."""
        other = result[at]
        changes: list[Change] = [] if other is None else _decode_json(other)
        for i in range(at + 1, len(result), 2):
            changes.append({"path": result[i], "operation": "set", "value": result[i + 1]})
        return changes

    def read_state(self) -> dict[str, Any]:
        """The whole of room.state as Python values (the slow path, for snapshots)."""
        try:
            state: dict[str, Any] = _decode_json(self._lua_read())
        except LuaError as e:
            raise self._runtime_failure("read_state", e) from None
        return state

    def close(self) -> None:
        """Frees the runtime; any later call raises RuntimeError."""
        self._lua_init = self._lua_join = self._lua_leave = _closed
        self._lua_step = self._lua_read = self._lua_collect = _closed
        self._lua_restore = self._lua_configure = _closed
        self._lua_join_attempt = self._lua_chat = self._lua_dispose = self._lua_drain = _closed
        self._runtime = None

    def _call(self, hook: str, fn: Any, *args: object) -> Any:
        started = perf_counter()  # measures only: two clock reads per hook call
        try:
            ok, value, line = fn(*args)
        except LuaError as e:
            raise self._runtime_failure(hook, e) from None
        finally:
            self._stats.script_seconds += perf_counter() - started
        if not ok:
            raise ScriptError(
                value, script=self.name, hook=hook, line=line, fatal=_out_of_memory(value)
            )
        return value

    def _runtime_failure(self, hook: str, e: LuaError) -> ScriptError:
        # The driver catches every script failure, so this is the driver itself
        # failing, which in practice means it ran out of memory.
        if isinstance(e, LuaMemoryError):
            return ScriptError(
                f"{self.name}: memory limit exceeded", script=self.name, hook=hook, fatal=True
            )
        return ScriptError(f"{self.name}: {e}", script=self.name, hook=hook)
