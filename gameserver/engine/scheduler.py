"""The fixed-tick scheduler: which rooms tick now, and when to wake next.

Rooms with the same tick rate are spread over `phases` groups, whose
deadlines lie evenly across the period (group k on the grid index × period
+ k × period / phases); the rooms of a group tick in one wake-up and their
frames go out after it. One group per rate batches the most, but then every
move waits for the whole rate's tick work before its delta leaves; with
several, it waits for its own group's share. Each group is also a wake-up
of its own (some 30-100 µs of CPU on a virtual machine), so a rate uses one
more phase only per `min_rooms` of its rooms (with the server's defaults,
8 phases and 8 rooms: 8 rooms tick together, 64 in 8 phases), and the
phases come into use spread over the period (half a period apart with 2,
a quarter with 4). A room joins the group with the fewest rooms among
those in use, and stays in it.

Deadlines are absolute: lateness never accumulates into drift. A group that
wakes more than a period late skips the missed ticks (each room's `tick`
still counts them and `dt` covers them) instead of bursting to catch up.

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
    __slots__ = ("clock", "offset", "deadline", "rooms")

    def __init__(self, rate: int, offset: float, now: float) -> None:
        # The clock keeps the plain grid; the group's times are shifted by `offset`.
        self.clock = _accel.TickClock(rate, now - offset)
        self.offset = offset
        self.deadline = self.clock.deadline + offset  # kept in step with the clock's
        self.rooms: dict[Room, None] = {}  # insertion-ordered set


def _spread_order(phases: int) -> list[int]:
    """The phases in the order a rate takes them into use, each as far from
    those before it as the circle of the period allows (8: 0 4 2 6 1 3 5 7),
    so that the phases in use at any count lie spread over the period."""
    order = [0]
    while len(order) < phases:

        def gap(k: int) -> int:
            return min(min((k - j) % phases, (j - k) % phases) for j in order)

        order.append(max((k for k in range(phases) if k not in order), key=gap))
    return order


class Scheduler:
    def __init__(
        self,
        stats: TickStats | None = None,
        timer=time.perf_counter,
        phases: int = 1,
        min_rooms: int = 1,
    ) -> None:
        if phases < 1 or min_rooms < 1:
            raise ValueError("phases and min_rooms must be at least 1")
        self.phases = phases
        self.min_rooms = min_rooms
        self._spread = _spread_order(phases)
        self._groups: dict[tuple[int, int], _Group] = {}  # by (rate, phase)
        self._key_of: dict[Room, tuple[int, int]] = {}
        self._next: float | None = None  # the soonest group deadline, kept current
        self.stats = stats or TickStats()
        self._timer = timer  # only measures how long ticks take
        # Counts new tick groups: the only event that can bring the next
        # deadline forward (a timer armed for the old one then wakes too late).
        self.revision = 0

    def add(self, room: Room, now: float) -> None:
        if room in self._key_of:
            return
        rate = room.tick_rate
        groups = self._groups

        def rooms_in(phase: int) -> int:
            group = groups.get((rate, phase))
            return len(group.rooms) if group is not None else 0

        rooms = 1 + sum(rooms_in(k) for k in range(self.phases))  # with this one
        in_use = min(self.phases, -(-rooms // self.min_rooms))
        phase = min(self._spread[:in_use], key=rooms_in)
        key = (rate, phase)
        group = groups.get(key)
        if group is None:
            group = groups[key] = _Group(rate, phase / self.phases / rate, now)
            self.revision += 1
        group.rooms[room] = None
        self._key_of[room] = key
        self._find_next()

    def remove(self, room: Room) -> None:
        key = self._key_of.pop(room, None)
        if key is None:
            return
        group = self._groups[key]
        del group.rooms[room]
        if not group.rooms:
            del self._groups[key]
            self._find_next()

    def next_deadline(self) -> float | None:
        return self._next

    def _find_next(self) -> None:
        groups = self._groups
        self._next = min(group.deadline for group in groups.values()) if groups else None

    def run_due(self, now: float) -> int:
        """Tick every room whose deadline has come. Returns the room-ticks run."""
        ran = 0
        stats = self.stats
        moved = False  # some group's deadline moved on
        for group in list(self._groups.values()):
            if now < group.deadline:
                continue
            moved = True
            clock = group.clock
            # Due by the deadline announced (grid + offset), which now - offset
            # can round to just below (at rates whose period is not a power of 2).
            skipped = clock.due(max(now - group.offset, clock.deadline))
            group.deadline = clock.deadline + group.offset
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
        if moved:
            self._find_next()
        return ran
