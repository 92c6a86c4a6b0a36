"""The tick timer both transports run: wake for the service's next deadline.

uvloop timers may fire up to ~1.2 ms early, so the timer is set `EARLY_WAKE`
before the deadline and the wait ends with a short precise sleep: ticks are
never early, and rarely more than a fraction of a millisecond late.

The loop runs its timers only between rounds of I/O: under load, one round
of reading hundreds of sockets can hold a due tick back for milliseconds. So
every incoming frame also asks `after_input()`, which runs the ticks at once
when their deadline has passed (one clock read per frame otherwise).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from gameserver.service import GameService

__all__ = ["TickTimer"]

EARLY_WAKE = 0.0015


class TickTimer:
    """Call `after_input()` after each client frame (it may have made a new,
    earlier deadline, or come in after a due one); after ticks run,
    `after_ticks` writes their output."""

    def __init__(self, service: GameService, after_ticks: Callable[[], None]) -> None:
        self._service = service
        self._after_ticks = after_ticks
        self._scheduler = service.scheduler
        self._timer: asyncio.TimerHandle | None = None
        self._armed_for: float | None = None
        self._armed_revision = -1

    def after_input(self) -> None:
        """A client's frame was handled: run the ticks now if they are due,
        else make sure the timer is armed for the soonest deadline."""
        armed_for = self._armed_for
        if armed_for is not None and time.monotonic() >= armed_for:
            self._run()
        else:
            self.arm()

    def arm(self) -> None:
        """(Re)arm the timer for the service's next deadline, if that is sooner."""
        revision = self._scheduler.revision
        if self._timer is not None and self._armed_revision == revision:
            return  # armed, and no new tick group since: nothing can be sooner
        self._armed_revision = revision
        deadline = self._service.next_deadline()
        if deadline is None or (self._armed_for is not None and self._armed_for <= deadline):
            return
        if self._timer is not None:
            self._timer.cancel()
        self._armed_for = deadline
        delay = max(0.0, deadline - time.monotonic() - EARLY_WAKE)
        self._timer = asyncio.get_running_loop().call_later(delay, self._on_timer)

    def cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = None
        self._armed_for = None

    def _on_timer(self) -> None:
        self._timer = None
        self._armed_for = None
        deadline = self._service.next_deadline()
        if deadline is not None:
            remaining = deadline - time.monotonic()
            if remaining > EARLY_WAKE:
                # The loop's cached clock was stale when the timer was set: wait again.
                self.arm()
                return
            if remaining > 0:
                time.sleep(remaining)  # at most 1.5 ms: the precise end of the wait
            self._run()
            return
        self.arm()

    def _run(self) -> None:
        self.cancel()
        self._service.run_ticks(time.monotonic())
        self._after_ticks()
        self.arm()
