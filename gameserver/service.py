"""The game service, sans-I/O: sessions in, room operations, messages out.

The I/O layer (gameserver.net) calls `open_session` when a socket is
accepted, `receive` with each frame's payload, `close_session` when a socket
ends, and `run_ticks(now)` when `next_deadline()` comes. After each call it
flushes `take_pending()`: every session with a frame to send or a close to
perform, and `caught_up` when a session that fell behind can take data again.
Nothing here reads a clock by itself: `clock` (monotonic seconds) and
`wall_ms` (epoch milliseconds) are injected.

Seats outlive sockets: a connection that ends without `leave_room` leaves its
player in the room for `reconnect_grace` seconds (`_held`); when the grace
ends the player leaves with reason `timeout`. A new connection of the same
client id takes the seat back at once (`connected` names the room), but gets
nothing from the room until it asks: `join_room` with `lastVersion` for just
the deltas it missed, or `get_state` / `join_room` for a snapshot. Until then
its Player's `conn` stays None (the session is "parked").
"""

from __future__ import annotations

import hmac
import logging
import math
import re
import secrets
import time
from collections.abc import Callable
from typing import Any

from gameserver.config import PROTOCOL_VERSION, Config, app_limits
from gameserver.engine import (
    Player,
    RelayLogic,
    Room,
    RoomDirectory,
    RoomLogic,
    Scheduler,
    ServiceStats,
)
from gameserver.errors import BadRequest, RemoteError, RoomError, ScriptError
from gameserver.protocol import (
    check_text,
    check_value,
    encoded_size,
    get_codec,
    parse,
    request_id_of,
)
from gameserver.protocol import messages as m
from gameserver.ratelimit import TokenBucket
from gameserver.scripting.commands import CommandRunner
from gameserver.scripting.library import SCRIPT_NAME, ScriptLibrary
from gameserver.scripting.logic import LuaLogic
from gameserver.session import CloseCode, Fanout, Session

__all__ = ["GameService", "Refused"]

log = logging.getLogger("gameserver.service")

_ID = re.compile(r"[A-Za-z0-9_.:@-]+")


