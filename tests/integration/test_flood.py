"""One client floods while another room ticks: the room keeps its rate, the
flooder is rate-limited and closed, over and over.

Client and server share one event loop here, so the flooder's sending costs
the server's loop time too: if the room holds 64 deltas a second under that,
it holds them against a remote flooder as well.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed
from websockets.protocol import State

FLOOD_SECONDS = 3.0
MESSAGES_PER_SECOND = 1000
SLOT = 0.01  # the flooder sends every 10 ms: 10 messages a slot
PER_SLOT = round(MESSAGES_PER_SECOND * SLOT)


def flood_messages(n: int) -> list[dict]:
    """A mix of what a real client sends: actions, chat, pings."""
    out: list[dict] = []
    for i in range(n):
        kind = i % 3
        if kind == 0:
            out.append({"type": "action", "action": {"type": "spam", "data": {"i": i}}})
        elif kind == 1:
            out.append({"type": "chat", "message": f"spam {i}"})
        else:
            out.append({"type": "ping", "clientTime": i})
    return out


async def flood_one_connection(server, n: int, batched: bool, until: float) -> int | None:
    """Flood from a new connection until it is closed or `until`; its close code."""
    flooder = server.client(f"flooder-{n}")
    await flooder.connect()
    await flooder.create_room(room_id=f"flood-{n}")
    slot = time.monotonic()
    try:
        while flooder.is_connected and time.monotonic() < until:
            messages = flood_messages(PER_SLOT)
            if batched:
                await flooder.send(messages)  # one frame of 10
            else:
                for message in messages:  # 10 frames of one
                    await flooder.send(message)
            slot += SLOT
            await asyncio.sleep(max(0.0, slot - time.monotonic()))
    except (ConnectionClosed, ConnectionError):
        pass
    if not flooder.is_connected:
        code = await flooder.wait_closed()
        assert {m["code"] for m in flooder.received("error")} == {"rate_limited"}
        return code
    await flooder.disconnect()
    return None


async def test_a_flooder_is_closed_again_and_again_while_a_room_keeps_64_deltas_a_second(
    server, clients
):
    (observer,) = await clients("observer")
    await observer.create_room(room_id="arena", script_name="arena", tick_rate=64)
    await observer.wait_until(lambda s: s.get("tick", 0) >= 5)
    deltas: list[tuple[float, int, int]] = []  # (received at, tick, toVersion)
    observer.on("onDelta", lambda d: deltas.append((time.monotonic(), d["tick"], d["toVersion"])))

    started = time.monotonic()
    until = started + FLOOD_SECONDS
    codes = []
    n = 0
    while time.monotonic() < until:
        # Alternate single-message frames and batched frames, one connection each.
        code = await flood_one_connection(server, n, batched=n % 2 == 1, until=until)
        if code is not None:
            codes.append(code)
        n += 1
    window = [d for d in deltas if d[0] <= until]

    # The flooders: each got `rate_limited` (checked above), then 4029. At 1000
    # messages a second against 60 (bursts of 120, 600 drops forgiven) one lasts
    # under a second, so a 3 s flood meets several closes, of both frame kinds.
    assert len(codes) >= 2 and set(codes) == {4029}, codes

    # The room: one delta per tick, no tick skipped, versions unbroken...
    first, last = window[0], window[-1]
    assert observer.resyncs == 0
    assert [v for _, _, v in window] == list(range(first[2], first[2] + len(window)))
    ticks = last[1] - first[1]
    assert len(window) - 1 >= 0.95 * ticks, (len(window), ticks)
    # ...and the ticks came at 64 a second of wall time, within 5 % (counted
    # over the whole window: one late frame moves the figure by well under 1 %).
    rate = ticks / (last[0] - first[0])
    assert abs(rate - 64) <= 0.05 * 64, rate


@pytest.mark.parametrize("kind", ["ping", "pong", "fragment"])
async def test_a_flood_of_frames_without_messages_is_closed_4029_while_a_room_ticks(
    server, clients, kind
):
    # Pings, unsolicited pongs and empty fragments carry no message, but each
    # costs the server a frame's work: they count against the rate limit.
    (observer,) = await clients("observer")
    await observer.create_room(room_id="arena", script_name="arena", tick_rate=64)
    await observer.wait_until(lambda s: s.get("tick", 0) >= 5)
    ticks: list[tuple[float, int]] = []
    observer.on("onDelta", lambda d: ticks.append((time.monotonic(), d["tick"])))

    url = f"{server.url}?public_key={server.public_key}&client_id=flooder"
    started = time.monotonic()
    async with connect(url) as ws:
        protocol = ws.protocol
        if kind == "fragment":
            protocol.send_binary(b"", fin=False)  # a message that never ends
        send = {
            "ping": lambda: protocol.send_ping(b""),
            "pong": lambda: protocol.send_pong(b""),
            "fragment": lambda: protocol.send_continuation(b"", fin=False),
        }[kind]
        with contextlib.suppress(Exception):  # sending into a closed socket
            while protocol.state is State.OPEN and time.monotonic() - started < 3:
                for _ in range(500):
                    send()
                ws.send_data()
                await asyncio.sleep(0)
        await asyncio.wait_for(ws.wait_closed(), 5)
        assert ws.close_code == 4029 and ws.close_reason == "rate_limited"
    flooded = time.monotonic() - started
    assert flooded < 2, flooded  # closed within about 720 frames, not after the 3 s
    await asyncio.sleep(0.3)

    # The room ticked on at 64 a second through the flood.
    window = [t for t in ticks if t[0] >= started]
    assert observer.resyncs == 0
    rate = (window[-1][1] - window[0][1]) / (window[-1][0] - window[0][0])
    assert abs(rate - 64) <= 0.1 * 64, rate
