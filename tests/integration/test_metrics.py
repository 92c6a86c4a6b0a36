"""`GET /metrics` on the admin port, scraped over real HTTP and parsed as Prometheus does."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from gameserver.client import GameError


async def scrape(server) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of /metrics: (name, sorted labels) → value."""
    url = f"http://127.0.0.1:{server.app.admin_port}/metrics"
    async with aiohttp.ClientSession() as http, http.get(url) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain; version=")
        text = await response.text()
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples, name: str, **labels: str) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


async def test_metrics_count_rooms_players_messages_bytes_and_ticks(server, clients):
    before = await scrape(server)
    assert value(before, "gameserver_rooms") == 0
    assert value(before, "gameserver_players") == 0
    assert value(before, "gameserver_connections") == 0
    assert value(before, "gameserver_resumes_total", path="resumed") == 0
    assert value(before, "gameserver_resumes_total", path="snapshot") == 0
    assert value(before, "process_resident_memory_bytes") > 0

    a, b = await clients("a", "b")
    await a.create_room(room_id="arena-1", script_name="arena", max_players=8)
    await b.join_room("arena-1")
    for x in (10, 20, 30):
        await a.send_action("move", {"x": x, "y": 5})
    await b.send({"type": "no_such_type"})
    await a.ping()
    await a.wait_until(lambda s: s["players"]["a"]["x"] == 30)
    with pytest.raises(GameError):
        await b.request("no_such_type")

    after = await scrape(server)
    assert value(after, "gameserver_rooms") == 1
    assert value(after, "gameserver_players") == 2
    assert value(after, "gameserver_connections") == 2
    assert value(after, "gameserver_connections_opened_total") == 2
    assert value(after, "gameserver_rooms_created_total") == 1

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert moved("gameserver_messages_in_total", type="create_room") == 1
    assert moved("gameserver_messages_in_total", type="join_room") == 1
    assert moved("gameserver_messages_in_total", type="action") == 3
    assert moved("gameserver_messages_in_total", type="ping") == 1
    assert moved("gameserver_messages_in_total", type="other") == 2  # unknown types, lumped
    assert moved("gameserver_messages_in_total", type="chat") == 0
    # Only the known types (and `other`) ever appear as label values.
    kinds = {
        dict(labels)["type"] for name, labels in after if name.startswith("gameserver_messages_in")
    }
    assert "no_such_type" not in kinds and "other" in kinds
    assert moved("gameserver_received_bytes_total") > 0
    assert moved("gameserver_sent_bytes_total") > 0
    # connected ×2, joined ×2, player_joined, deltas, pong, 2 errors at least.
    assert moved("gameserver_messages_out_total") >= 9
    assert moved("gameserver_script_seconds_total") > 0
    assert moved("gameserver_room_ticks_total") > 0
    assert moved("gameserver_tick_duration_seconds_count") > 0
    assert moved("gameserver_tick_lateness_seconds_count") > 0
    assert value(after, "gameserver_tick_lateness_seconds_bucket", le="+Inf") == value(
        after, "gameserver_tick_lateness_seconds_count"
    )
    assert value(after, "gameserver_skipped_ticks_total") >= 0
    assert value(after, "gameserver_script_errors_total") == 0

    await a.leave_room()
    await b.disconnect()
    final = await scrape(server)
    for _ in range(100):  # the server may finish b's close a moment after b did
        if value(final, "gameserver_connections") == 1:
            break
        await asyncio.sleep(0.01)
        final = await scrape(server)
    assert value(final, "gameserver_connections") == 1
    assert value(final, "gameserver_players") == 0
    assert value(final, "gameserver_rooms") == 1  # empty rooms wait empty_room_timeout


async def test_script_errors_and_rate_limits_are_counted(start_server):
    server = await start_server(messages_per_second=1, message_burst=2)
    server.add_script("broken", "function onAction(room, id, action) error('boom') end")
    client = server.client("p")
    await client.connect()
    await client.create_room(room_id="r", script_name="broken")
    failed = client.expect("error", code="script_error")
    await client.send_action("go")
    await failed
    limited = client.expect("error", code="rate_limited")
    await client.send([{"type": "action", "action": {"type": "go"}}] * 5)
    await limited
    samples = await scrape(server)
    assert value(samples, "gameserver_script_errors_total") >= 1
    assert value(samples, "gameserver_rate_limited_messages_total") >= 3
    assert value(samples, "gameserver_slow_consumer_closes_total") == 0
    await client.disconnect()


async def test_metrics_needs_no_key_and_other_routes_still_do(server):
    base = f"http://127.0.0.1:{server.app.admin_port}"
    async with aiohttp.ClientSession() as http:
        assert (await http.get(base + "/metrics")).status == 200
        assert (await http.get(base + "/v1/game/someapp/scripts")).status == 401
