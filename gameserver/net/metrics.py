"""`GET /metrics`: the server's counters as Prometheus text, built at scrape time.

Nothing on the hot path calls prometheus-client: the service, the scripting
layer and the sockets bump plain integers (engine/stats.py), and the
`GameCollector` here reads them, and counts rooms, players and connections,
only when Prometheus scrapes. Labels never carry a room or client id: the
only label values are the fixed message types and resume paths.
docs/operations.md lists every series.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, ProcessCollector
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from gameserver.engine.stats import Histogram
from gameserver.service import GameService

__all__ = ["GameCollector", "metrics_registry"]


def _histogram(name: str, documentation: str, histogram: Histogram) -> HistogramMetricFamily:
    # cumulative() ends with the total, the +Inf bucket.
    bounds = [*map(repr, histogram.bounds), "+Inf"]
    buckets = list(zip(bounds, histogram.cumulative(), strict=True))
    return HistogramMetricFamily(name, documentation, buckets=buckets, sum_value=histogram.sum)


class GameCollector(Collector):
    """Turns the service's counters into metric families on each scrape.
    `connections` counts the open sockets (the network layer knows them)."""

    def __init__(self, service: GameService, connections: Callable[[], int]) -> None:
        self._service = service
        self._connections = connections

    def collect(self) -> Iterator[Metric]:
        service = self._service
        ticks = service.scheduler.stats  # read each time: a benchmark may swap it
        stats = service.stats
        yield _histogram(
            "gameserver_tick_duration_seconds",
            "How long one tick of a group of rooms (one phase of one tick rate) took.",
            ticks.duration_histogram,
        )
        yield _histogram(
            "gameserver_tick_lateness_seconds",
            "How long after its deadline a tick group started.",
            ticks.lateness_histogram,
        )
        yield CounterMetricFamily("gameserver_room_ticks", "Room-ticks run.", value=ticks.ticks)
        yield CounterMetricFamily(
            "gameserver_skipped_ticks",
            "Room-ticks skipped because the server fell more than a tick period behind.",
            value=ticks.skipped,
        )
        rooms = list(service.directory)
        yield GaugeMetricFamily("gameserver_rooms", "Rooms alive.", value=len(rooms))
        yield GaugeMetricFamily(
            "gameserver_players",
            "Players seated in rooms.",
            value=sum(len(room.members) for room in rooms),
        )
        yield GaugeMetricFamily(
            "gameserver_connections", "Open game WebSocket connections.", value=self._connections()
        )
        yield CounterMetricFamily(
            "gameserver_connections_opened",
            "Connections accepted (that got a session).",
            value=stats.connections_opened,
        )
        yield CounterMetricFamily(
            "gameserver_rooms_created", "Rooms created.", value=stats.rooms_created
        )
        yield CounterMetricFamily(
            "gameserver_rooms_disposed", "Rooms disposed (any reason).", value=stats.rooms_disposed
        )
        messages_in = CounterMetricFamily(
            "gameserver_messages_in",
            "Client messages handled, by type; unknown types and unparsable ones are `other`.",
            labels=["type"],
        )
        for kind, count in stats.messages_in.items():
            messages_in.add_metric([kind], count)
        yield messages_in
        yield CounterMetricFamily(
            "gameserver_messages_out", "Messages written to clients.", value=stats.messages_out
        )
        yield CounterMetricFamily(
            "gameserver_received_bytes",
            "WebSocket frame payload received from clients.",
            value=stats.bytes_in,
        )
        yield CounterMetricFamily(
            "gameserver_sent_bytes",
            "WebSocket frame payload written to clients.",
            value=stats.bytes_out,
        )
        yield CounterMetricFamily(
            "gameserver_script_seconds",
            "Wall time spent inside Lua room-script hooks.",
            value=stats.script_seconds,
        )
        yield CounterMetricFamily(
            "gameserver_script_errors", "Room-script failures.", value=stats.script_errors
        )
        yield CounterMetricFamily(
            "gameserver_slow_consumer_closes",
            "Connections closed 4008 slow_consumer (socket took nothing for the deadline).",
            value=stats.slow_consumer_closes,
        )
        yield CounterMetricFamily(
            "gameserver_slow_consumer_snapshots",
            "Clients that fell behind: their backlog was dropped, a fresh snapshot sent instead.",
            value=stats.slow_consumer_snapshots,
        )
        yield CounterMetricFamily(
            "gameserver_rate_limited_messages",
            "Client messages dropped by the per-connection rate limit.",
            value=stats.rate_limited_messages,
        )
        yield CounterMetricFamily(
            "gameserver_rate_limit_closes",
            "Connections closed 4029 for flooding past the rate limit.",
            value=stats.rate_limit_closes,
        )
        resumes = CounterMetricFamily(
            "gameserver_resumes",
            "Reconnections that resumed a session, by path: `resumed` (missed messages "
            "replayed) or `snapshot` (started again from a fresh snapshot).",
            labels=["path"],
        )
        for path, count in stats.resumes.items():
            resumes.add_metric([path], count)
        yield resumes


def metrics_registry(service: GameService, connections: Callable[[], int]) -> CollectorRegistry:
    """A registry of its own per server (never the global one: tests run
    several servers in one process): the game's series and the process's
    (CPU, resident memory, open files)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(GameCollector(service, connections))
    ProcessCollector(registry=registry)
    return registry
