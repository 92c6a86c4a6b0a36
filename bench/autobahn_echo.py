"""An echo server on the game server's socket layer, for the Autobahn cases.

    python bench/autobahn_echo.py [--port 9001] [--transport picows|websockets]
                                  [--max-message-bytes N]

Autobahn's fuzzing client (run here by `kosoku`) sends frames and expects
them echoed; `gameserver.net.echo` serves an echo on exactly the socket layer
the game server runs (its settings and frame rules), so what the cases find
is what our socket layer does. docs/reliability.md ("WebSocket conformance")
has the command and the results.
"""

from __future__ import annotations

import argparse
import asyncio

import uvloop

from gameserver.config import Config
from gameserver.net.echo import start_echo


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9001)
    parser.add_argument("--transport", choices=("picows", "websockets"), default="picows")
    parser.add_argument(
        "--max-message-bytes",
        type=int,
        default=Config().max_message_bytes,
        help="only to show which failures are the size limit (the 9.x cases send up to 16 MiB)",
    )
    args = parser.parse_args()
    config = Config(max_message_bytes=args.max_message_bytes)
    server = await start_echo(args.transport, args.host, args.port, config)
    port = server.sockets[0].getsockname()[1]
    print(f"echo server on ws://{args.host}:{port} ({args.transport}, our settings)", flush=True)
    await asyncio.Event().wait()  # until killed


if __name__ == "__main__":
    uvloop.run(main())
