"""Echo servers on our own socket layers, for the Autobahn conformance cases.

Autobahn's fuzzing client sends frames and expects them echoed; the game
endpoint answers with game messages instead. These serve an echo on exactly
what the game server runs: for websockets the same `serve` arguments
(`server.socket_options`), for picows the same protocol settings and the same
frame rules (`picows_server.Frames`: reassembly, size cap, UTF-8, closing,
keepalive) with an echo in place of the game. bench/autobahn_echo.py runs one
by hand; tests/integration/test_autobahn.py runs the cases against both.
"""

from __future__ import annotations

import asyncio

from picows import WSMsgType, WSTransport, WSUpgradeRequest
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from gameserver.config import Config
from gameserver.net.peers import PeerCount
from gameserver.net.picows_server import Frames, new_protocol
from gameserver.net.server import socket_options

__all__ = ["start_echo"]


class _Echo(Frames):
    """Each whole message straight back, as it came (text or binary)."""

    def on_ws_connected(self, transport: WSTransport) -> None:
        self.transport = transport
        self._start_keepalive()

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        if self._ping is not None:
            self._ping.cancel()

    def _deliver(self, data: bytes | str) -> None:
        if self.transport is None or self._closing:
            return
        if isinstance(data, str):
            self.transport.send(WSMsgType.TEXT, data.encode())
        else:
            self.transport.send(WSMsgType.BINARY, data)


async def _echo(ws: ServerConnection) -> None:
    try:
        async for message in ws:
            await ws.send(message)
    except ConnectionClosed:
        pass


async def start_echo(transport: str, host: str, port: int, config: Config) -> asyncio.Server:
    """Listen with an echo on `transport`'s socket layer; close the returned server to stop."""
    if transport == "websockets":
        server = await serve(_echo, host, port, **socket_options(config, config.max_message_bytes))
        return server  # type: ignore[return-value]  # it has the same close/sockets interface
    peers = PeerCount(0, 0)  # no per-address cap: the fuzzing client opens many sockets

    def listener_for(request: WSUpgradeRequest) -> _Echo:
        return _Echo(config)

    loop = asyncio.get_running_loop()
    return await loop.create_server(
        lambda: new_protocol(listener_for, config, config.max_message_bytes, peers), host, port
    )
