"""The game service without sockets: frames in, frames out, a manual clock."""

from __future__ import annotations

import msgspec
import pytest
from service_kit import frames, make_game, send, tick

from gameserver.service import Refused
from gameserver.session import CloseCode


@pytest.fixture
def game():
    return make_game(empty_room_timeout=5.0, messages_per_second=1e9, message_burst=10**9)


def test_one_frame_per_tick_with_both_actions(game):
    service, clock = game
    a = service.open_session("app", "a", None, None)
    b = service.open_session("app", "b", None, None)
    send(service, a, {"type": "create_room", "requestId": 1, "config": {"roomId": "r"}})
    send(service, b, {"type": "join_room", "requestId": 2, "roomId": "r"})
    frames(service, a), frames(service, b)
    send(service, a, {"type": "action", "action": {"type": "x", "data": 1}})
    send(service, b, {"type": "action", "action": {"type": "y", "data": 2}})
    clock.now = service.next_deadline()
    service.run_ticks(clock.now)
    raw = b.take_frame()
    messages = msgspec.msgpack.decode(raw)
    assert [m["action"]["type"] for m in messages] == ["x", "y"]  # one array frame, in order
    # The same encoded bytes were queued for both members.
    assert a.take_frame() == raw


def test_refusals_carry_close_codes(game):
    service, _ = game
    service.open_session("app", "a", None, None)
    with pytest.raises(Refused) as err:
        service.open_session("app", "a", None, None)
    assert err.value.code == CloseCode.DUPLICATE_CLIENT
    with pytest.raises(Refused) as err:
        service.open_session("app", None, None, None)
    assert err.value.code == CloseCode.BAD_CLIENT_ID
    with pytest.raises(Refused) as err:
        service.open_session("app", "z", "yaml", None)
    assert err.value.code == CloseCode.BAD_ENCODING
    # Same client id in another app is another player.
    assert service.open_session("other-app", "a", None, None).app_id == "other-app"


def test_an_empty_room_is_disposed_after_the_timeout(game):
    service, clock = game
    a = service.open_session("app", "a", None, None)
    send(service, a, {"type": "create_room", "requestId": 1, "config": {"roomId": "r"}})
    send(service, a, {"type": "leave_room", "requestId": 2})
    assert service.directory.exists("app", "r")
    clock.now += 4.9
    service.run_ticks(clock.now)
    assert service.directory.exists("app", "r")
    clock.now += 0.2
    service.run_ticks(clock.now)
    assert not service.directory.exists("app", "r")
    assert service.next_deadline() is None


def test_a_slow_reader_is_closed_not_buffered_forever(game):
    service, _ = game
    a = service.open_session("app", "a", None, None)
    # ~50-byte pongs: 1.5 MB. Over the 256 KiB bound it falls behind (the
    # backlog goes); its replies overflow again: it is not reading at all.
    for _ in range(30_000):
        send(service, a, {"type": "ping", "requestId": 1, "clientTime": 1})
    assert a.close_request == (CloseCode.SLOW_CONSUMER, "slow_consumer")
    assert a.outbox_bytes == 0


def test_a_flooding_connection_is_rate_limited_then_closed():
    service, clock = make_game(messages_per_second=10, message_burst=20, abusive_drops=30)
    a = service.open_session("app", "a", None, None)
    frames(service, a)
    ping = {"type": "ping", "requestId": 1, "clientTime": 1}
    send(service, a, *[ping] * 25)  # a burst of 20 passes, 5 are dropped
    got = frames(service, a)
    assert [m["type"] for m in got] == ["pong"] * 20 + ["error"]
    assert got[-1]["code"] == "rate_limited" and "5 message(s) dropped" in got[-1]["message"]
    clock.now += 1.0  # ten more tokens
    send(service, a, *[ping] * 10)
    assert [m["type"] for m in frames(service, a)] == ["pong"] * 10
    assert a.close_request is None
    for _ in range(31):  # flooding on: one drop more than the tolerance of 30
        service.receive(a, b"\xc1")  # garbage counts as a message too
    assert a.close_request == (CloseCode.RATE_LIMITED, "rate_limited")


