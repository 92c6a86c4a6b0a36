"""bench/roomtick.py measures what docs/performance.md says it does: every
tick group, each room takes its moves, ticks, and sends every member one
delta; the Lua time it reports is the service's own."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
import roomtick  # noqa: E402


def test_each_tick_group_moves_players_and_sends_every_member_a_delta():
    service, tick_group = roomtick.arena_tick_group(2)
    rooms = [service.directory.get("app", f"r{r}") for r in range(2)]
    versions = [room.version for room in rooms]
    sent = {}
    real_take = service.take_pending

    def counting_take():
        pending = real_take()
        for session in pending:
            sent[session.client_id] = sent.get(session.client_id, 0) + 1
        return pending

    service.take_pending = counting_take
    lua_before = service.stats.script_seconds
    for _ in range(10):
        tick_group()
    assert [room.version for room in rooms] == [v + 10 for v in versions]
    assert sent == {f"p{r}-{i}": 10 for r in range(2) for i in range(8)}
    moved = [p for room in rooms for p in room.state["players"].values() if p["x"] != 0]
    assert len(moved) >= 6  # 3 moves a room-tick reach the state
    assert service.stats.script_seconds > lua_before
