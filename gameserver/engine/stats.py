"""Server health figures, cheap enough to record on every tick and message.

Everything here is a plain Python number bumped with `+= 1`: the hot path
never calls into a metrics library. The metrics endpoint (net/metrics.py)
reads these objects when it is scraped and turns them into Prometheus
families, so a scrape costs what it costs and a tick costs nothing extra.

- `TickStats`: per tick group. Lateness and duration samples go into
  fixed-size rings (the newest `capacity` ticks) for the benchmark's exact
  percentiles, and into fixed-bucket histograms that count since start for
  Prometheus. Memory stays flat however long the server runs.
- `ServiceStats`: counters of the service and the network layer (messages,
  bytes, script time and errors, closes, rate limiting, resumes).
"""

from __future__ import annotations

from array import array
from bisect import bisect_left
from collections.abc import Sequence
from typing import Any

from gameserver.config import TICK_SECONDS_BUCKETS

__all__ = ["Histogram", "ServiceStats", "TickStats", "MESSAGE_TYPES"]

# The client message types counted by name (protocol/messages.py); anything
# else, and a message that does not parse, counts as "other". A fixed set keeps
# the metric's label values bounded whatever clients send.
MESSAGE_TYPES = (
    "create_room",
    "join_room",
    "leave_room",
    "action",
    "chat",
    "get_state",
    "list_rooms",
    "ping",
    "other",
)


class _Ring:
    def __init__(self, capacity: int) -> None:
        self._values = array("d", bytes(8 * capacity))
        self._capacity = capacity
        self._count = 0

    def add(self, value: float) -> None:
        self._values[self._count % self._capacity] = value
        self._count += 1

    def sorted(self) -> list[float]:
        return sorted(self._values[: min(self._count, self._capacity)])


class Histogram:
    """Counts of values per bucket since start, Prometheus-style: bucket i
    holds values <= bounds[i] (and > bounds[i-1]); the last one is +Inf."""

    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: Sequence[float]) -> None:
        self.bounds = tuple(bounds)
        self.counts = [0] * (len(self.bounds) + 1)
        self.sum = 0.0

    def add(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.sum += value

    def cumulative(self) -> list[int]:
        """Counts of values <= each bound, then the total (the +Inf bucket)."""
        out, running = [], 0
        for count in self.counts:
            running += count
            out.append(running)
        return out


def _percentile(ordered: list[float], q: float) -> float:
    if not ordered:
        return 0.0
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class TickStats:
    def __init__(
        self, capacity: int = 65536, buckets: Sequence[float] = TICK_SECONDS_BUCKETS
    ) -> None:
        self.lateness = _Ring(capacity)  # seconds after the deadline a tick group started
        self.duration = _Ring(capacity)  # seconds one tick group took
        self.lateness_histogram = Histogram(buckets)
        self.duration_histogram = Histogram(buckets)
        self.groups = 0  # tick-group wake-ups that ran (one sample in each of the above)
        self.ticks = 0  # room-ticks run
        self.skipped = 0  # room-ticks skipped because a room fell behind

    def record(self, lateness: float, duration: float) -> None:
        """One tick group ran: `lateness` after its deadline, for `duration` (seconds)."""
        self.groups += 1
        self.lateness.add(lateness)
        self.duration.add(duration)
        self.lateness_histogram.add(lateness)
        self.duration_histogram.add(duration)

    def summary(self) -> dict[str, Any]:
        late = self.lateness.sorted()
        took = self.duration.sorted()
        return {
            "room_ticks": self.ticks,
            "skipped_ticks": self.skipped,
            # Negative would be a tick run before its deadline (never, by design).
            "lateness_min_ms": round((late[0] if late else 0.0) * 1e3, 3),
            "lateness_p50_ms": round(_percentile(late, 0.50) * 1e3, 3),
            "lateness_p99_ms": round(_percentile(late, 0.99) * 1e3, 3),
            "lateness_max_ms": round((late[-1] if late else 0.0) * 1e3, 3),
            "group_tick_p50_ms": round(_percentile(took, 0.50) * 1e3, 3),
            "group_tick_p99_ms": round(_percentile(took, 0.99) * 1e3, 3),
        }


class ServiceStats:
    """Counters since start. The service, the scripting layer and the network
    layer bump them; nothing here reads a clock or does I/O.

    `resumes` is counted by the session-resume code: "resumed" when a client
    came back within the grace period and got the messages it missed,
    "snapshot" when it had to start again from a fresh snapshot.
    """

    __slots__ = (
        "messages_in",
        "messages_out",
        "bytes_in",
        "bytes_out",
        "connections_opened",
        "rooms_created",
        "rooms_disposed",
        "script_seconds",
        "script_errors",
        "slow_consumer_closes",
        "slow_consumer_snapshots",
        "rate_limited_messages",
        "rate_limit_closes",
        "resumes",
    )

    def __init__(self) -> None:
        self.messages_in = dict.fromkeys(MESSAGE_TYPES, 0)  # by type, see MESSAGE_TYPES
        self.messages_out = 0  # messages written to sockets (several may share a frame)
        self.bytes_in = 0  # frame payloads received (characters for JSON text frames)
        self.bytes_out = 0  # frame payloads written
        self.connections_opened = 0  # sockets that got a session (`connected`)
        self.rooms_created = 0
        self.rooms_disposed = 0
        self.script_seconds = 0.0  # wall time inside Lua hook calls
        self.script_errors = 0  # script failures reported to rooms (each room:script_failed)
        self.slow_consumer_closes = 0  # connections closed 4008: stuck past the deadline
        self.slow_consumer_snapshots = 0  # fell behind, backlog dropped, snapshot once drained
        self.rate_limited_messages = 0  # messages dropped by the per-connection rate limit
        self.rate_limit_closes = 0  # connections closed 4029 for flooding
        self.resumes = {"resumed": 0, "snapshot": 0}  # by path, see the class docstring
