"""The Autobahn TestSuite's protocol cases (run by `kosoku`) against our socket layer.

Autobahn's fuzzing client expects an echo server, so this serves an echo
handler with the game server's own `serve` settings (`socket_options`: the
64 KiB message cap, no compression, its ping and close timeouts) on the
test's uvloop loop. Left out here: 9.* (messages up to 16 MiB, over our cap
by design, plus throughput), 12.* and 13.* (permessage-deflate, which we turn
off). docs/reliability.md ("WebSocket conformance") has the whole run and what each result means.
"""

from __future__ import annotations

import kosoku
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from gameserver.config import Config
from gameserver.net.server import socket_options

# The one MUST-level failure, and why it is not ours to fix: a close frame in
# the middle of a fragmented message. websockets fails the connection with
# 1002 "incomplete fragmented message"; Autobahn wants a clean 1000. The peer
# was closing anyway; either way the connection ends.
KNOWN_FAILURES = {"7.1.5"}
ACCEPTABLE = {"OK", "NON-STRICT", "INFORMATIONAL"}


async def echo(ws: ServerConnection) -> None:
    try:
        async for message in ws:
            await ws.send(message)
    except ConnectionClosed:
        pass


async def test_autobahn_protocol_cases_against_our_socket_settings():
    config = Config()
    async with serve(
        echo, "127.0.0.1", 0, **socket_options(config, config.max_message_bytes)
    ) as server:
        port = server.sockets[0].getsockname()[1]
        try:
            results = await kosoku.run_fuzzingclient(
                f"ws://127.0.0.1:{port}", exclude_cases=["9.*", "12.*", "13.*"], concurrency=8
            )
        except kosoku.FailureError as failure:
            results = failure.results
    verdicts = {r.case_id: r.behavior.value for r in results}
    assert len(verdicts) == 247  # kosoku 0.1.0's cases less 9, 12 and 13
    failed = {case for case, verdict in verdicts.items() if verdict not in ACCEPTABLE}
    assert failed == KNOWN_FAILURES, {case: verdicts[case] for case in failed}
