"""The tick timer both transports run: wake for the service's next deadline.

On Linux the loop waits on a kernel timer (a timerfd set to the deadline
itself, on the clock `time.monotonic` reads): the loop goes on reading
sockets until the deadline, and wakes within tens of microseconds after it.
Elsewhere, uvloop timers may fire up to ~1.2 ms early, so the timer is set
`EARLY_WAKE` before the deadline and the wait ends with a short precise
sleep, during which no socket is read: a move arriving then misses the tick.
Either way ticks are never early.

The loop runs its timers only between rounds of I/O: under load, one round
of reading hundreds of sockets can hold a due tick back for milliseconds. So
every incoming frame also asks `after_input()`, which runs the ticks at once
when their deadline has passed (one clock read per frame otherwise).
"""

from __future__ import annotations

import asyncio
import ctypes
import os
import sys
import time
from collections.abc import Callable

from gameserver.service import GameService

__all__ = ["TickTimer", "KernelTimer"]

EARLY_WAKE = 0.0015


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


class _Itimerspec(ctypes.Structure):
    _fields_ = [("it_interval", _Timespec), ("it_value", _Timespec)]


class KernelTimer:
    """A timerfd on CLOCK_MONOTONIC, read by the loop: `set(deadline)` makes
    it call `callback` once at `deadline` (a `time.monotonic()` value).
    `open` returns None where there is no timerfd (not Linux)."""

    _CLOCK_MONOTONIC, _TFD_TIMER_ABSTIME = 1, 1
    _TFD_CLOEXEC, _TFD_NONBLOCK = 0o2000000, 0o4000

    def __init__(self, libc: ctypes.CDLL, fd: int, callback: Callable[[], None]) -> None:
        self._settime = libc.timerfd_settime
        self._fd = fd
        self._spec = _Itimerspec()
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(fd, self._fired, callback)

    @classmethod
    def open(cls, callback: Callable[[], None]) -> KernelTimer | None:
        if not sys.platform.startswith("linux"):
            return None
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            fd = libc.timerfd_create(cls._CLOCK_MONOTONIC, cls._TFD_CLOEXEC | cls._TFD_NONBLOCK)
        except (OSError, AttributeError):
            return None
        if fd < 0:
            return None
        try:
            return cls(libc, fd, callback)
        except BaseException:  # no running loop, say: the fd must not leak
            os.close(fd)
            raise

    def set(self, deadline: float) -> None:
        # A deadline already past (0 would disarm) fires at once.
        ns = max(1, round(deadline * 1e9))
        value = self._spec.it_value
        value.tv_sec, value.tv_nsec = divmod(ns, 1_000_000_000)
        if self._settime(self._fd, self._TFD_TIMER_ABSTIME, ctypes.byref(self._spec), None):
            errno = ctypes.get_errno()
            raise OSError(errno, f"timerfd_settime: {os.strerror(errno)}")

    def close(self) -> None:
        if self._fd < 0:
            return
        fd, self._fd = self._fd, -1
        try:
            if not self._loop.is_closed():
                self._loop.remove_reader(fd)
        finally:
            os.close(fd)

    def _fired(self, callback: Callable[[], None]) -> None:
        try:
            os.read(self._fd, 8)  # the expiry count: reading it re-arms readiness
        except BlockingIOError:  # set again since it fired: not due yet
            return
        callback()


class TickTimer:
    """Call `after_input()` after each client frame (it may have made a new,
    earlier deadline, or come in after a due one); after ticks run,
    `after_ticks` writes their output. `close()` at shutdown stops it for good."""

    def __init__(self, service: GameService, after_ticks: Callable[[], None]) -> None:
        self._service = service
        self._after_ticks = after_ticks
        self._scheduler = service.scheduler
        self._kernel: KernelTimer | None = None  # opened on first use, in the loop
        self._timer: asyncio.TimerHandle | None = None  # without a kernel timer
        self._armed_for: float | None = None
        self._armed_revision = -1
        self._state = "new"  # "new" (kernel timer not tried yet), "open", "closed"

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
        if self._armed_for is not None and self._armed_revision == revision:
            return  # armed, and no new tick group since: nothing can be sooner
        self._armed_revision = revision
        deadline = self._service.next_deadline()
        if deadline is None or (self._armed_for is not None and self._armed_for <= deadline):
            return
        if self._state != "open":
            if self._state == "closed":
                return
            self._kernel = KernelTimer.open(self._on_timer)
            self._state = "open"
        self._disarm()
        self._armed_for = deadline
        if self._kernel is not None:
            self._kernel.set(deadline)
        else:
            delay = max(0.0, deadline - time.monotonic() - EARLY_WAKE)
            self._timer = asyncio.get_running_loop().call_later(delay, self._on_timer)

    def close(self) -> None:
        """Stop waking, for good (the server is stopping)."""
        self._disarm()
        self._state = "closed"
        if self._kernel is not None:
            self._kernel.close()
            self._kernel = None

    def _disarm(self) -> None:
        # (A kernel timer needs nothing: setting it again replaces its
        # deadline, and drops an expiry not yet read.)
        self._armed_for = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _on_timer(self) -> None:
        self._disarm()  # it fired: nothing is armed now
        deadline = self._service.next_deadline()
        if deadline is None:
            return
        remaining = deadline - time.monotonic()
        if remaining > 0:
            if self._kernel is not None or remaining > EARLY_WAKE:
                # A kernel timer set for a deadline since gone, or the loop's
                # cached clock was stale when the timer was set: wait again.
                self.arm()
                return
            time.sleep(remaining)  # at most 1.5 ms: the precise end of the wait
        self._run()

    def _run(self) -> None:
        self._disarm()
        self._service.run_ticks(time.monotonic())
        self._after_ticks()
        self.arm()
