"""A room: its members, its authoritative state, and one tick.

Invariants:
- `state` is what every member has seen: the `joined`/`state` snapshot carries
  `version`, and each delta sent moves `version` by exactly one. A tick that
  changes nothing sends nothing.
- Actions wait in `_actions` (bounded: `max_actions_per_tick`; over it the
  sender gets `rate_limited` and the action is dropped) and are applied at the
  start of the next tick, in arrival order.
- Members hear about the room through the `RoomSink` only; the room never
  encodes or sends anything itself.
- The deltas of the last `history_ticks` ticks stay in `history` (frozen as
  msgpack bytes: the state shares objects with the changes and moves on), so
  a player who lost its connection can resume from its last version.
- A member whose connection dropped stays a member (its seat is held) with
  `conn` None: it gets nothing until it comes back or its owner makes it leave.
- A room whose logic fails in `max_failing_ticks` ticks in a row asks to be
  closed (reason `script_error`) through `on_doomed`; whoever owns the room
  disposes of it after the tick.

Times: `now_ms` arguments are wall-clock milliseconds since the epoch (what
clients see); tick arithmetic lives in the scheduler.
"""

from __future__ import annotations

import logging
from bisect import bisect_right
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import msgspec

from gameserver import _accel
from gameserver.engine.history import DeltaHistory
from gameserver.engine.logic import RoomLogic
from gameserver.engine.paths import DeltaMessage, PathTable, Snapshot
from gameserver.engine.stats import ServiceStats
from gameserver.errors import GameServerError, RoomError, ScriptError

__all__ = ["Player", "Room", "RoomSink"]

log = logging.getLogger("gameserver.room")

MAX_LOGGED_ERRORS = 32  # distinct script errors a room logs; the rest only count


@dataclass(slots=True)
class Player:
    client_id: str
    joined_at: int  # ms since epoch
    metadata: dict[str, str] = field(default_factory=dict)
    # The I/O side's handle on this player's connection; the engine never looks inside.
    conn: Any = field(default=None, repr=False, compare=False)

    def to_wire(self) -> dict[str, Any]:
        return {"clientId": self.client_id, "joinedAt": self.joined_at, "metadata": self.metadata}


class RoomSink(Protocol):
    """Where a room's messages go. The I/O side encodes each message once per
    encoding and queues the same bytes for every recipient."""

    def broadcast(
        self, room: Room, message: dict[str, Any], exclude: str | None = None
    ) -> None: ...
    def send(self, room: Room, client_id: str, message: dict[str, Any]) -> None: ...


