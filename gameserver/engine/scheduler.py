"""The fixed-tick scheduler: which rooms tick now, and when to wake next.

Rooms with the same tick rate share one `TickClock` on a global grid of
deadlines (index × period), so all 64 Hz rooms tick in one wake-up. Deadlines
are absolute: lateness never accumulates into drift. A group that wakes more
than a period late skips the missed ticks (each room's `tick` still counts
them and `dt` covers them) instead of bursting to catch up.

`now` is always a parameter: tests drive this with a manual clock.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from gameserver import _accel
from gameserver.engine.stats import TickStats

if TYPE_CHECKING:
    from gameserver.engine.room import Room

__all__ = ["Scheduler"]


class _Group:
    __slots__ = ("clock", "rooms")

    def __init__(self, rate: int, now: float) -> None:
        self.clock = _accel.TickClock(rate, now)
        self.rooms: dict[Room, None] = {}  # insertion-ordered set


class Scheduler:
    def __init__(self, stats: TickStats | None = None, timer=time.perf_counter) -> None:
        self._groups: dict[int, _Group] = {}
        self.stats = stats or TickStats()
        self._timer = timer  # only measures how long ticks take
        # Counts new tick groups: the only event that can bring the next
        # deadline forward (a timer armed for the old one then wakes too late).
        self.revision = 0

    def add(self, room: Room, now: float) -> None:
        group = self._groups.get(room.tick_rate)
        if group is None:
            group = self._groups[room.tick_rate] = _Group(room.tick_rate, now)
            self.revision += 1
        group.rooms[room] = None

    def remove(self, room: Room) -> None:
        group = self._groups.get(room.tick_rate)
        if group is None:
            return
        group.rooms.pop(room, None)
        if not group.rooms:
            del self._groups[room.tick_rate]

    def next_deadline(self) -> float | None:
        if not self._groups:
            return None
        return min(group.clock.deadline for group in self._groups.values())

    def run_due(self, now: float) -> int:
        """Tick every room whose deadline has come. Returns the room-ticks run."""
        ran = 0
        stats = self.stats
        for group in list(self._groups.values()):
            clock = group.clock
            skipped = clock.due(now)
            if skipped < 0:
                continue
            started = self._timer()
            dt = clock.period * (1 + skipped)
            ticked = 0
            for room in list(group.rooms):
                # An empty room pauses: its state waits as it was for whoever comes back.
                if room.members and not room.closed:
                    room.run_tick(dt, skipped)
                    ticked += 1
            ran += ticked
            stats.ticks += ticked
            stats.skipped += skipped * ticked
            stats.record(clock.last_lateness, self._timer() - started)
        return ran
