"""The socket side on picows: the same rules as `server.py`, about half the cost.

picows (a Cython WebSocket library) parses frames in C and calls us back once
per frame; it leaves messages, closing and flow control to us, so this module
does what websockets does for `server.py`:

- messages: continuation frames are reassembled (up to `max_message_bytes`,
  else 1009), text must be UTF-8 (1007), reserved bits and stray or missing
  continuations are protocol errors (1002). picows itself refuses single
  frames over the limit (1009), bad opcodes and unmasked frames (1002).
- closing: a peer's close is echoed and the TCP connection closed; ours waits
  `close_timeout` for the peer's answer, then the TCP connection is cut.
- keepalive: a ping every `ping_interval`; one still unanswered at the next
  closes the connection with 1011.
- flow control: frames go straight into the socket; when the transport's
  buffer passes `write_limit_bytes` picows calls `pause_writing`, frames wait
  in the session's bounded outbox, and `resume_writing` sends them (or one
  fresh snapshot if the session fell behind). Paused for the whole
  `slow_consumer_deadline`: close 4008.

The handshake decision is `handshake.Gate`'s, shared with `server.py`; ticks
run on the shared `ticks.TickTimer`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from typing import Any

from picows import (
    WSAutoPingStrategy,
    WSFrame,
    WSListener,
    WSMsgType,
    WSTransport,
    WSUpgradeRequest,
    WSUpgradeResponse,
    WSUpgradeResponseWithListener,
)

# The protocol class picows' own `ws_create_server` builds; we build it
# ourselves so that the handshake check can see the peer's address (picows
# hands the listener factory only the request). Its arguments are positional
# and private: picows is pinned in requirements.txt for this reason.
from picows.picows import WSProtocol  # type: ignore[attr-defined]

from gameserver.config import Config
from gameserver.net.handshake import NOT_ASCII, WS_PATH, Accepted, Gate, Refusal, collect_headers
from gameserver.net.lifecycle import log_closed, log_open
from gameserver.net.peers import PeerCount, peer_ip
from gameserver.net.ticks import TickTimer
from gameserver.service import GameService, Refused
from gameserver.session import CloseCode, Session
from gameserver.storage import AppStore

__all__ = ["GameServer", "WS_PATH", "Frames", "new_protocol"]

# picows logs each connection and disconnection at INFO; our own lines say
# that once already.
_picows_log = logging.getLogger("gameserver.picows")
_picows_log.setLevel(logging.WARNING)

_BINARY, _TEXT, _CONTINUATION = WSMsgType.BINARY, WSMsgType.TEXT, WSMsgType.CONTINUATION
_CLOSE, _PING, _PONG = WSMsgType.CLOSE, WSMsgType.PING, WSMsgType.PONG
_PROTOCOL_ERROR = 1002
_INVALID_TEXT = 1007
_TOO_BIG = 1009
_KEEPALIVE = 1011
_GOING_AWAY = 1001


class Frames(WSListener):
    """The WebSocket rules picows leaves to us, for one socket: messages out of
    frames (reassembly, size cap, UTF-8, protocol errors), the close
    handshake, keepalive. A subclass gets each whole message in `_deliver`.
    (`_Link` is the game's; bench/autobahn_echo.py echoes, so that the
    Autobahn cases test exactly these rules.)

    States: open → closing (our close frame is out, or we echoed the peer's)
    → disconnected."""

    def __init__(self, config: Config) -> None:
        self._config = config
        self._max_message = config.max_message_bytes
        self._close_timeout = config.close_timeout
        self.transport: WSTransport | None = None
        self._closing = False
        self._refused_close = False  # the peer's close frame was broken: we answered 1002/1007
        self._ping: asyncio.TimerHandle | None = None
        self._awaiting_pong = False
        self._parts: list[bytes] | None = None  # a fragmented message so far
        self._parts_type = WSMsgType.BINARY
        self._parts_size = 0

    def _deliver(self, data: bytes | str) -> None:
        raise NotImplementedError

    def _start_keepalive(self) -> None:
        interval = self._config.ping_interval
        self._ping = asyncio.get_running_loop().call_later(interval, self._keepalive)

    # picows callbacks ---------------------------------------------------------

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        msg_type = frame.msg_type
        if frame.rsv1 or frame.rsv2 or frame.rsv3:  # no extension was negotiated
            self._fail(_PROTOCOL_ERROR, "reserved bits must be 0")
        elif msg_type in (_BINARY, _TEXT):
            if self._parts is not None:
                self._fail(_PROTOCOL_ERROR, "expected a continuation frame")
            elif frame.fin:
                if msg_type == _BINARY:
                    self._deliver(frame.get_payload_as_bytes())
                else:
                    try:
                        text = frame.get_payload_as_utf8_text()
                    except UnicodeDecodeError:
                        self._fail(_INVALID_TEXT, "invalid UTF-8")
                        return
                    self._deliver(text)
            else:
                self._parts = [frame.get_payload_as_bytes()]
                self._parts_type = msg_type
                self._parts_size = frame.payload_size
        elif msg_type == _CONTINUATION:
            self._charge()  # a flood of empty fragments costs like messages
            self._continue(frame)
        elif msg_type == _CLOSE:
            self._on_close(transport, frame)
        elif msg_type == _PING:
            if self._charge():  # over the rate limit: no pong
                transport.send(_PONG, frame.get_payload_as_bytes())
        elif msg_type == _PONG:
            self._charge()
            self._awaiting_pong = False

    def _charge(self) -> bool:
        """A frame with no message of its own arrived (ping, pong, fragment).
        The game's connection charges it to its rate limit; False: drop it."""
        return True

    def _continue(self, frame: WSFrame) -> None:
        parts = self._parts
        if parts is None:
            self._fail(_PROTOCOL_ERROR, "unexpected continuation frame")
            return
        self._parts_size += frame.payload_size
        if self._parts_size > self._max_message:
            self._parts = None
            self._fail(_TOO_BIG, f"message over {self._max_message} bytes")
            return
        parts.append(frame.get_payload_as_bytes())
        if not frame.fin:
            return
        self._parts = None
        data = b"".join(parts)
        if self._parts_type == _BINARY:
            self._deliver(data)
            return
        try:
            text = data.decode()
        except UnicodeDecodeError:
            self._fail(_INVALID_TEXT, "invalid UTF-8")
            return
        self._deliver(text)

    # Closing ------------------------------------------------------------------

    def _on_close(self, transport: WSTransport, frame: WSFrame) -> None:
        if not self._closing and not transport.is_close_frame_sent:
            self._closing = True
            payload = frame.get_payload_as_bytes()
            broken = _close_payload_error(payload)
            if broken is None:
                # The peer closes: echo its close frame as it came (RFC 6455 5.5.1).
                transport.send(WSMsgType.CLOSE, payload)
            else:
                self._refused_close = True
                transport.send_close(broken[0], broken[1].encode())  # type: ignore[arg-type]
        # Either way the close handshake is complete: the server ends the TCP
        # connection (after what is buffered; cut if that does not drain).
        transport.disconnect()
        self._abort_later()

    def _close(self, code: int, reason: str) -> None:
        """Start the close handshake; the peer has `close_timeout` to answer."""
        transport = self.transport
        if self._closing or transport is None:
            return
        self._closing = True
        if self._ping is not None:
            self._ping.cancel()
        transport.send_close(code, reason.encode())  # type: ignore[arg-type]
        self._abort_later()

    def _fail(self, code: int, reason: str) -> None:
        """A broken rule: close frame, then end the TCP connection at once."""
        self._close(code, reason)
        if self.transport is not None:
            self.transport.disconnect()

    def _keepalive(self) -> None:
        transport = self.transport
        if transport is None or self._closing:
            return
        if self._awaiting_pong:
            self._fail(_KEEPALIVE, "keepalive ping timeout")
            return
        self._awaiting_pong = True
        transport.send_ping()
        self._start_keepalive()

    def _abort_later(self) -> None:
        asyncio.get_running_loop().call_later(self._close_timeout, self.abort)

    def abort(self) -> None:
        """Cut the TCP connection (no-op once it is gone)."""
        if self.transport is not None and not self.transport.is_disconnected:
            self.transport.disconnect(graceful=False)


class _Link(Frames):
    """One game socket and its session (None until it opens, and for a
    refused one). Output is written only while open and not paused."""

    def __init__(self, server: GameServer, accepted: Accepted, peer: str | None) -> None:
        super().__init__(server.service.config)
        self._server = server
        self._service = server.service
        self._stats = server.service.stats
        self._accepted = accepted
        self.peer = peer
        self.session: Session | None = None
        self._msg_type = WSMsgType.BINARY
        self._paused = False
        self._stuck: asyncio.TimerHandle | None = None

    def on_ws_connected(self, transport: WSTransport) -> None:
        self.transport = transport
        server, config = self._server, self._service.config
        raw = transport.underlying_transport
        raw.set_write_buffer_limits(high=config.write_limit_bytes)  # low: a quarter of it
        sock = raw.get_extra_info("socket")
        if config.send_buffer_bytes is not None and sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, config.send_buffer_bytes)
        server.live.add(self)
        if server.stopping:
            self._close(_GOING_AWAY, "server shutting down")
            return
        app, query = self._accepted.app, self._accepted.query
        try:
            session = self._service.open_session(
                app.app_id, query.get("client_id"), query.get("encoding"), query.get("resume_token")
            )
        except Refused as refused:
            self._close(refused.code, refused.reason)
            return
        self.session = session
        if not session.codec.binary:
            self._msg_type = WSMsgType.TEXT
        server.links[session] = self
        self._start_keepalive()
        self._stats.connections_opened += 1
        server.flush()  # `connected`, and the close of a session this one replaced
        log_open(app.app_id, session.client_id, self.peer)

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        for timer in (self._stuck, self._ping):
            if timer is not None:
                timer.cancel()
        server = self._server
        server.live.discard(self)
        session = self.session
        if session is None:
            return
        self.session = None
        handshake = transport.close_handshake
        received = handshake.recv if handshake is not None else None
        # 1000 is a client closing on purpose (the SDK's disconnect()):
        # its player leaves; any other end holds the seat for a reconnect.
        left = received is not None and _code(received.code) == 1000
        if server.links.get(session) is self:
            del server.links[session]
        self._service.close_session(session, left=left)
        server.flush()
        # What ended it: the peer's close, unless it was broken and we answered it.
        said = (
            received
            if received is not None and not self._refused_close
            else handshake and handshake.sent
        )
        code = _code(said.code) if said else 1006
        reason = _text(said.reason) if said else ""
        asked = session.close_request
        if asked is not None and asked[0] == CloseCode.SLOW_CONSUMER:
            self._stats.slow_consumer_closes += 1
        log_closed(session.app_id, session.client_id, code, reason)

    def pause_writing(self) -> None:
        """The transport's buffer passed the high-water mark: the socket is full."""
        self._paused = True
        if self._stuck is None and not self._closing:
            deadline = self._service.config.slow_consumer_deadline
            self._stuck = asyncio.get_running_loop().call_later(deadline, self._on_stuck)

    def resume_writing(self) -> None:
        """It drained below the low-water mark: send what waited meanwhile."""
        self._paused = False
        if self._stuck is not None:
            self._stuck.cancel()
            self._stuck = None
        self.wake()

    # Output -------------------------------------------------------------------

    def wake(self) -> None:
        """The session has output (or a close request): write it now unless the
        socket is full, in which case `resume_writing` will."""
        session, transport = self.session, self.transport
        if session is None or transport is None or self._closing or transport.is_close_frame_sent:
            return
        if self._paused:
            if session.close_request is not None:
                # Typically a slow consumer: the close frame waits behind the
                # backlog, and the TCP connection is cut if it is not taken in time.
                self._end(*session.close_request)
            return
        if session.behind:  # it takes data again: a snapshot, not the lost backlog
            self._service.caught_up(session)
        self._stats.messages_out += len(session.outbox)
        frame = session.take_frame()
        if frame is not None:
            self._stats.bytes_out += len(frame)
            transport.send(self._msg_type, frame)
        if session.close_request is not None:
            self._end(*session.close_request)

    def _end(self, code: int, reason: str) -> None:
        if code == CloseCode.RATE_LIMITED:
            # A flooder: stop reading what it still sends (picows would parse
            # every frame until the close handshake ends).
            self._fail(code, reason)
        else:
            self._close(code, reason)

    def _charge(self) -> bool:
        session = self.session
        if session is None or self._closing:
            return False
        allowed = self._service.charge_frame(session)
        if session.close_request is not None:
            self.wake()
        return allowed

    def _on_stuck(self) -> None:
        """The socket took nothing for the whole deadline: close 4008."""
        self._stuck = None
        if self.session is not None:
            self.session.close(CloseCode.SLOW_CONSUMER, "slow_consumer")
            self.wake()

    # Input --------------------------------------------------------------------

    def _deliver(self, data: bytes | str) -> None:
        session = self.session
        if session is None or self._closing:
            return  # refused, or on its way out: nothing more is handled
        self._stats.bytes_in += len(data)
        self._service.receive(session, data)
        self._server.flush()
        self._server.ticks.after_input()


