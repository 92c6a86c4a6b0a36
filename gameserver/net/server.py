"""The socket side: WebSocket connections in, frames out, tick timers.

This module (with peers.py, which counts sockets per address) is the only
code that touches asyncio and websockets. It owns no game rules: it hands
each frame to the GameService, runs the service's ticks when their deadline
comes, and writes out what the service queued. Frames go
straight into the socket while it takes them; once it does not, one writer
task per connection waits for it, keeping frames in order, so a slow reader
stalls only itself (its outbox in the Session is bounded, and a socket that
stays full for `slow_consumer_deadline` is closed with 4008).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from typing import Any

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.frames import Frame, Opcode
from websockets.http11 import Request, Response
from websockets.protocol import State

from gameserver.config import Config
from gameserver.net.handshake import WS_PATH, Accepted, Gate, collect_headers, parse_query
from gameserver.net.lifecycle import log_closed, log_open
from gameserver.net.peers import PeerCount, peer_ip
from gameserver.net.ticks import TickTimer
from gameserver.service import GameService, Refused
from gameserver.session import CloseCode, Session
from gameserver.storage import AppStore

__all__ = ["GameServer", "WS_PATH", "socket_options"]


def socket_options(config: Config, max_message_bytes: int) -> dict[str, Any]:
    """How our websockets layer is set up (`serve` arguments). One place, so
    that bench/autobahn_echo.py tests exactly the socket layer we run."""
    return {
        "max_size": max_message_bytes,
        # Off: encode once, send the same bytes to every member. "deflate":
        # websockets compresses each frame again per connection.
        "compression": "deflate" if config.compression == "deflate" else None,
        "server_header": None,
        "ping_interval": config.ping_interval,
        "ping_timeout": config.ping_interval,
        "open_timeout": config.handshake_timeout,
        "close_timeout": config.close_timeout,
        "write_limit": config.write_limit_bytes,
        "logger": logging.getLogger("gameserver.websockets"),
    }


_CHARGED = (Opcode.PING, Opcode.PONG, Opcode.CONT)


class _Link:
    """One accepted socket and its session; `wake()` after the session got output."""

    def __init__(
        self,
        ws: ServerConnection,
        session: Session,
        service: GameService,
    ) -> None:
        self.ws = ws
        self._service = service
        self._stats = service.stats
        self._close_timeout = service.config.close_timeout
        self._deadline = service.config.slow_consumer_deadline
        self.session = session
        self._ready = asyncio.Event()
        self._text = not session.codec.binary
        self.sending = False  # the writer waits for the socket to take a frame
        self._closing = False
        self.writer = asyncio.get_running_loop().create_task(self._write())

    def wake(self) -> None:
        """The session has output: write it now if the socket takes it, else
        let the writer task wait for the socket (flow control)."""
        asked = self.session.close_request
        if asked is not None and asked[0] == CloseCode.RATE_LIMITED:
            self._cut(*asked)
            return
        if not self.sending and self.session.close_request is None and self._write_now():
            return
        if self.sending and self.session.close_request is not None and not self._closing:
            # The client stopped reading and the session wants it gone (slow
            # consumer): close now rather than after a backlog that never drains.
            self._closing = True
            code, reason = self.session.close_request
            loop = asyncio.get_running_loop()
            loop.create_task(self.ws.close(code, reason))
            # The close frame waits behind the backlog too: cut the TCP
            # connection if the peer has not taken it within the close timeout.
            loop.call_later(self._close_timeout, self.ws.transport.abort)
        self._ready.set()

    def _cut(self, code: int, reason: str) -> None:
        """A flooder: its last replies and a close frame, then the socket
        closes at once: nothing more it sends is read (websockets would parse
        every frame until the close handshake ends)."""
        if self._closing:
            return
        self._closing = True
        ws = self.ws
        if ws.protocol.state is State.OPEN:
            frame = None if self.sending else self._take_frame()
            if frame is not None:
                self._put(frame)
            ws.protocol.send_close(code, reason)
            ws.send_data()
        ws.transport.close()
        asyncio.get_running_loop().call_later(self._close_timeout, ws.transport.abort)
        self._ready.set()

    def charge_frames(self) -> None:
        """Pings, pongs and fragments cost the connection's rate limit like
        messages (websockets answers pings inside its protocol: wrap it)."""
        protocol, session, service = self.ws.protocol, self.session, self._service
        receive = protocol.recv_frame

        def recv_frame(frame: Frame) -> None:
            if frame.opcode in _CHARGED:
                allowed = service.charge_frame(session)
                if session.close_request is not None:
                    self.wake()
                if not allowed and frame.opcode is not Opcode.CONT:
                    return  # dropped: a ping over the limit gets no pong
            receive(frame)

        protocol.recv_frame = recv_frame  # type: ignore[method-assign]

    def _write_now(self) -> bool:
        """Write the session's frame straight into the transport when its buffer
        has room: no task switch per frame, which is most of the cost of a send.
        (`protocol` is websockets' sans-I/O protocol; `send_data` flushes it.)"""
        ws = self.ws
        transport = ws.transport
        if (
            ws.protocol.state is not State.OPEN
            or transport.get_write_buffer_size() > ws.write_limit_high
        ):
            return False
        if self.session.behind:  # it takes data again: a snapshot, not the lost backlog
            self._service.caught_up(self.session)
        frame = self._take_frame()
        if frame is not None:
            self._put(frame)
            ws.send_data()
        return True

    def _put(self, frame: bytes) -> None:
        """Into websockets' protocol buffer; `ws.send_data()` writes it out."""
        if self._text:
            self.ws.protocol.send_text(frame)
        else:
            self.ws.protocol.send_binary(frame)

    def _stuck(self) -> None:
        """The socket took nothing for the whole deadline: close 4008."""
        self.session.close(CloseCode.SLOW_CONSUMER, "slow_consumer")
        self.wake()

    def _take_frame(self) -> bytes | None:
        """The session's next frame, counted (per frame, not per message)."""
        stats = self._stats
        stats.messages_out += len(self.session.outbox)
        frame = self.session.take_frame()
        if frame is not None:
            stats.bytes_out += len(frame)
        return frame

    async def _write(self) -> None:
        session, ws = self.session, self.ws
        loop = asyncio.get_running_loop()
        try:
            while True:
                await self._ready.wait()
                self._ready.clear()
                if session.behind:
                    self._service.caught_up(session)
                frame = self._take_frame()
                if frame is not None:
                    self.sending = True
                    stuck = loop.call_later(self._deadline, self._stuck)
                    await ws.send(frame, text=self._text)
                    stuck.cancel()
                    self.sending = False
                if session.close_request is not None and not session.outbox:
                    code, reason = session.close_request
                    await ws.close(code, reason)
                    return
        except ConnectionClosed:
            pass


class GameServer:
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
        self._links: dict[Session, _Link] = {}
        self._server: Server | None = None
        self.ticks = TickTimer(service, self.flush)

    # Lifecycle --------------------------------------------------------------

    async def start(self, host: str, port: int) -> int:
        """Listen; returns the port (useful with port 0)."""
        self._server = await serve(
            self._handle,
            host,
            port,
            process_request=self._check_handshake,
            create_connection=counted_connection(self.peers),
            **socket_options(self.service.config, self._max_message_bytes),
        )
        return int(self._server.sockets[0].getsockname()[1])

    async def stop(self, timeout: float) -> None:
        """Stop accepting, close every room and connection (1001), and be done
        within `timeout` seconds: peers that have not taken their close by
        then are cut off."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        self.ticks.close()
        if self._server is not None:
            self._server.close(close_connections=False)
        self.service.shutdown()
        self.flush()
        writers = [link.writer for link in self._links.values()]
        if writers:
            await asyncio.wait(writers, timeout=max(0.0, deadline - loop.time() - 0.5))
        for link in list(self._links.values()):
            link.ws.transport.abort()  # did not take the close in time
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._server.wait_closed(), max(0.1, deadline - loop.time()))

    def connection_count(self) -> int:
        """Open game connections (for /metrics)."""
        return len(self._links)

    # Handshake and connection ---------------------------------------------------

    def _check_handshake(self, ws: ServerConnection, request: Request) -> Response | None:
        # (A request line over 8 KiB never gets here: websockets answers 414 itself.)
        verdict = self._gate.check(
            request.path, collect_headers(request.headers.raw_items()), _peer(ws)
        )
        if isinstance(verdict, Accepted):
            return None
        response = ws.respond(verdict.status, verdict.body)
        for name, value in verdict.headers:
            response.headers[name] = value
        return response

    async def _handle(self, ws: ServerConnection) -> None:
        request = ws.request
        assert request is not None
        query = parse_query(request.path)
        app = self._gate.app_for(collect_headers(request.headers.raw_items()), query)
        if app is None:  # the key vanished between handshake and now
            await ws.close(4001, "unauthorized")
            return
        try:
            session = self.service.open_session(
                app.app_id, query.get("client_id"), query.get("encoding"), query.get("resume_token")
            )
        except Refused as refused:
            await ws.close(refused.code, refused.reason)
            return
        sock = ws.transport.get_extra_info("socket")
        if self.service.config.send_buffer_bytes is not None and sock is not None:
            sock.setsockopt(
                socket.SOL_SOCKET, socket.SO_SNDBUF, self.service.config.send_buffer_bytes
            )
        stats = self.service.stats
        stats.connections_opened += 1
        link = self._links[session] = _Link(ws, session, self.service)
        link.charge_frames()
        self.flush()  # `connected`, and the close of a session this one replaced
        log_open(app.app_id, session.client_id, _peer(ws))
        try:
            async for data in ws:
                stats.bytes_in += len(data)
                self.service.receive(session, data)
                self.flush()
                self.ticks.after_input()
        except ConnectionClosed:
            pass
        finally:
            closed = ws.protocol.close_rcvd
            # 1000 is a client closing on purpose (the SDK's disconnect()):
            # its player leaves; any other end holds the seat for a reconnect.
            self.service.close_session(session, left=closed is not None and closed.code == 1000)
            self.flush()
            self._links.pop(session, None)
            link.wake()  # let the writer see the socket is closed
            link.writer.cancel()
            asked = session.close_request
            if asked is not None and asked[0] == CloseCode.SLOW_CONSUMER:
                stats.slow_consumer_closes += 1
            # What the peer said, else what we said (a cut connection: 1006).
            said = ws.protocol.close_rcvd or ws.protocol.close_sent
            log_closed(
                app.app_id,
                session.client_id,
                said.code if said else 1006,
                said.reason if said else "",
            )

    def flush(self) -> None:
        for session in self.service.take_pending():
            link = self._links.get(session)
            if link is not None:
                link.wake()


def counted_connection(peers: PeerCount) -> type[ServerConnection]:
    """A websockets connection class that keeps `peers` up to date."""

    class CountedConnection(ServerConnection):
        peer_ip = ""

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            super().connection_made(transport)
            self.peer_ip = peer_ip(transport.get_extra_info("peername"))
            if not peers.add(self.peer_ip):
                self.transport.abort()  # connection_lost follows and releases it

        def connection_lost(self, exc: Exception | None) -> None:
            peers.release(self.peer_ip)
            super().connection_lost(exc)

    return CountedConnection


def _peer(ws: ServerConnection) -> str | None:
    try:
        return str(ws.remote_address[0])
    except Exception:
        return None
