"""Held seats and resuming, without sockets: a manual clock decides when the
grace ends, and the version chain each client sees is checked exactly."""

from __future__ import annotations

import msgspec
import pytest
from service_kit import frames, make_game, send, tick

from gameserver import _accel
from gameserver.config import BUILTIN_SCRIPTS_DIR
from gameserver.protocol.compact import CompactReader

PRESENCE = """
function onInit(room) room.state.log = list() ; room.state.n = 0 end
function onPlayerJoin(room, p) table.insert(room.state.log, "join " .. p.clientId) end
function onPlayerDisconnect(room, p) table.insert(room.state.log, "away " .. p.clientId) end
function onPlayerReconnect(room, p) table.insert(room.state.log, "back " .. p.clientId) end
function onPlayerLeave(room, p, why) table.insert(room.state.log, why .. " " .. p.clientId) end
function onTick(room) room.state.n = room.state.n + 1 end
"""


@pytest.fixture
def game(tmp_path):
    (tmp_path / "presence.lua").write_text(PRESENCE)
    return make_game(
        reconnect_grace=20.0,
        resume_history_seconds=1.0,
        tick_rate=16,
        scripts_dirs=(tmp_path, BUILTIN_SCRIPTS_DIR),
    )


def room_with(service, clock, *ids, script="presence"):
    """Sessions for `ids`, all in room "r" (the first created it), frames drained."""
    sessions = [service.open_session("app", cid, None, None) for cid in ids]
    config = {"roomId": "r", "scriptName": script}
    send(service, sessions[0], {"type": "create_room", "requestId": 1, "config": config})
    for s in sessions[1:]:
        send(service, s, {"type": "join_room", "requestId": 1, "roomId": "r"})
    for s in sessions:
        frames(service, s)
    return sessions


def version_of(service):
    return service.directory.get("app", "r").version


def test_a_dropped_player_keeps_its_seat_until_the_grace_ends(game):
    service, clock = game
    a, b = room_with(service, clock, "a", "b")
    service.close_session(b)
    tick(service, clock)
    room = service.directory.get("app", "r")
    assert list(room.members) == ["a", "b"]  # still seated
    assert "player_left" not in [m["type"] for m in frames(service, a)]
    clock.now += 19.0
    tick(service, clock)
    assert "b" in room.members
    clock.now += 1.5
    tick(service, clock)
    left = [m for m in frames(service, a) if m["type"] == "player_left"]
    assert [(m["player"]["clientId"], m["reason"]) for m in left] == [("b", "timeout")]
    assert room.state["log"] == ["join a", "join b", "away b", "timeout b"]


def test_closing_on_purpose_leaves_at_once(game):
    service, clock = game
    a, b = room_with(service, clock, "a", "b")
    service.close_session(b, left=True)
    left = [m for m in frames(service, a) if m["type"] == "player_left"]
    assert [(m["player"]["clientId"], m["reason"]) for m in left] == [("b", "disconnected")]


def test_resume_sends_exactly_the_missed_deltas(game):
    service, clock = game
    a, b = room_with(service, clock, "a", "b")
    tick(service, clock, 3)
    seen = version_of(service)
    frames(service, b)  # b has everything up to `seen`
    service.close_session(b)
    tick(service, clock, 5)  # b misses these (and the "away" change)
    b2 = service.open_session("app", "b", None, None)
    hello = frames(service, b2)
    assert hello[0]["type"] == "connected" and hello[0]["roomId"] == "r"
    tick(service, clock, 2)  # parked: the room goes on, b2 gets nothing yet
    assert frames(service, b2) == []
    send(service, b2, {"type": "join_room", "requestId": 7, "roomId": "r", "lastVersion": seen})
    tick(service, clock)  # a tick right behind the resume: its delta follows in order
    got = frames(service, b2)
    assert got[0] == {"type": "resumed", "requestId": 7, "roomId": "r", "fromVersion": seen}
    deltas = [m["delta"] for m in got[1:]]
    assert all(m["type"] == "delta" for m in got[1:])
    assert [d["fromVersion"] for d in deltas] == list(range(seen, version_of(service)))
    assert [d["toVersion"] for d in deltas] == list(range(seen + 1, version_of(service) + 1))
    changes = [c["value"] for d in deltas for c in d["changes"] if c["path"].startswith("log")]
    assert "away b" in str(changes) and "back b" in str(changes)
    assert service.stats.resumes == {"resumed": 1, "snapshot": 0}
    # Nobody heard b leave or join again.
    assert not [m for m in frames(service, a) if m["type"] in ("player_left", "player_joined")]


def test_a_version_older_than_the_history_gets_a_snapshot(game):
    service, clock = game
    a, b = room_with(service, clock, "a", "b")
    service.close_session(b)
    tick(service, clock, 40)  # 1 s of history at 16 Hz is 16 ticks
    b2 = service.open_session("app", "b", None, None)
    frames(service, b2)
    send(service, b2, {"type": "join_room", "requestId": 1, "roomId": "r", "lastVersion": 1})
    got = frames(service, b2)
    assert [m["type"] for m in got] == ["joined"]
    assert got[0]["state"]["version"] == version_of(service)
    tick(service, clock)
    assert frames(service, b2)[0]["delta"]["fromVersion"] == got[0]["state"]["version"]
    assert service.stats.resumes == {"resumed": 0, "snapshot": 1}


