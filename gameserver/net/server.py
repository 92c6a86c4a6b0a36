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
import time
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response
from websockets.protocol import State

from gameserver import identity
from gameserver.config import REQUIRE_SIGNED_CLIENT_ID, Config
from gameserver.net.peers import PeerCount, counted_connection
from gameserver.service import GameService, Refused
from gameserver.session import CloseCode, Session
from gameserver.storage import App, AppStore

__all__ = ["GameServer", "WS_PATH", "socket_options"]

log = logging.getLogger("gameserver.net")

WS_PATH = "/v1/game/ws"
# uvloop timers may fire up to ~1.2 ms early; wake this much before a tick
# deadline and finish the wait with a short precise sleep, so ticks are never early.
_EARLY_WAKE = 0.0015


def _query(path: str) -> dict[str, str]:
    """The query parameters; raises UnicodeDecodeError when one is not UTF-8
    (replacing bad bytes would let different client ids collide)."""
    query = urlsplit(path).query
    return {k: v[0] for k, v in parse_qs(query, keep_blank_values=True, errors="strict").items()}


def socket_options(config: Config, max_message_bytes: int) -> dict[str, Any]:
    """How our WebSocket layer is set up (websockets' `serve` arguments). One
    place, so that bench/autobahn_echo.py tests exactly the socket layer we run."""
    return {
        "max_size": max_message_bytes,
        "compression": None,  # encode once, send the same bytes to every member
        "server_header": None,
        "ping_interval": config.ping_interval,
        "ping_timeout": config.ping_interval,
        "close_timeout": config.close_timeout,
        "logger": logging.getLogger("gameserver.websockets"),
    }


class _AppKeys:
    """Public key → app, with a small cache in front of the store."""

    def __init__(self, store: AppStore) -> None:
        self._store = store
        self._cache: dict[str, App] = {}

    def lookup(self, headers: Headers, query: dict[str, str]) -> App | None:
        key = query.get("public_key") or headers.get("X-Public-Key") or ""
        if not key.startswith("cb_pk_") or len(key) > 256:
            return None
        app = self._cache.get(key)
        if app is None:
            app = self._store.app_by_public_key(key)
            if app is not None:
                self._cache[key] = app
        return app

    def token_refusal(self, app: App, query: dict[str, str], max_lifetime: int) -> str | None:
        """Why the handshake's client id is not vouched for, when the app asks
        for signed client ids (read per handshake: the admin API may turn it on)."""
        if not self._store.settings(app.app_id).get(REQUIRE_SIGNED_CLIENT_ID):
            return None
        key = self._store.signing_key(app.app_id)
        if key is None:  # only apps from before signing keys, never turned on through the API
            return "this app requires signed client ids but has no signing key yet"
        return identity.token_refusal(
            key,
            query.get("client_id", ""),
            query.get("token"),
            now=time.time(),
            max_lifetime=max_lifetime,
        )


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
            if self._text:
                ws.protocol.send_text(frame)
            else:
                ws.protocol.send_binary(frame)
            ws.send_data()
        return True

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
        self._keys = _AppKeys(apps)
        self._max_message_bytes = max_message_bytes
        self._links: dict[Session, _Link] = {}
        config = service.config
        self.peers = PeerCount(config.max_connections_per_ip, config.refused_sockets_per_ip)
        self._server: Server | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._armed_for: float | None = None

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
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
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
        if urlsplit(request.path).path != WS_PATH:
            return ws.respond(HTTPStatus.NOT_FOUND, f"the game endpoint is {WS_PATH}\n")
        if self.peers.over_cap(getattr(ws, "peer_ip", "?")):
            return ws.respond(
                HTTPStatus.TOO_MANY_REQUESTS, "too many connections from this address\n"
            )
        try:
            query = _query(request.path)
        except UnicodeDecodeError:
            return ws.respond(HTTPStatus.BAD_REQUEST, "query parameters must be UTF-8\n")
        app = self._keys.lookup(request.headers, query)
        if app is None:
            return ws.respond(HTTPStatus.UNAUTHORIZED, "missing or unknown public key\n")
        refusal = self._keys.token_refusal(app, query, self.service.config.max_token_lifetime)
        if refusal is not None:
            return ws.respond(HTTPStatus.UNAUTHORIZED, refusal + "\n")
        return None

    async def _handle(self, ws: ServerConnection) -> None:
        request = ws.request
        assert request is not None
        query = _query(request.path)
        app = self._keys.lookup(request.headers, query)
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
        self.flush()  # `connected`, and the close of a session this one replaced
        peer = _peer(ws)
        log.info(
            "connection open app=%s client=%s peer=%s",
            app.app_id,
            session.client_id,
            peer,
            extra={
                "event": "connection_open",
                "app": app.app_id,
                "client": session.client_id,
                "peer": peer,
            },
        )
        try:
            async for data in ws:
                stats.bytes_in += len(data)
                self.service.receive(session, data)
                self.flush()
                self._arm()
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
            log.info(
                "connection closed app=%s client=%s code=%s reason=%s",
                app.app_id,
                session.client_id,
                ws.close_code,
                ws.close_reason or "",
                extra={
                    "event": "connection_closed",
                    "app": app.app_id,
                    "client": session.client_id,
                    "code": ws.close_code,
                    "reason": ws.close_reason or "",
                },
            )

    def flush(self) -> None:
        for session in self.service.take_pending():
            link = self._links.get(session)
            if link is not None:
                link.wake()

    # Ticks ------------------------------------------------------------------

    def _arm(self) -> None:
        """(Re)arm the tick timer for the service's next deadline."""
        deadline = self.service.next_deadline()
        if deadline is None or (self._armed_for is not None and self._armed_for <= deadline):
            return
        if self._timer is not None:
            self._timer.cancel()
        self._armed_for = deadline
        delay = max(0.0, deadline - time.monotonic() - _EARLY_WAKE)
        self._timer = asyncio.get_running_loop().call_later(delay, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._armed_for = None
        deadline = self.service.next_deadline()
        if deadline is not None:
            remaining = deadline - time.monotonic()
            if remaining > _EARLY_WAKE:
                # The loop's cached clock was stale when the timer was set: wait again.
                self._arm()
                return
            if remaining > 0:
                time.sleep(remaining)  # at most 1.5 ms: the precise end of the wait
            self.service.run_ticks(time.monotonic())
            self.flush()
        self._arm()


def _peer(ws: ServerConnection) -> Any:
    try:
        return ws.remote_address[0]
    except Exception:
        return "?"