class GameServer:
    """The picows transport; the same interface as `server.GameServer`."""

    def __init__(self, service: GameService, apps: AppStore, *, max_message_bytes: int) -> None:
        self.service = service
        config = service.config
        self.peers = PeerCount(config.max_connections_per_ip, config.refused_sockets_per_ip)
        self._gate = Gate(
            apps,
            max_request_line=config.max_request_line_bytes,
            peers=self.peers,
            max_token_lifetime=config.max_token_lifetime,
        )
        self._max_message_bytes = max_message_bytes
        self.links: dict[Session, _Link] = {}  # open sessions
        self.live: set[_Link] = set()  # every connected socket, refused ones too
        self.stopping = False
        self.ticks = TickTimer(service, self.flush)
        self._server: asyncio.Server | None = None

    # Lifecycle --------------------------------------------------------------

    async def start(self, host: str, port: int) -> int:
        """Listen; returns the port (useful with port 0)."""
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(self._protocol, host, port)
        return int(self._server.sockets[0].getsockname()[1])

    async def stop(self, timeout: float) -> None:
        """Stop accepting, close every room and connection (1001), and be done
        within `timeout` seconds: peers that have not taken their close by
        then are cut off."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        self.stopping = True
        self.ticks.close()
        if self._server is not None:
            self._server.close()  # stop listening; open connections live on
        self.service.shutdown()
        self.flush()
        waits = [
            asyncio.ensure_future(link.transport.wait_disconnected())
            for link in self.live
            if link.transport is not None
        ]
        if waits:
            await asyncio.wait(waits, timeout=max(0.0, deadline - loop.time() - 0.5))
        for link in list(self.live):
            link.abort()  # did not take the close in time
        if waits:
            await asyncio.wait(waits, timeout=max(0.1, deadline - loop.time()))
        if self._server is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._server.wait_closed(), max(0.1, deadline - loop.time()))

    def connection_count(self) -> int:
        """Open game connections (for /metrics)."""
        return len(self.links)

    def flush(self) -> None:
        for session in self.service.take_pending():
            link = self.links.get(session)
            if link is not None:
                link.wake()

    # Handshake ----------------------------------------------------------------

    def _protocol(self) -> WSProtocol:
        config = self.service.config
        protocol: WSProtocol

        def listener_for(
            request: WSUpgradeRequest,
        ) -> _Link | WSUpgradeResponseWithListener:
            peername = protocol.transport.underlying_transport.get_extra_info("peername")
            peer = str(peername[0]) if peername else None
            try:
                target = request.path.decode("ascii")
            except UnicodeDecodeError:
                return _refuse(NOT_ASCII)
            verdict = self._gate.check(target, collect_headers(request.headers.items()), peer)
            if isinstance(verdict, Accepted):
                return _Link(self, verdict, peer)
            return _refuse(verdict)

        protocol = new_protocol(listener_for, config, self._max_message_bytes, self.peers)
        return protocol


def new_protocol(
    listener_for: Any, config: Config, max_message_bytes: int, peers: PeerCount
) -> WSProtocol:
    """picows' server-side protocol for one socket, on our settings;
    `listener_for(request)` answers the upgrade request."""
    return _CountedProtocol(
        peers,
        None,  # host and port: a client's
        None,  # path: a client's
        False,  # server side
        listener_for,
        _picows_log,
        True,  # an exception in our callbacks closes the connection (1011)
        config.handshake_timeout,
        False,  # picows' keepalive closes with 1001; Frames pings itself (1011)
        config.ping_interval,
        config.ping_interval,
        WSAutoPingStrategy.PING_PERIODICALLY,
        False,  # pings: Frames answers them, within the connection's rate limit
        max_message_bytes,  # one frame over it: 1009
        None,  # extra response headers
        config.read_buffer_bytes,
    )


class _CountedProtocol(WSProtocol):
    """picows' protocol, counting its socket in `peers` from TCP accept to TCP
    close (asyncio calls connection_lost exactly once), like peers.py does for
    websockets; sockets far over the per-address cap are cut at once."""

    def __init__(self, peers: PeerCount, *args: Any) -> None:
        super().__init__(*args)
        self._peers = peers
        self._peer_ip = ""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._peer_ip = peer_ip(transport.get_extra_info("peername"))
        super().connection_made(transport)
        if not self._peers.add(self._peer_ip):
            transport.abort()  # type: ignore[attr-defined]  # connection_lost releases it

    def connection_lost(self, exc: Exception | None) -> None:
        self._peers.release(self._peer_ip)
        super().connection_lost(exc)


def _close_payload_error(payload: bytes) -> tuple[int, str] | None:
    """What is wrong with a peer's close frame (RFC 6455 5.5.1, 7.4), as the
    close code and reason to answer with; None when it may be echoed."""
    if not payload:
        return None  # no status code: fine
    if len(payload) == 1:
        return _PROTOCOL_ERROR, "close frame with a 1-byte payload"
    code = int.from_bytes(payload[:2], "big")
    if not (1000 <= code <= 1014 and code not in (1004, 1005, 1006)) and not 3000 <= code <= 4999:
        return _PROTOCOL_ERROR, f"invalid close code {code}"
    try:
        payload[2:].decode()
    except UnicodeDecodeError:
        return _INVALID_TEXT, "close reason is not UTF-8"
    return None


def _text(reason: object) -> str:
    """A close reason as text (picows may give bytes)."""
    if isinstance(reason, bytes):
        return reason.decode("utf-8", "replace")
    return str(reason or "")


def _code(code: object) -> int:
    """A close code as an int (picows gives a WSCloseCode, or an int for 3000-4999)."""
    return int(code)  # type: ignore[call-overload]


def _refuse(refusal: Refusal) -> WSUpgradeResponseWithListener:
    response = WSUpgradeResponse.create_error_response(
        refusal.status,
        refusal.body.encode(),
        extra_headers={"Content-Type": "text/plain; charset=utf-8", **dict(refusal.headers)},
    )
    return WSUpgradeResponseWithListener(response, None)
