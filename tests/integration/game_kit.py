"""Helpers for tests that follow a client's version chain."""

from __future__ import annotations

import asyncio

from gameserver.client import GameClient


def chain_of(client: GameClient) -> list[tuple[int, int]]:
    """(fromVersion, toVersion) of every delta the client applied, via onDelta."""
    seen: list[tuple[int, int]] = []
    client.on("onDelta", lambda d: seen.append((d["fromVersion"], d["toVersion"])))
    return seen


def assert_unbroken(chain: list[tuple[int, int]]) -> None:
    assert chain, "no delta applied"
    for (_, before), (after, _) in zip(chain, chain[1:], strict=False):
        assert after == before, f"gap or duplicate in {chain}"


async def same_state(a: GameClient, b: GameClient) -> None:
    """Both clients reach the same version with the same state."""

    async def settled() -> None:
        while a.state is None or b.state is None or a.state["version"] != b.state["version"]:
            await asyncio.sleep(0.005)

    await asyncio.wait_for(settled(), 5)
    assert a.state is not None and b.state is not None
    assert a.state["state"] == b.state["state"]


async def arena_host(server, room_id: str = "r", **client_options) -> GameClient:
    """A connected client in a new `arena` room of its own."""
    host = server.client("host", **client_options)
    await host.connect()
    await host.create_room(room_id=room_id, script_name="arena")
    return host


def drop(client: GameClient) -> asyncio.Future[None]:
    """Cut the client's TCP connection (no close frame, as when a network
    drops); the future is done when it is back (its next onConnect)."""
    back = asyncio.get_running_loop().create_future()
    client.on("onConnect", lambda: back.done() or back.set_result(None))
    client._ws.transport.abort()
    return back
