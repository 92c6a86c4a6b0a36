"""The Autobahn TestSuite's protocol cases (run by `kosoku`) against our socket layer.

Autobahn's fuzzing client expects an echo server, so this serves an echo on
each transport's own socket layer (`gameserver.net.echo`: the game server's
settings and frame rules) on the test's uvloop loop. Left out here: 9.*
(messages up to 16 MiB, over our cap by design, plus throughput), 12.* and
13.* (permessage-deflate, which we turn off). docs/reliability.md ("WebSocket
conformance") has the whole run and what each result means.
"""

from __future__ import annotations

import kosoku
import pytest

from gameserver.config import Config
from gameserver.net.echo import start_echo

# The one MUST-level failure of each library, and why it is not ours to fix.
# Each may pass on a given run (7.1.2 needs both close frames in one read);
# any other failure fails the test.
KNOWN_FAILURES = {
    # A close frame in the middle of a fragmented message: websockets fails
    # the connection with 1002 "incomplete fragmented message"; Autobahn wants
    # a clean 1000. The peer was closing anyway; either way the connection ends.
    "websockets": {"7.1.5"},
    # Two close frames in one read: picows' parser refuses the second (1002,
    # "Received CLOSE for the second time") before our echo of the first goes
    # out. Again the peer was closing.
    "picows": {"7.1.2"},
}
ACCEPTABLE = {"OK", "NON-STRICT", "INFORMATIONAL"}


@pytest.mark.parametrize("transport", ["picows", "websockets"])
async def test_autobahn_protocol_cases_against_our_socket_layer(transport):
    server = await start_echo(transport, "127.0.0.1", 0, Config())
    port = server.sockets[0].getsockname()[1]
    try:
        results = await kosoku.run_fuzzingclient(
            f"ws://127.0.0.1:{port}", exclude_cases=["9.*", "12.*", "13.*"], concurrency=8
        )
    except kosoku.FailureError as failure:
        results = failure.results
    finally:
        server.close()
    verdicts = {r.case_id: r.behavior.value for r in results}
    assert len(verdicts) == 247  # kosoku 0.1.0's cases less 9, 12 and 13
    failed = {case for case, verdict in verdicts.items() if verdict not in ACCEPTABLE}
    assert failed <= KNOWN_FAILURES[transport], {case: verdicts[case] for case in failed}
