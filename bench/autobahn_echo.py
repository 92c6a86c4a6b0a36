"""An echo server on the game server's WebSocket settings, for the Autobahn cases.

    python bench/autobahn_echo.py [--port 9001] [--max-message-bytes N]

Autobahn's fuzzing client (run here by `kosoku`) sends frames and expects
them echoed; the game endpoint answers with game messages instead, so it
cannot be tested as it is. This serves every path with an echo handler on the
same uvloop loop and the same `serve` arguments as gameserver/net/server.py
(`socket_options`: 64 KiB max message, no compression, the same ping and close
timeouts), so what the cases find is what our socket layer does.
docs/reliability.md ("WebSocket conformance") has the command and the results.
"""

from __future__ import annotations

import argparse

import uvloop
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from gameserver.config import Config
from gameserver.net.server import socket_options


async def echo(ws: ServerConnection) -> None:
    try:
        async for message in ws:
            await ws.send(message)
    except ConnectionClosed:
        pass


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9001)
    parser.add_argument(
        "--max-message-bytes",
        type=int,
        default=Config().max_message_bytes,
        help="only to show which failures are the size limit (the 9.x cases send up to 16 MiB)",
    )
    args = parser.parse_args()
    options = socket_options(Config(), args.max_message_bytes)
    async with serve(echo, args.host, args.port, **options) as server:
        port = server.sockets[0].getsockname()[1]
        print(f"echo server on ws://{args.host}:{port} (game server socket settings)", flush=True)
        await server.serve_forever()


if __name__ == "__main__":
    uvloop.run(main())