@pytest.mark.parametrize("last_version", [None, -1, 10**9])
def test_no_usable_version_gets_a_snapshot(game, last_version):
    service, clock = game
    _, b = room_with(service, clock, "a", "b")
    tick(service, clock, 2)
    service.close_session(b)
    b2 = service.open_session("app", "b", None, None)
    frames(service, b2)
    send(
        service,
        b2,
        {"type": "join_room", "requestId": 1, "roomId": "r", "lastVersion": last_version},
    )
    got = frames(service, b2)
    assert [m["type"] for m in got] == ["joined"]
    assert [p["clientId"] for p in got[0]["state"]["players"]] == ["a", "b"]


def test_get_state_takes_a_parked_seat_back(game):
    service, clock = game
    _, b = room_with(service, clock, "a", "b")
    service.close_session(b)
    b2 = service.open_session("app", "b", None, None)
    frames(service, b2)
    send(service, b2, {"type": "get_state", "requestId": 3})
    (state,) = frames(service, b2)
    assert state["type"] == "state" and state["state"]["version"] == version_of(service)
    tick(service, clock)
    assert frames(service, b2)[0]["delta"]["fromVersion"] == state["state"]["version"]


def test_a_parked_player_must_rejoin_before_it_acts_or_chats(game):
    service, clock = game
    a, b = room_with(service, clock, "a", "b")
    service.close_session(b)
    b2 = service.open_session("app", "b", None, None)
    frames(service, b2)
    frames(service, a)
    send(service, b2, {"type": "action", "requestId": 4, "action": {"type": "wave"}})
    send(service, b2, {"type": "chat", "requestId": 5, "message": "hi"})
    tick(service, clock)
    errors = [m for m in frames(service, b2) if m["type"] == "error"]
    assert [(e["code"], e["requestId"]) for e in errors] == [("not_in_room", 4), ("not_in_room", 5)]
    assert "join_room" in errors[0]["message"]
    assert not [m for m in frames(service, a) if m["type"] in ("action", "chat")]
    send(service, b2, {"type": "join_room", "requestId": 6, "roomId": "r"})
    send(service, b2, {"type": "chat", "requestId": 7, "message": "back"})
    assert [m["message"] for m in frames(service, a) if m["type"] == "chat"] == ["back"]


def test_going_elsewhere_gives_the_held_seat_up(game):
    service, clock = game
    a, b = room_with(service, clock, "a", "b")
    service.close_session(b)
    b2 = service.open_session("app", "b", None, None)
    send(service, b2, {"type": "create_room", "requestId": 2, "config": {"roomId": "other"}})
    left = [m for m in frames(service, a) if m["type"] == "player_left"]
    assert [(m["player"]["clientId"], m["reason"]) for m in left] == [("b", "left")]
    assert frames(service, b2)[-1]["type"] == "joined"


def test_kicked_or_closed_rooms_forget_held_seats(game):
    service, clock = game
    a, b, c = room_with(service, clock, "a", "b", "c")
    room = service.directory.get("app", "r")
    service.close_session(b)
    room.kick("b", "afk")
    assert "b" not in room.members
    service.close_session(c)
    service.shutdown()
    assert service._held == {}
    # Coming back after the room is gone: a plain connection, no room.
    b2 = service.open_session("app", "b", None, None)
    assert "roomId" not in frames(service, b2)[0]


def test_no_grace_means_leaving_at_once():
    service, clock = make_game(reconnect_grace=0)
    a, b = room_with(service, clock, "a", "b", script="arena")
    service.close_session(b)
    left = [m for m in frames(service, a) if m["type"] == "player_left"]
    assert [m["reason"] for m in left] == ["disconnected"]


GROWING = """
function onInit(room) room.state.n = 0 end
function onTick(room, dt, tick) room.state.n = tick ; room.state["k" .. (tick % 40)] = tick end
"""


def test_a_compact_resume_goes_across_a_new_path_table(tmp_path):
    # Every tick adds a path, and the room numbers at most 4: the tables start
    # over every few ticks, while the player is away too.
    (tmp_path / "growing.lua").write_text(GROWING)
    service, clock = make_game(
        reconnect_grace=20.0,
        resume_history_seconds=1.0,
        tick_rate=16,
        max_interned_paths=4,
        scripts_dirs=(tmp_path, BUILTIN_SCRIPTS_DIR),
    )
    a = service.open_session("app", "a", None, None)
    send(service, a, {"type": "create_room", "requestId": 1, "config": {"roomId": "r", "scriptName": "growing"}})  # fmt: skip
    room = service.directory.get("app", "r")
    reader, held = CompactReader(), {}

    def follow(session) -> list[dict]:
        """What `session` got, applied to `held` as a compact client would."""
        service.take_pending()
        frame = session.take_frame()
        messages = [] if frame is None else reader.messages(msgspec.msgpack.decode(frame))
        for message in messages:
            if message["type"] == "joined":
                held.update(state=message["state"]["state"], version=message["state"]["version"])
            elif message["type"] == "delta":
                delta = message["delta"]
                assert delta["fromVersion"] == held["version"]  # no gap, no duplicate
                _accel.commit(held["state"], delta["changes"])
                held["version"] = delta["toVersion"]
        return messages

    b = service.open_session("app", "b", "compact", None)
    send(service, b, {"type": "join_room", "requestId": 1, "roomId": "r"})
    tick(service, clock, 6)
    follow(b)
    away_at, paths_before = held["version"], len(room.state)
    service.close_session(b)
    tick(service, clock, 6)
    assert len(room.state) - paths_before > 4  # more new paths than one table holds
    b2 = service.open_session("app", "b", "compact", None)
    follow(b2)  # connected
    send(service, b2, {"type": "join_room", "requestId": 2, "roomId": "r", "lastVersion": away_at})
    tick(service, clock)
    got = follow(b2)
    assert got[0]["type"] == "resumed" and got[0]["fromVersion"] == away_at
    assert held == {"state": room.state, "version": room.version}