class Room:
    def __init__(
        self,
        *,
        room_id: str,
        app_id: str,
        category_id: str | None,
        max_players: int,
        tick_rate: int,
        metadata: dict[str, str],
        created_at: int,
        logic: RoomLogic,
        sink: RoomSink,
        max_actions_per_tick: int,
        script_name: str | None = None,
        max_failing_ticks: int = 10,
        on_doomed: Callable[[Room, str], None] | None = None,
        on_kick: Callable[[Room, str, str], None] | None = None,
        history_ticks: int = 0,
        max_paths: int = 4096,
        stats: ServiceStats | None = None,
    ) -> None:
        self.id = room_id
        self.app_id = app_id
        self.category_id = category_id
        self.max_players = max_players
        self.tick_rate = tick_rate
        self.metadata = metadata
        self.created_at = created_at
        self.script_name = script_name
        self.logic = logic
        self.sink = sink
        self.state: dict[str, Any] = {}
        self.version = 0
        self.tick = 0
        self.skipped_ticks = 0
        self.members: dict[str, Player] = {}
        self.closed = False
        self.empty_since: float | None = None  # monotonic seconds; set while nobody is in
        self._max_actions = max_actions_per_tick
        self._actions: list[tuple[str, dict[str, Any]]] = []
        # The distinct script errors logged so far (each once): a client can
        # make a script fail in many ways, so a room logs at most this many.
        self._logged_errors: set[tuple[str | None, str]] = set()
        self._failed_this_tick = False
        self.failing_ticks = 0  # consecutive ticks in which the logic failed
        self._max_failing_ticks = max_failing_ticks
        self._on_doomed = on_doomed
        self._on_kick = on_kick
        self.locked = False  # a locked room refuses joins (the script decides)
        self.history = DeltaHistory()
        self.paths = PathTable(max_paths)
        # (fromVersion of the delta that started it, its ids) for each path
        # table the resume history still uses, oldest first.
        self._tables: list[tuple[int, dict[str, int]]] = [(0, self.paths.ids)]
        self._history_ticks = history_ticks
        self._stats = stats  # the server's counters (script errors)

    # Membership ---------------------------------------------------------

    def join(self, player: Player) -> None:
        """Seat `player`; the others hear `player_joined`. The caller then sends
        the joiner its snapshot (which lists the joiner among the players)."""
        if self.locked:
            raise RoomError(f"room {self.id!r} is locked", code="room_locked")
        if len(self.members) >= self.max_players:
            raise RoomError(
                f"room {self.id!r} is full ({self.max_players} players)", code="room_full"
            )
        refusal = self.logic.on_join_attempt(self, player)
        if refusal is not None:
            raise RoomError(refusal, code="join_refused")
        self.sink.broadcast(
            self, {"type": "player_joined", "roomId": self.id, "player": player.to_wire()}
        )
        self.members[player.client_id] = player
        self.empty_since = None
        self.logic.on_join(self, player)

    def leave(self, client_id: str, reason: str, now: float) -> Player | None:
        player = self.members.pop(client_id, None)
        if player is None:
            return None
        if not self.members:
            self.empty_since = now
        # Drop what the leaver queued: its actions must not run after it left.
        if any(cid == client_id for cid, _ in self._actions):
            self._actions = [item for item in self._actions if item[0] != client_id]
        message = {
            "type": "player_left",
            "roomId": self.id,
            "player": player.to_wire(),
            "reason": reason,
        }
        self.sink.broadcast(self, message)  # the leaver is no longer a member
        self.logic.on_leave(self, player, reason)
        return player

    def disconnect(self, client_id: str) -> None:
        """The member's connection dropped; its seat is held (`conn` is None)."""
        player = self.members[client_id]
        player.conn = None
        self.logic.on_disconnect(self, player)

    def reconnect(self, client_id: str) -> None:
        """The member whose seat was held has a connection again; it gets
        room traffic once its owner sets `conn` (when it asks for the room)."""
        self.logic.on_reconnect(self, self.members[client_id])

    def kick(self, client_id: str, reason: str) -> None:
        """Remove a member on the room logic's word; its owner does the leaving
        (the kicked connection must learn it is no longer in the room)."""
        if client_id in self.members and self._on_kick is not None:
            self._on_kick(self, client_id, reason)

    # Input ----------------------------------------------------------------

    def queue_action(self, client_id: str, action: dict[str, Any]) -> None:
        if len(self._actions) >= self._max_actions:
            raise RoomError("too many actions queued for this tick", code="rate_limited")
        self._actions.append((client_id, action))

    def chat(self, sender_id: str, message: str, now_ms: int) -> None:
        """Every member gets the message, as the room's logic lets it through."""
        text = self.logic.on_chat(self, sender_id, message)
        if text is None:
            return
        self.sink.broadcast(
            self,
            {
                "type": "chat",
                "roomId": self.id,
                "senderId": sender_id,
                "message": text,
                "timestamp": now_ms,
            },
        )

    # The tick -----------------------------------------------------------

    def run_tick(self, dt: float, skipped: int) -> bool:
        """One tick: queued actions, the logic's tick, the delta. Returns True
        when the state changed (a delta went out)."""
        self.tick += 1 + skipped
        self.skipped_ticks += skipped
        self._failed_this_tick = False
        changed = self._run_tick(dt)
        if not self._failed_this_tick:
            self.failing_ticks = 0
        else:
            self.failing_ticks += 1
            if self.failing_ticks >= self._max_failing_ticks and self._on_doomed is not None:
                self._on_doomed(self, "script_error")
        return changed

    def _run_tick(self, dt: float) -> bool:
        actions = self._actions
        if actions:
            self._actions = []
        changes = self.logic.on_tick(self, dt, self.tick, actions)
        if not changes:
            return False
        return self.publish(changes)

    def relay(self, client_id: str, action: dict[str, Any]) -> None:
        """Send a member's action to every member, as the logic decided."""
        self.sink.broadcast(
            self,
            {
                "type": "action",
                "roomId": self.id,
                "clientId": client_id,
                "action": action,
                "tick": self.tick,
            },
        )

    def settle(self, exclude: str | None = None) -> None:
        """Send what hooks changed since the last tick now, as a delta, so that
        a snapshot taken next includes it. After a join, `exclude` is the
        joiner: its snapshot carries the change, so the delta is not for it."""
        changes = self.logic.take_changes(self)
        if changes:
            self.publish(changes, exclude)

    def publish(self, changes: list[dict[str, Any]], exclude: str | None = None) -> bool:
        """Fold `changes` into the state and send the effective ones as one delta
        (to every member but `exclude`)."""
        try:
            effective = _accel.commit(self.state, changes)
        except GameServerError as exc:  # a change that does not fit the state
            self.script_failed(
                ScriptError(f"bad state change: {exc}", script=self.script_name or "")
            )
            return False
        if not effective:
            return False
        self.version += 1
        message = DeltaMessage(
            type="delta",
            roomId=self.id,
            delta={
                "fromVersion": self.version - 1,
                "toVersion": self.version,
                "tick": self.tick,
                "changes": effective,
            },
        )
        message.first_new = self.paths.intern(effective)
        message.ids = self.paths.ids
        message.packed = None
        if message.first_new < 0:  # a new path table from this delta on
            self._tables.append((self.version - 1, message.ids))
        if self._history_ticks:
            self._remember(message)
        self.sink.broadcast(self, message, exclude)
        return True

    def _remember(self, message: DeltaMessage) -> None:
        data = message.packed = msgspec.msgpack.encode(message)
        self.history.append(self.version - 1, self.tick, data, message.first_new)
        # By age, plus a bound on count (joins add deltas between ticks).
        self.history.forget_before(self.tick - self._history_ticks, 4 * self._history_ticks)
        # Path tables the kept deltas no longer use can go.
        tables = self._tables
        while len(tables) > 1 and tables[1][0] <= self.history.first_version:
            del tables[0]

    def deltas_since(self, version: int) -> list[DeltaMessage] | None:
        """The delta messages from `version` to now, in order, or None when
        the history no longer reaches back that far (or `version` is not one
        of this room's)."""
        if version == self.version:
            return []
        kept = self.history.since(version)
        if kept is None:
            return None
        out = []
        for from_version, (data, first_new) in enumerate(kept, start=version):
            message = DeltaMessage(msgspec.msgpack.decode(data))
            # The path table this delta was numbered in (a reset starts one).
            at = bisect_right(self._tables, from_version, key=lambda table: table[0]) - 1
            message.ids, message.first_new = self._tables[at][1], first_new
            out.append(message)
        return out

    # Reports and views ------------------------------------------------------

    def script_failed(self, error: ScriptError, only: str | None = None) -> None:
        """Tell the members (or just `only`) that the room's script failed.
        Each distinct failure is logged once, up to `MAX_LOGGED_ERRORS` a room."""
        self._failed_this_tick = True
        if self._stats is not None:
            self._stats.script_errors += 1
        if error.fatal and self._on_doomed is not None:
            self._on_doomed(self, "script_error")
        signature = (error.hook, str(error))
        logged = self._logged_errors
        if signature not in logged and len(logged) <= MAX_LOGGED_ERRORS:
            logged.add(signature)
            if len(logged) <= MAX_LOGGED_ERRORS:
                log.warning(
                    "room %s/%s script error in %s: %s", self.app_id, self.id, error.hook, error
                )
            else:
                log.warning(
                    "room %s/%s: over %d distinct script errors; no more are logged "
                    "for this room (members still get each one)",
                    self.app_id,
                    self.id,
                    MAX_LOGGED_ERRORS,
                )
        message = {
            "type": "error",
            "code": error.code,
            "message": str(error),
            "roomId": self.id,
            "script": error.script,
            "hook": error.hook,
            "line": error.line,
        }
        if only is None:
            self.sink.broadcast(self, message)
        else:
            self.sink.send(self, only, message)

    def snapshot(self, now_ms: int) -> dict[str, Any]:
        """GameState at `version`: what a joiner starts from."""
        snapshot = Snapshot(
            roomId=self.id,
            state=self.state,
            version=self.version,
            serverTime=now_ms,
            tickRate=self.tick_rate,
            players=[p.to_wire() for p in self.members.values()],
        )
        snapshot.paths = list(self.paths.names)
        return snapshot

    def info(self) -> dict[str, Any]:
        """A `list_rooms` entry."""
        return {
            "id": self.id,
            "categoryId": self.category_id,
            "playerCount": len(self.members),
            "maxPlayers": self.max_players,
            "tickRate": self.tick_rate,
            "metadata": self.metadata,
            "createdAt": self.created_at,
        }

    def close(self, reason: str) -> None:
        """Tell the members, then let the logic go. The directory forgets the room."""
        if self.closed:
            return
        self.closed = True
        self.sink.broadcast(self, {"type": "room_closed", "roomId": self.id, "reason": reason})
        self.logic.on_dispose(self)
