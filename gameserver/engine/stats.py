"""Tick health figures, cheap enough to record on every tick.

Lateness and duration samples go into fixed-size rings (the newest
`capacity` ticks), so memory stays flat however long the server runs;
`summary()` turns them into the percentiles the benchmark prints.
"""

from __future__ import annotations

from array import array
from typing import Any

__all__ = ["TickStats"]


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


def _percentile(ordered: list[float], q: float) -> float:
    if not ordered:
        return 0.0
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class TickStats:
    def __init__(self, capacity: int = 65536) -> None:
        self.lateness = _Ring(capacity)  # seconds after the deadline a tick group started
        self.duration = _Ring(capacity)  # seconds one tick group took
        self.ticks = 0  # room-ticks run
        self.skipped = 0  # room-ticks skipped because a room fell behind
        self.early = 0  # group wake-ups before the deadline (must stay 0)

    def summary(self) -> dict[str, Any]:
        late = self.lateness.sorted()
        took = self.duration.sorted()
        return {
            "room_ticks": self.ticks,
            "skipped_ticks": self.skipped,
            "lateness_p50_ms": round(_percentile(late, 0.50) * 1e3, 3),
            "lateness_p99_ms": round(_percentile(late, 0.99) * 1e3, 3),
            "lateness_max_ms": round((late[-1] if late else 0.0) * 1e3, 3),
            "group_tick_p50_ms": round(_percentile(took, 0.50) * 1e3, 3),
            "group_tick_p99_ms": round(_percentile(took, 0.99) * 1e3, 3),
        }