class Refused(Exception):
    """A connection the service will not take: close with `code`."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


class GameService:
    def __init__(
        self,
        config: Config,
        scripts: ScriptLibrary,
        *,
        app_settings: Callable[[str], dict[str, int]] = lambda app_id: {},
        clock: Callable[[], float] = time.monotonic,
        wall_ms: Callable[[], int] = lambda: int(time.time() * 1000),
    ) -> None:
        self.config = config
        self.scripts = scripts
        self.app_settings = app_settings  # per-app overrides (config.APP_SETTINGS)
        self.clock = clock
        self.wall_ms = wall_ms
        self.directory = RoomDirectory()
        self.scheduler = Scheduler(phases=config.tick_phases, min_rooms=config.tick_phase_min_rooms)
        self.stats = ServiceStats()  # read by /metrics at scrape time
        self.fanout = Fanout()
        self.sessions: dict[tuple[str, str], Session] = {}
        self._pending: dict[Session, None] = {}
        self._emptying: dict[Room, None] = {}
        self._doomed: dict[Room, str] = {}  # rooms that asked to close during a tick
        # Seats of dropped players: (app, client) -> (room, monotonic deadline).
        # One grace for all, so insertion order is deadline order.
        self._held: dict[tuple[str, str], tuple[Room, float]] = {}
        self.accepting = True  # false from the start of shutdown (readiness)
        self._handlers: dict[type, Callable[[Session, Any], None]] = {
            m.CreateRoom: self._create_room,
            m.JoinRoom: self._join_room,
            m.LeaveRoom: self._leave_room,
            m.SendAction: self._action,
            m.Chat: self._chat,
            m.GetState: self._get_state,
            m.ListRooms: self._list_rooms,
            m.Ping: self._ping,
        }
        # message class → its `type`, the label of stats.messages_in
        self._tags: dict[type, str] = {
            cls: cls.__struct_config__.tag  # type: ignore[attr-defined]
            for cls in self._handlers
        }

    # Sessions -------------------------------------------------------------

    def open_session(
        self, app_id: str, client_id: str | None, encoding: str | None, resume_token: str | None
    ) -> Session:
        """A new connection of `client_id`; raises Refused with the close code."""
        if not client_id:
            raise Refused(CloseCode.BAD_CLIENT_ID, "client_id is required")
        if len(client_id) > self.config.max_client_id_length or not client_id.isprintable():
            raise Refused(CloseCode.BAD_CLIENT_ID, "client_id is too long or not printable")
        codec = get_codec("msgpack" if encoding is None else encoding)
        if codec is None:
            raise Refused(CloseCode.BAD_ENCODING, "encoding must be msgpack, json or compact")
        key = (app_id, client_id)
        existing = self.sessions.get(key)
        if existing is not None:
            if not resume_token or not hmac.compare_digest(
                existing.resume_token.encode(), resume_token.encode("utf-8", "replace")
            ):
                raise Refused(CloseCode.DUPLICATE_CLIENT, "client_id is already connected")
            self.close_session(existing)  # its seat is held for this connection
            existing.close(CloseCode.REPLACED, "replaced by a newer connection")
        session = Session(
            app_id,
            client_id,
            codec,
            secrets.token_urlsafe(18),
            self._pending,
            self.config.max_outbox_bytes,
            self.config.max_outbox_messages,
        )
        # The app's own rate limits, if it set any, as they are now: a change
        # applies to connections opened after it.
        now, limits = self.clock(), app_limits(self.config, self.app_settings(app_id))
        rate = limits["messagesPerSecond"]
        session.messages = TokenBucket(rate, limits["messageBurst"], now)
        session.drops = TokenBucket(rate, self.config.abusive_drops, now)
        session.creations = TokenBucket(
            limits["roomsPerMinute"] / 60, limits["roomCreationBurst"], now
        )
        self.sessions[key] = session
        hello = {
            "type": "connected",
            "clientId": client_id,
            "serverTime": self.wall_ms(),
            "protocolVersion": PROTOCOL_VERSION,
            "resumeToken": session.resume_token,
        }
        held = self._held.pop(key, None)
        if held is not None:  # back in its seat, parked until it asks for the room
            room = session.room = held[0]
            hello["roomId"] = room.id
            room.reconnect(client_id)
            room.settle()
        session.send(hello)
        return session

    def close_session(self, session: Session, *, left: bool = False) -> None:
        """The socket is gone (or replaced): the player's seat is held for
        `reconnect_grace` seconds. It leaves at once (reason `disconnected`)
        when the client closed on purpose (`left`: close code 1000) or there
        is no grace."""
        key = (session.app_id, session.client_id)
        if self.sessions.get(key) is session:
            del self.sessions[key]
        room = session.room
        if room is None:
            return
        if left or self.config.reconnect_grace <= 0 or room.closed:
            self._leave(session, "disconnected")
            return
        session.room = None
        self._held[key] = (room, self.clock() + self.config.reconnect_grace)
        room.disconnect(session.client_id)

    def caught_up(self, session: Session) -> None:
        """The socket of a session that fell behind takes data again: instead
        of the backlog it lost, one fresh snapshot restarts its chain."""
        session.behind = False
        self.stats.slow_consumer_snapshots += 1
        room = session.room
        if room is not None:
            session.send(
                {"type": "state", "roomId": room.id, "state": room.snapshot(self.wall_ms())}
            )

    def take_pending(self) -> list[Session]:
        pending = list(self._pending)
        self._pending.clear()
        return pending

    # Frames ---------------------------------------------------------------

    def receive(self, session: Session, data: bytes | str) -> None:
        """One frame from the client: one message or an array of them, in order."""
        if session.close_request is not None:
            return  # the server is closing this connection: nothing more is handled
        now = self.clock()
        message = session.codec.message(data)
        if message is not None:  # the common frame: one message, well-formed
            if session.admits(now):
                self._dispatch(session, message)
            else:
                self._rate_limited(session, 1, now)
            return
        try:
            decoded = session.codec.decode(data)
        except BadRequest as exc:  # counts as one message
            if session.admits(now):
                self.stats.messages_in["other"] += 1
                session.send(m.error(exc.code, exc.message))
            else:
                self._rate_limited(session, 1, now)
            return
        if type(decoded) is list:
            if not 0 < len(decoded) <= self.config.max_messages_per_frame:
                session.send(
                    m.error(
                        "bad_request",
                        "a frame holds one message or an array of 1 to "
                        f"{self.config.max_messages_per_frame} messages",
                    )
                )
                return
            messages = decoded
        else:
            messages = [decoded]
        dropped = 0
        for raw in messages:
            if session.admits(now):
                self._handle(session, raw)
            else:
                dropped += 1
        if dropped:
            self._rate_limited(session, dropped, now)

    def charge_frame(self, session: Session) -> bool:
        """A frame that carries no message of its own (a ping, a pong, a
        fragment of a message) costs one message of the connection's rate
        limit: a flood of them is throttled and closed 4029 like any other.
        False: over the limit, drop it (no error reply: it asked nothing)."""
        if session.close_request is not None:
            return False
        now = self.clock()
        if session.admits(now):
            return True
        self._dropped(session, 1, now)
        return False

    def _rate_limited(self, session: Session, dropped: int, now: float) -> None:
        """One `rate_limited` error per frame; sustained flooding closes 4029."""
        assert session.messages is not None
        session.send(
            m.error(
                "rate_limited",
                f"{dropped} message(s) dropped: at most {session.messages.rate:g} "
                f"per second (bursts of {session.messages.burst:g})",
            )
        )
        self._dropped(session, dropped, now)

    def _dropped(self, session: Session, dropped: int, now: float) -> None:
        assert session.drops is not None
        self.stats.rate_limited_messages += dropped
        for _ in range(dropped):
            if not session.drops.take(now):
                if session.close_request is None:
                    self.stats.rate_limit_closes += 1
                session.close(CloseCode.RATE_LIMITED, "rate_limited")
                return

    def _handle(self, session: Session, raw: Any) -> None:
        try:
            message = parse(raw)
        except RemoteError as exc:  # an unknown type, a bad field, or not a message at all
            self.stats.messages_in["other"] += 1
            session.send(m.error(exc.code, exc.message, request_id_of(raw)))
            return
        except Exception:
            self._failed(session, type(raw).__name__, request_id_of(raw))
            return
        self._dispatch(session, message)

    def _dispatch(self, session: Session, message: m.ClientMessage) -> None:
        kind = type(message)
        self.stats.messages_in[self._tags[kind]] += 1
        try:
            self._handlers[kind](session, message)
        except RemoteError as exc:
            session.send(m.error(exc.code, exc.message, message.request_id))
        except Exception:
            self._failed(session, kind.__name__, message.request_id)

    def _failed(self, session: Session, what: str, request_id: Any) -> None:
        """Our bug: logged here with its traceback; the client only sees a code."""
        log.exception("internal error handling a %s message", what)
        session.send(m.error("internal_error", "the server failed on this message", request_id))

    # Ticks ----------------------------------------------------------------

    def next_deadline(self) -> float | None:
        return self.scheduler.next_deadline()

    def run_ticks(self, now: float) -> int:
        self._dispose_doomed()  # doomed between ticks (a join hook ran out of memory)
        if self._held:  # before the tick, which then carries what leaving changed
            self._release_expired_seats(now)
        ran = self.scheduler.run_due(now)
        self._dispose_doomed()
        if self._emptying:
            timeout = self.config.empty_room_timeout
            for room in list(self._emptying):
                if room.empty_since is None:
                    del self._emptying[room]
                elif now - room.empty_since >= timeout:
                    self._dispose(room, "empty")
        return ran

    def _release_expired_seats(self, now: float) -> None:
        for key, (room, deadline) in list(self._held.items()):
            if deadline > now:
                break  # the rest were held later
            del self._held[key]
            self._vacate(room, key[1], "timeout")

    def _vacate(self, room: Room, client_id: str, reason: str) -> None:
        room.leave(client_id, reason, self.clock())
        if not room.members and not room.closed:
            self._emptying[room] = None

    def shutdown(self) -> None:
        """Close every room (members hear `room_closed` `server_shutdown`) and session."""
        self.accepting = False
        for room in self.directory:
            self._dispose(room, "server_shutdown")
        for session in list(self.sessions.values()):
            session.close(CloseCode.GOING_AWAY, "server shutdown")

    def reload_script(self, app_id: str, name: str) -> dict[str, Any]:
        """Live reload: every running room of `app_id` using script `name` swaps
        to its current source between two ticks, keeping its state. A room
        whose new version fails to load stays on the old one."""
        source = self.scripts.source(name, app_id)
        reloaded, failed = [], []
        for room in self.directory.listing(app_id, None):
            if room.script_name != name or not isinstance(room.logic, LuaLogic):
                continue
            room.settle()
            try:
                room.logic.reload(room, source)
            except ScriptError as exc:
                failed.append({"roomId": room.id, "message": str(exc), "line": exc.line})
            else:
                reloaded.append(room.id)
                log.info(
                    "room %s/%s reloaded script %s",
                    app_id,
                    room.id,
                    name,
                    extra={
                        "event": "room_reloaded",
                        "app": app_id,
                        "room": room.id,
                        "script": name,
                    },
                )
        return {"reloaded": reloaded, "failed": failed}

    def _kick(self, room: Room, client_id: str, reason: str) -> None:
        player = room.members[client_id]
        session = self.sessions.get((room.app_id, client_id))
        if session is None or session.room is not room:  # its seat was held
            self._held.pop((room.app_id, client_id), None)
            self._vacate(room, client_id, "kicked")
            return
        session.send(
            {
                "type": "player_left",
                "roomId": room.id,
                "player": player.to_wire(),
                "reason": "kicked",
                "message": reason,
            }
        )
        self._leave(session, "kicked")

    def _dispose_doomed(self) -> None:
        if self._doomed:
            for room, reason in list(self._doomed.items()):
                self._dispose(room, reason)
            self._doomed.clear()

    def _doom(self, room: Room, reason: str) -> None:
        self._doomed[room] = reason

    def _dispose(self, room: Room, reason: str) -> None:
        room.close(reason)
        for client_id in room.members:
            key = (room.app_id, client_id)
            session = self.sessions.get(key)
            if session is not None and session.room is room:
                session.room = None
            held = self._held.get(key)
            if held is not None and held[0] is room:
                del self._held[key]
        self.directory.remove(room)
        self.scheduler.remove(room)
        self._emptying.pop(room, None)
        self.stats.rooms_disposed += 1
        log.info(
            "room %s/%s disposed (%s)",
            room.app_id,
            room.id,
            reason,
            extra={"event": "room_disposed", "app": room.app_id, "room": room.id, "reason": reason},
        )

    # Handlers, one per client message type ----------------------------------

    def _create_room(self, session: Session, msg: m.CreateRoom) -> None:
        self._not_in_room(session)
        cfg, limits = msg.config, self.config
        room_id = cfg.room_id if cfg.room_id is not None else "room_" + secrets.token_hex(6)
        self._check_id(room_id, "roomId")
        if cfg.category_id is not None:
            self._check_id(cfg.category_id, "categoryId")
        max_players = limits.default_max_players if cfg.max_players is None else cfg.max_players
        if not 1 <= max_players <= limits.max_players_limit:
            raise BadRequest(f"maxPlayers must be 1..{limits.max_players_limit}")
        tick_rate = limits.tick_rate if cfg.tick_rate is None else cfg.tick_rate
        if not limits.min_tick_rate <= tick_rate <= limits.max_tick_rate:
            raise BadRequest(f"tickRate must be {limits.min_tick_rate}..{limits.max_tick_rate}")
        self._check_metadata(cfg.metadata)
        if self.directory.exists(session.app_id, room_id):
            raise RoomError(f"room {room_id!r} already exists", code="room_exists")
        if self.directory.count(session.app_id) >= limits.max_rooms_per_app:
            raise RoomError(
                f"this app has {limits.max_rooms_per_app} rooms already", code="too_many_rooms"
            )
        creations = session.creations
        if creations is not None and not creations.take(self.clock()):
            raise RoomError(
                f"at most {creations.rate * 60:g} new rooms per minute per connection",
                code="rate_limited",
            )
        room_config = {
            "roomId": room_id,
            "categoryId": cfg.category_id,
            "maxPlayers": max_players,
            "tickRate": tick_rate,
            "scriptName": cfg.script_name,
            "metadata": dict(cfg.metadata),
        }
        logic: RoomLogic = RelayLogic()
        if cfg.script_name is not None and not SCRIPT_NAME.fullmatch(cfg.script_name):
            raise BadRequest("scriptName must be 1..64 characters of A-Z a-z 0-9 _ -")
        if cfg.script_name is not None:
            settings = app_limits(limits, self.app_settings(session.app_id))
            logic = LuaLogic(
                cfg.script_name,
                self.scripts.source(cfg.script_name, session.app_id),
                room_id=room_id,
                room_config=room_config,
                memory_limit=int(settings["luaMemoryLimit"]),
                instruction_limit=int(settings["luaInstructionLimit"]),
                tick_instruction_limit=int(settings["luaTickInstructionLimit"]),
                commands=CommandRunner(limits),
                stats=self.stats,
            )
        room = Room(
            room_id=room_id,
            app_id=session.app_id,
            category_id=cfg.category_id,
            max_players=max_players,
            tick_rate=tick_rate,
            metadata=dict(cfg.metadata),
            created_at=self.wall_ms(),
            logic=logic,
            sink=self.fanout,
            max_actions_per_tick=limits.max_actions_per_tick,
            script_name=cfg.script_name,
            max_failing_ticks=limits.max_failing_ticks,
            on_doomed=self._doom,
            on_kick=self._kick,
            history_ticks=math.ceil(limits.resume_history_seconds * tick_rate),
            max_paths=limits.max_interned_paths,
            stats=self.stats,
        )
        self.directory.add(room)
        self.scheduler.add(room, self.clock())
        logic.on_init(room)
        self.stats.rooms_created += 1
        log.info(
            "room %s/%s created by %s",
            room.app_id,
            room.id,
            session.client_id,
            extra={
                "event": "room_created",
                "app": room.app_id,
                "room": room.id,
                "client": session.client_id,
            },
        )
        self._seat(session, room, {}, msg.request_id)

    def _join_room(self, session: Session, msg: m.JoinRoom) -> None:
        self._check_id(msg.room_id, "roomId")
        self._check_metadata(msg.metadata)
        parked = self._parked_in(session)
        if parked is not None and parked.id == msg.room_id:
            self._reseat(session, parked, msg.last_version, msg.request_id)
            return
        self._not_in_room(session)
        room = self.directory.get(session.app_id, msg.room_id)
        self._seat(session, room, msg.metadata, msg.request_id)

    def _seat(
        self, session: Session, room: Room, metadata: dict[str, str], request_id: Any
    ) -> None:
        player = Player(session.client_id, self.wall_ms(), dict(metadata), conn=session)
        room.join(player)
        room.settle(
            exclude=session.client_id
        )  # the others get it as a delta, the joiner in its snapshot
        session.room = room
        self._emptying.pop(room, None)
        session.send(
            m.with_request_id(
                {"type": "joined", "roomId": room.id, "state": room.snapshot(self.wall_ms())},
                request_id,
            )
        )

    def _reseat(
        self, session: Session, room: Room, last_version: int | None, request_id: Any
    ) -> None:
        """The parked player asks for its room: `resumed` and exactly the
        deltas after `last_version` when the room still has them, else a
        `joined` snapshot. The other members hear nothing: it never left."""
        missed = None if last_version is None else room.deltas_since(last_version)
        room.members[session.client_id].conn = session
        if missed is not None:
            session.send(
                m.with_request_id(
                    {"type": "resumed", "roomId": room.id, "fromVersion": last_version},
                    request_id,
                )
            )
            for delta in missed:
                session.send(delta)
            self.stats.resumes["resumed"] += 1
            return
        session.send(
            m.with_request_id(
                {"type": "joined", "roomId": room.id, "state": room.snapshot(self.wall_ms())},
                request_id,
            )
        )
        self.stats.resumes["snapshot"] += 1

    def _leave_room(self, session: Session, msg: m.LeaveRoom) -> None:
        room = self._room_of(session)
        self._leave(session, "left")
        session.send(m.with_request_id({"type": "left", "roomId": room.id}, msg.request_id))

    def _leave(self, session: Session, reason: str) -> None:
        room = session.room
        assert room is not None
        session.room = None
        self._vacate(room, session.client_id, reason)

    def _action(self, session: Session, msg: m.SendAction) -> None:
        room = self._playing_in(session)
        check_text(msg.action.type, "action.type")
        check_value(msg.action.data, self.config.max_value_depth, "action.data")
        # Measured after check_value: the data is known to encode by then.
        size = len(msg.action.type.encode()) + encoded_size(msg.action.data)
        if size > self.config.max_action_bytes:
            raise BadRequest(
                f"action is {size} bytes (its type, plus its data as MessagePack); "
                f"the limit is {self.config.max_action_bytes} bytes"
            )
        room.queue_action(session.client_id, {"type": msg.action.type, "data": msg.action.data})

    def _chat(self, session: Session, msg: m.Chat) -> None:
        room = self._playing_in(session)
        check_text(msg.message, "message")
        if len(msg.message) > self.config.max_chat_length:
            raise BadRequest(f"chat message longer than {self.config.max_chat_length} characters")
        room.chat(session.client_id, msg.message, self.wall_ms())

    def _get_state(self, session: Session, msg: m.GetState) -> None:
        room = self._room_of(session)
        if self._parked_in(session) is not None:  # the snapshot restarts its chain
            room.members[session.client_id].conn = session
        session.send(
            m.with_request_id(
                {"type": "state", "roomId": room.id, "state": room.snapshot(self.wall_ms())},
                msg.request_id,
            )
        )

    def _list_rooms(self, session: Session, msg: m.ListRooms) -> None:
        if msg.category_id is not None:
            self._check_id(msg.category_id, "categoryId")
        listing = self.directory.listing(session.app_id, msg.category_id)
        # The newest rooms first, at most max_listed_rooms: one reply stays small.
        newest = sorted(listing, key=lambda room: room.created_at, reverse=True)
        rooms = [room.info() for room in newest[: self.config.max_listed_rooms]]
        session.send(m.with_request_id({"type": "rooms", "rooms": rooms}, msg.request_id))

    def _ping(self, session: Session, msg: m.Ping) -> None:
        check_value(msg.client_time, 0, "clientTime")
        session.send(
            m.with_request_id(
                {"type": "pong", "clientTime": msg.client_time, "serverTime": self.wall_ms()},
                msg.request_id,
            )
        )

    # Checks -----------------------------------------------------------------

    def _room_of(self, session: Session) -> Room:
        if session.room is None:
            raise RoomError("you are not in a room", code="not_in_room")
        return session.room

    def _playing_in(self, session: Session) -> Room:
        """The room this session plays in: a parked one must rejoin first (it
        sees nothing of the room, so it would act on a state it does not have)."""
        room = self._room_of(session)
        if room.members[session.client_id].conn is None:
            raise RoomError(
                f"rejoin room {room.id!r} first: join_room (with lastVersion to resume)",
                code="not_in_room",
            )
        return room

    def _parked_in(self, session: Session) -> Room | None:
        """The room whose seat this session took back without asking for the room yet."""
        room = session.room
        if room is not None and room.members[session.client_id].conn is None:
            return room
        return None

    def _not_in_room(self, session: Session) -> None:
        if self._parked_in(session) is not None:  # it goes elsewhere: give the seat up
            self._leave(session, "left")
        if session.room is not None:
            raise RoomError(
                f"already in room {session.room.id!r}; leave it first", code="already_in_room"
            )

    def _check_id(self, value: str, what: str) -> None:
        if len(value) > self.config.max_id_length or not _ID.fullmatch(value):
            raise BadRequest(
                f"{what} must be 1..{self.config.max_id_length} characters of A-Z a-z 0-9 _ . : @ -"
            )

    def _check_metadata(self, metadata: dict[str, str]) -> None:
        limits = self.config
        if len(metadata) > limits.max_metadata_entries:
            raise BadRequest(f"metadata holds at most {limits.max_metadata_entries} entries")
        for key, value in metadata.items():
            check_text(key, "metadata key")
            check_text(value, "metadata value")
            if len(key) > limits.max_id_length or len(value) > limits.max_metadata_value_length:
                raise BadRequest(
                    f"metadata keys are at most {limits.max_id_length} and values at most "
                    f"{limits.max_metadata_value_length} characters"
                )
