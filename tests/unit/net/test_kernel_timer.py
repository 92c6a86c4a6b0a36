"""The tick timer's kernel timer (a timerfd), on the server's event loop."""

from __future__ import annotations

import asyncio
import os
import time

import pytest

from gameserver.net.ticks import KernelTimer


async def fired_at(timer_setup) -> list[float]:
    times: list[float] = []
    timer = KernelTimer.open(lambda: times.append(time.monotonic()))
    assert timer is not None  # Linux, the machine the server runs on
    try:
        await timer_setup(timer)
    finally:
        timer.close()
    return times


async def test_it_fires_once_at_its_deadline_and_never_before():
    deadline = time.monotonic() + 0.02

    async def setup(timer: KernelTimer) -> None:
        timer.set(deadline)
        await asyncio.sleep(0.1)

    times = await fired_at(setup)
    assert len(times) == 1
    assert deadline <= times[0] < deadline + 0.05


async def test_setting_it_again_replaces_the_deadline():
    # The tick timer relies on this: a new, sooner tick group re-sets it.
    start = time.monotonic()

    async def setup(timer: KernelTimer) -> None:
        timer.set(start + 0.01)
        timer.set(start + 0.04)
        await asyncio.sleep(0.1)

    times = await fired_at(setup)
    assert len(times) == 1
    assert times[0] >= start + 0.04


async def test_the_loop_runs_other_callbacks_until_the_deadline():
    # Unlike a sleep before the deadline, the wait does not hold the loop: a
    # frame arriving just before a tick is read in time for it. (Three tries:
    # one preemption on a busy machine may swallow the last millisecond; a
    # loop held before each deadline would fail them all.)
    for _ in range(3):
        deadline = time.monotonic() + 0.03
        polled: list[float] = []

        async def setup(timer: KernelTimer, deadline=deadline, polled=polled) -> None:
            timer.set(deadline)
            while time.monotonic() < deadline + 0.01:
                polled.append(time.monotonic())
                await asyncio.sleep(0)

        times = await fired_at(setup)
        assert len(times) == 1 and times[0] >= deadline
        if any(deadline - 0.001 < t < deadline for t in polled):
            return
    raise AssertionError("the loop ran nothing in the last millisecond before the deadline")


async def test_a_past_deadline_fires_at_once():
    async def setup(timer: KernelTimer) -> None:
        timer.set(time.monotonic() - 1)
        await asyncio.sleep(0.02)

    assert len(await fired_at(setup)) == 1


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_opening_it_outside_a_loop_fails_without_leaking_its_fd():
    before = open_fds()
    with pytest.raises(RuntimeError):
        KernelTimer.open(lambda: None)
    assert open_fds() == before


async def test_closing_it_twice_is_harmless_and_frees_its_fd():
    before = open_fds()
    timer = KernelTimer.open(lambda: None)
    assert timer is not None and open_fds() == before + 1
    timer.close()
    timer.close()
    assert open_fds() == before