def test_room_creation_is_rate_limited_per_connection_and_capped_per_app():
    service, clock = make_game(rooms_per_minute=6, room_creation_burst=2, max_rooms_per_app=3)
    a = service.open_session("app", "a", None, None)

    def create(room_id):
        send(
            service, a, {"type": "create_room", "requestId": room_id, "config": {"roomId": room_id}}
        )
        reply = frames(service, a)[-1]
        if reply["type"] == "joined":
            send(service, a, {"type": "leave_room", "requestId": 0})
            frames(service, a)
        return reply["type"] if reply["type"] == "joined" else reply["code"]

    frames(service, a)
    assert [create(r) for r in ("r1", "r2", "r3")] == ["joined", "joined", "rate_limited"]
    clock.now += 10  # one more creation allowed (6 per minute)
    assert create("r3") == "joined"
    clock.now += 10
    assert create("r4") == "too_many_rooms"  # three live rooms in this app already
    b = service.open_session("other-app", "b", None, None)
    frames(service, b)
    send(service, b, {"type": "create_room", "requestId": 1, "config": {"roomId": "r4"}})
    assert frames(service, b)[-1]["type"] == "joined"  # the cap is per app


def test_a_reader_that_falls_behind_gets_one_snapshot_instead_of_the_backlog():
    service, clock = make_game(max_outbox_messages=50, messages_per_second=1e9, message_burst=10**9)
    a = service.open_session("app", "a", None, None)
    b = service.open_session("app", "b", None, None)
    send(service, a, {"type": "create_room", "requestId": 1, "config": {"scriptName": "arena"}})
    room_id = frames(service, a)[-1]["roomId"]
    send(service, b, {"type": "join_room", "requestId": 1, "roomId": room_id})
    frames(service, b)
    for _ in range(60):  # b's socket takes nothing meanwhile: its outbox overflows
        tick(service, clock)
        frames(service, a)
    assert b.behind and len(b.outbox) < 50
    queued = len(b.outbox)
    tick(service, clock, 5)
    assert len(b.outbox) == queued  # no room traffic while behind
    send(service, b, {"type": "ping", "requestId": 9, "clientTime": 1})
    assert len(b.outbox) == queued + 1  # replies still queue
    service.caught_up(b)  # its socket drained
    got = frames(service, b)
    assert [m["type"] for m in got][-2:] == ["pong", "state"]
    version = got[-1]["state"]["version"]
    assert version == service.directory.get("app", room_id).version
    tick(service, clock)
    (delta,) = [m["delta"] for m in frames(service, b) if m["type"] == "delta"]
    assert delta["fromVersion"] == version and not b.behind


def test_a_frame_of_no_or_more_than_256_messages_is_refused_whole(game):
    service, _ = game
    a = service.open_session("app", "a", None, None)
    frames(service, a)
    ping = {"type": "ping", "requestId": 1, "clientTime": 1}
    send(service, a, *[ping] * 257)
    (reply,) = frames(service, a)
    assert reply["code"] == "bad_request" and "256" in reply["message"]
    send(service, a, *[ping] * 256)
    assert [m["type"] for m in frames(service, a)] == ["pong"] * 256
    service.receive(a, msgspec.msgpack.encode([]))  # an empty array: no message at all
    (reply,) = frames(service, a)
    assert reply["code"] == "bad_request" and "1 to 256" in reply["message"]


def test_an_apps_own_rate_limits_apply_to_its_connections_others_keep_the_defaults():
    own = {"slow": {"messagesPerSecond": 1, "messageBurst": 2, "roomCreationBurst": 1}}
    service, clock = make_game(app_settings=lambda app_id: own.get(app_id, {}))
    slow = service.open_session("slow", "a", None, None)
    other = service.open_session("other", "a", None, None)
    frames(service, slow), frames(service, other)
    ping = {"type": "ping", "requestId": 1, "clientTime": 1}
    send(service, slow, *[ping] * 3)
    got = frames(service, slow)
    assert [m["type"] for m in got] == ["pong", "pong", "error"]
    assert "1 message(s) dropped: at most 1 per second (bursts of 2)" in got[-1]["message"]
    send(service, other, *[ping] * 3)
    assert [m["type"] for m in frames(service, other)] == ["pong"] * 3
    clock.now += 2  # two more messages: a room, then a second one at once
    send(service, slow, {"type": "create_room", "requestId": 1, "config": {"roomId": "r1"}})
    send(service, slow, {"type": "leave_room", "requestId": 2})
    frames(service, slow)
    clock.now += 1
    send(service, slow, {"type": "create_room", "requestId": 3, "config": {"roomId": "r2"}})
    refused = frames(service, slow)[-1]
    assert (
        refused["code"] == "rate_limited"
        and "at most 30 new rooms per minute" in refused["message"]
    )
