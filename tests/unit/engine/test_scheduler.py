"""The scheduler and the room tick, driven by a manual clock: no sleeps."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from gameserver.engine import Player, RelayLogic, Room, Scheduler
from gameserver.engine.room import MAX_LOGGED_ERRORS
from gameserver.errors import RoomError, ScriptError


class Sink:
    def __init__(self) -> None:
        self.sent: list[tuple[str, dict[str, Any]]] = []

    def broadcast(self, room: Room, message: dict[str, Any], exclude: str | None = None) -> None:
        self.sent.append(("*", message))

    def send(self, room: Room, client_id: str, message: dict[str, Any]) -> None:
        self.sent.append((client_id, message))

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        return [m for _, m in self.sent if m["type"] == kind]


class ScriptedLogic(RelayLogic):
    """Returns the changes a test queues, one list per tick."""

    def __init__(self) -> None:
        self.pending: list[list[dict[str, Any]]] = []
        self.ticks: list[tuple[float, int]] = []

    def on_tick(
        self, room: Room, dt: float, tick: int, queued: list[tuple[str, dict[str, Any]]]
    ) -> list[dict[str, Any]]:
        super().on_tick(room, dt, tick, queued)  # relays the actions
        self.ticks.append((dt, tick))
        return self.pending.pop(0) if self.pending else []


def make_room(
    logic=None, *, rate=64, max_players=4, room_id="r", seated=False
) -> tuple[Room, Sink]:
    sink = Sink()
    room = Room(
        room_id=room_id,
        app_id="app",
        category_id=None,
        max_players=max_players,
        tick_rate=rate,
        metadata={},
        created_at=0,
        logic=logic or RelayLogic(),
        sink=sink,
        max_actions_per_tick=3,
    )
    if seated:
        room.join(Player("seated", 0))
    return room, sink


def test_rooms_of_one_rate_share_deadlines_on_the_grid():
    scheduler = Scheduler()
    a, _ = make_room(room_id="a", seated=True)
    b, _ = make_room(room_id="b", seated=True)
    scheduler.add(a, now=10.003)
    scheduler.add(b, now=10.010)
    period = 1 / 64
    assert scheduler.next_deadline() == pytest.approx((int(10.003 / period) + 1) * period)
    assert scheduler.run_due(scheduler.next_deadline()) == 2
    assert a.tick == b.tick == 1


def test_not_due_before_the_deadline_and_no_drift():
    scheduler = Scheduler()
    room, _ = make_room(seated=True)
    scheduler.add(room, now=0.0)
    period = 1 / 64
    for k in range(1, 1000):
        deadline = scheduler.next_deadline()
        assert deadline == pytest.approx(k * period, abs=1e-9)
        assert scheduler.run_due(deadline - 1e-6) == 0  # never early
        assert scheduler.run_due(deadline + 0.0004) == 1  # a little late each time...
    assert room.tick == 999 and room.skipped_ticks == 0  # ...never accumulates


def test_a_room_that_falls_behind_skips_ticks_instead_of_bursting():
    logic = ScriptedLogic()
    scheduler = Scheduler()
    room, _ = make_room(logic, seated=True)
    scheduler.add(room, now=0.0)
    period = 1 / 64
    scheduler.run_due(period)
    assert scheduler.run_due(period * 4.5) == 1  # one tick runs, two are skipped
    assert room.tick == 4 and room.skipped_ticks == 2
    assert logic.ticks[-1] == (pytest.approx(3 * period), 4)
    assert scheduler.stats.skipped == 2
    assert scheduler.next_deadline() == pytest.approx(5 * period)


def test_an_empty_room_pauses_until_someone_joins():
    logic = ScriptedLogic()
    scheduler = Scheduler()
    room, _ = make_room(logic)
    scheduler.add(room, now=0.0)
    period = 1 / 64
    assert scheduler.run_due(period) == 0 and room.tick == 0 and logic.ticks == []
    room.join(Player("p", 0))
    assert scheduler.run_due(2 * period) == 1 and room.tick == 1


def test_tick_applies_queued_actions_in_order_then_sends_one_delta():
    logic = ScriptedLogic()
    room, sink = make_room(logic)
    room.join(Player("p1", 0))
    room.join(Player("p2", 0))
    room.queue_action("p2", {"type": "b", "data": None})
    room.queue_action("p1", {"type": "a", "data": 1})
    logic.pending.append([{"path": "x", "operation": "set", "value": 1}])
    assert room.run_tick(1 / 64, 0) is True
    kinds = [m["type"] for _, m in sink.sent]
    assert kinds == ["player_joined", "player_joined", "action", "action", "delta"]
    assert [m["action"]["type"] for m in sink.of_type("action")] == ["b", "a"]
    (delta,) = sink.of_type("delta")
    assert delta["delta"] == {
        "fromVersion": 0,
        "toVersion": 1,
        "tick": 1,
        "changes": [{"path": "x", "operation": "set", "value": 1}],
    }
    assert room.state == {"x": 1} and room.version == 1


def test_no_change_means_no_delta_and_no_version_bump():
    logic = ScriptedLogic()
    room, sink = make_room(logic)
    room.join(Player("p", 0))
    logic.pending += [[{"path": "x", "operation": "set", "value": 1}]] * 2
    room.run_tick(0.01, 0)
    room.run_tick(0.01, 0)  # the same value again: a no-op
    room.run_tick(0.01, 0)  # nothing at all
    assert room.version == 1 and len(sink.of_type("delta")) == 1


def test_room_full_and_action_queue_bound():
    room, sink = make_room(max_players=2)
    room.join(Player("a", 0))
    room.join(Player("b", 0))
    with pytest.raises(RoomError) as err:
        room.join(Player("c", 0))
    assert err.value.code == "room_full"
    for _ in range(3):
        room.queue_action("a", {"type": "t", "data": None})
    with pytest.raises(RoomError) as err:
        room.queue_action("a", {"type": "t", "data": None})
    assert err.value.code == "rate_limited"


def test_a_leavers_queued_actions_are_dropped():
    room, sink = make_room()
    room.join(Player("a", 0))
    room.join(Player("b", 0))
    room.queue_action("a", {"type": "from-a", "data": None})
    room.queue_action("b", {"type": "from-b", "data": None})
    room.leave("a", "left", now=1.0)
    room.run_tick(0.01, 0)
    assert [m["action"]["type"] for m in sink.of_type("action")] == ["from-b"]
    (left,) = sink.of_type("player_left")
    assert left["reason"] == "left" and left["player"]["clientId"] == "a"


def test_a_change_that_does_not_fit_is_a_script_error_not_a_crash():
    logic = ScriptedLogic()
    room, sink = make_room(logic)
    room.join(Player("p", 0))
    logic.pending.append([{"path": "missing.child", "operation": "set", "value": 1}])
    assert room.run_tick(0.01, 0) is False
    (error,) = sink.of_type("error")
    assert error["code"] == "script_error"
    assert room.version == 0


def test_failing_ticks_in_a_row_doom_the_room_and_a_good_tick_resets_the_count():

    doomed = []

    class Flaky(ScriptedLogic):
        def __init__(self, pattern):
            super().__init__()
            self.pattern = list(pattern)

        def on_tick(self, room, dt, tick, queued):
            if self.pattern.pop(0):
                room.script_failed(ScriptError("boom", hook="onTick"))
            return []

    sink = Sink()
    room = Room(
        room_id="r",
        app_id="app",
        category_id=None,
        max_players=4,
        tick_rate=64,
        metadata={},
        created_at=0,
        logic=Flaky([1, 1, 0, 1, 1, 1]),
        sink=sink,
        max_actions_per_tick=3,
        max_failing_ticks=3,
        on_doomed=lambda r, reason: doomed.append(reason),
    )
    room.join(Player("p", 0))
    for _ in range(5):
        room.run_tick(0.01, 0)
    assert doomed == [] and room.failing_ticks == 2  # the good third tick reset the count
    room.run_tick(0.01, 0)
    assert doomed == ["script_error"]


def test_each_distinct_script_error_is_logged_once_and_a_room_logs_a_bounded_number(caplog):
    room, sink = make_room(seated=True)
    with caplog.at_level(logging.WARNING, logger="gameserver.room"):
        for _ in range(
            50
        ):  # two hooks taking turns failing, as a reconnecting client can make them
            room.script_failed(ScriptError("boom", hook="onPlayerDisconnect"))
            room.script_failed(ScriptError("boom", hook="onPlayerReconnect"))
        assert len(caplog.records) == 2
        for n in range(100):  # ever new messages
            room.script_failed(ScriptError(f"boom {n}", hook="onAction"))
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == MAX_LOGGED_ERRORS + 1 and "no more are logged" in lines[-1]
    assert len(sink.of_type("error")) == 200  # the members still got every one


def test_tick_phases_spread_a_rates_rooms_evenly_over_the_period():
    scheduler = Scheduler(phases=4)
    rooms = [make_room(room_id=f"r{i}", seated=True)[0] for i in range(8)]
    for room in rooms:
        scheduler.add(room, now=0.0)
    period = 1 / 64
    deadlines, ticked_at = [], {}
    for _ in range(8):  # two periods
        deadline = scheduler.next_deadline()
        before = {room: room.tick for room in rooms}
        assert scheduler.run_due(deadline) == 2  # each phase holds 2 of the 8 rooms
        deadlines.append(deadline)
        for room in rooms:
            if room.tick > before[room]:
                ticked_at.setdefault(room, []).append(deadline)
    steps = [b - a for a, b in zip(deadlines, deadlines[1:], strict=False)]
    assert steps == pytest.approx([period / 4] * 7)
    # Every room ticked once per period, always in its own phase.
    assert all(len(times) == 2 for times in ticked_at.values()) and len(ticked_at) == 8
    assert all(b - a == pytest.approx(period) for a, b in ticked_at.values())


def test_a_new_room_joins_the_phase_with_the_fewest_rooms_and_a_gone_one_frees_its_place():
    scheduler = Scheduler(phases=2)
    a, b, c = (make_room(room_id=x, seated=True)[0] for x in "abc")
    scheduler.add(a, now=0.0)
    scheduler.add(b, now=0.0)  # the other phase
    scheduler.remove(a)
    scheduler.add(c, now=0.0)  # a's phase is empty now: c takes it
    first = scheduler.next_deadline()
    assert scheduler.run_due(first) == 1
    second = scheduler.next_deadline()
    assert scheduler.run_due(second) == 1
    assert (c.tick, b.tick) == (1, 1)
    assert second - first == pytest.approx(1 / 64 / 2)


@pytest.mark.parametrize("rate", [60, 30, 20])
def test_a_phase_group_is_due_exactly_at_the_deadline_it_announces(rate):
    # The group's offset is taken off the time again inside; at rates whose
    # period is not a power of two that can round to just below the grid
    # point, and a group announced as due must still tick (found at 60 Hz,
    # wake-up 6721: the deadline stuck and nothing ticked again).
    scheduler = Scheduler(phases=4)
    rooms = [make_room(room_id=f"r{i}", rate=rate, seated=True)[0] for i in range(4)]
    for room in rooms:
        scheduler.add(room, now=0.0)
    for _ in range(8000):
        assert scheduler.run_due(scheduler.next_deadline()) == 1
    assert [room.tick for room in rooms] == [2000] * 4


def test_adding_a_room_twice_keeps_it_in_one_group():
    scheduler = Scheduler(phases=2)
    room, _ = make_room(seated=True)
    scheduler.add(room, now=0.0)
    scheduler.add(room, now=0.0)
    scheduler.remove(room)
    assert scheduler.next_deadline() is None


def test_a_rate_uses_one_more_phase_per_min_rooms_of_its_rooms():
    # Each phase is a wake-up of its own: a few rooms tick together.
    def rooms_per_wakeup(rooms: int) -> list[int]:
        scheduler = Scheduler(phases=8, min_rooms=4)
        for i in range(rooms):
            scheduler.add(make_room(room_id=f"r{i}", seated=True)[0], now=0.0)
        counts = []
        first = scheduler.next_deadline()
        while (deadline := scheduler.next_deadline()) < first + 1 / 64 - 1e-9:
            counts.append(scheduler.run_due(deadline))
        return sorted(counts)

    assert rooms_per_wakeup(4) == [4]
    assert rooms_per_wakeup(5) == [1, 4]  # rooms stay where they joined
    assert rooms_per_wakeup(12) == [4, 4, 4]
    assert rooms_per_wakeup(40) == [5] * 8  # never more than `phases`


def test_the_phases_in_use_lie_spread_over_the_period():
    # With 2 of 8 phases in use they are half a period apart, with 4 a
    # quarter: not the first 2 or 4 eighths, one after the other.
    for rooms, spacing in ((2, 1 / 2), (4, 1 / 4), (8, 1 / 8)):
        scheduler = Scheduler(phases=8, min_rooms=1)
        for i in range(rooms):
            scheduler.add(make_room(room_id=f"r{i}", seated=True)[0], now=0.0)
        deadlines = []
        for _ in range(rooms + 1):
            deadlines.append(scheduler.next_deadline())
            assert scheduler.run_due(deadlines[-1]) == 1
        steps = [b - a for a, b in zip(deadlines, deadlines[1:], strict=False)]
        assert steps == pytest.approx([spacing / 64] * rooms)
