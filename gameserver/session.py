"""A connection as the game sees it, and the fan-out of room messages to them.

Invariants:
- Everything a client is owed between two flushes sits in `outbox` as
  already-encoded messages; `take_frame` glues them into ONE frame (a single
  message, or an array of messages), because each frame costs a syscall.
- The outbox is bounded (`max_outbox_bytes`, `max_outbox_messages`). It only
  grows while the client's socket takes nothing more; over the bound the
  client falls `behind`: its backlog is dropped and room traffic skips it
  until its socket drains, when the service sends it one fresh snapshot
  (`GameService.caught_up`). Replies still queue while behind; if even they
  overflow, the connection is closed with 4008 `slow_consumer`.
- A message broadcast to a room is encoded once per encoding present among
  its members; every member gets the same bytes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from gameserver.protocol import CODECS, Codec
from gameserver.ratelimit import TokenBucket

if TYPE_CHECKING:
    from gameserver.engine import Room

__all__ = ["Session", "Fanout", "CloseCode"]

MSGPACK = CODECS["msgpack"]


class CloseCode:
    """WebSocket close codes the server uses (docs/protocol.md lists them)."""

    GOING_AWAY = 1001  # server shutdown
    TOO_BIG = 1009  # frame over --max-message-bytes
    UNAUTHORIZED = 4001
    BAD_CLIENT_ID = 4002
    BAD_ENCODING = 4003
    SLOW_CONSUMER = 4008
    RATE_LIMITED = 4029
    DUPLICATE_CLIENT = 4009
    REPLACED = 4010


class Session:
    __slots__ = (
        "app_id",
        "client_id",
        "codec",
        "resume_token",
        "room",
        "outbox",
        "outbox_bytes",
        "max_outbox_bytes",
        "max_outbox_messages",
        "behind",
        "close_request",
        "messages",
        "drops",
        "creations",
        "_pending",
    )

    def __init__(
        self,
        app_id: str,
        client_id: str,
        codec: Codec,
        resume_token: str,
        pending: dict[Session, None],
        max_outbox_bytes: int,
        max_outbox_messages: int = 4096,
    ) -> None:
        self.app_id = app_id
        self.client_id = client_id
        self.codec = codec
        self.resume_token = resume_token
        self.room: Room | None = None
        self.outbox: list[bytes] = []
        self.outbox_bytes = 0
        self.max_outbox_bytes = max_outbox_bytes
        self.max_outbox_messages = max_outbox_messages
        self.behind = False  # dropped its backlog; gets no room traffic until it drains
        # (code, reason) once the server wants this connection closed.
        self.close_request: tuple[int, str] | None = None
        self._pending = pending  # the service's set of sessions with something to flush
        # Rate limits, set by the service: messages it may send, and how much
        # more dropping it may cause before it is closed (4029).
        self.messages: TokenBucket | None = None
        self.drops: TokenBucket | None = None
        self.creations: TokenBucket | None = None  # rooms it may create

    def admits(self, now: float) -> bool:
        """Whether the rate limit lets one more of its messages through (and
        counts it)."""
        return self.messages is None or self.messages.take(now)

    def send(self, message: dict[str, Any]) -> None:
        self.push(self.codec.encode(message))

    def push(self, data: bytes) -> None:
        if self.close_request is not None:
            return
        if not self.outbox:  # the usual case at a tick: one message, no bound to check
            self.outbox.append(data)
            self.outbox_bytes = len(data)
            self._pending[self] = None
            return
        self.outbox.append(data)
        self.outbox_bytes += len(data)
        # One message larger than the bound still goes out (a big snapshot);
        # a backlog of several over it means the client is not keeping up.
        if (
            self.outbox_bytes > self.max_outbox_bytes or len(self.outbox) > self.max_outbox_messages
        ) and len(self.outbox) > 1:
            self.outbox.clear()
            self.outbox_bytes = 0
            if self.behind:  # even its replies pile up: it is not reading at all
                self.close_request = (CloseCode.SLOW_CONSUMER, "slow_consumer")
            self.behind = True
        self._pending[self] = None

    def close(self, code: int, reason: str) -> None:
        """Ask the I/O side to close this connection after what is queued."""
        if self.close_request is None:
            self.close_request = (code, reason)
            self._pending[self] = None

    def take_frame(self) -> bytes | None:
        outbox = self.outbox
        if not outbox:
            return None
        # Every encoding frames one message as the message itself.
        frame = outbox[0] if len(outbox) == 1 else self.codec.frame(outbox)
        self.outbox = []
        self.outbox_bytes = 0
        return frame


class Fanout:
    """The RoomSink of the live server: encode once per encoding, queue for each member."""

    def broadcast(self, room: Room, message: dict[str, Any], exclude: str | None = None) -> None:
        encoded: dict[Codec, bytes] = {}
        packed = getattr(message, "packed", None)  # a delta the room encoded already
        if packed is not None:
            encoded[MSGPACK] = packed
        for player in room.members.values():
            session: Session | None = player.conn
            if session is None or session.behind or player.client_id == exclude:
                continue
            codec = session.codec
            data = encoded.get(codec)
            if data is None:
                data = encoded[codec] = codec.encode(message)
            session.push(data)

    def send(self, room: Room, client_id: str, message: dict[str, Any]) -> None:
        player = room.members.get(client_id)
        if player is not None and player.conn is not None and not player.conn.behind:
            player.conn.send(message)
