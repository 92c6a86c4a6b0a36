"""The compact encoding reads back to exactly what the msgpack encoding sends,
through path tables that grow and start over, for joiners mid-stream too."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from gameserver.engine.paths import DeltaMessage, PathTable, Snapshot
from gameserver.protocol import CODECS
from gameserver.protocol.compact import CompactReader

COMPACT = CODECS["compact"]

change = st.builds(
    lambda path, value, delete: (
        {"path": path, "operation": "delete"}
        if delete
        else {"path": path, "operation": "set", "value": value}
    ),
    st.sampled_from([f"players.p{i}.{axis}" for i in range(6) for axis in "xy"] + ["tick"]),
    st.one_of(st.integers(-(2**40), 2**40), st.text(max_size=5), st.none()),
    st.booleans(),
)
deltas = st.lists(st.lists(change, min_size=1, max_size=8), min_size=1, max_size=40)


def publish(table: PathTable, version: int, changes: list[dict]) -> DeltaMessage:
    message = DeltaMessage(
        type="delta",
        roomId="r",
        delta={
            "fromVersion": version,
            "toVersion": version + 1,
            "tick": version,
            "changes": changes,
        },
    )
    message.first_new = table.intern(changes)
    message.ids = table.ids
    return message


def snapshot(table: PathTable, version: int) -> dict:
    state = Snapshot(roomId="r", state={}, version=version)
    state.paths = list(table.names)
    return {"type": "joined", "roomId": "r", "state": state}


@settings(max_examples=200)
@given(deltas, st.integers(1, 6), st.integers(0, 39), st.integers(0, 300))
def test_readers_from_the_start_and_from_a_snapshot_see_the_plain_deltas(
    sequence, max_paths, join_at, base
):
    table = PathTable(max_paths)
    early, late = CompactReader(), CompactReader()
    early.messages(COMPACT.decode(COMPACT.frame([COMPACT.encode(snapshot(table, base))])))
    join_at += base
    for version, changes in enumerate(sequence, start=base):
        if version == join_at:
            late.messages(COMPACT.decode(COMPACT.frame([COMPACT.encode(snapshot(table, version))])))
        message = publish(table, version, changes)
        plain = CODECS["msgpack"].decode(CODECS["msgpack"].encode(message))
        frame = COMPACT.decode(COMPACT.frame([COMPACT.encode(message)]))
        assert early.messages(frame) == [plain]
        if version >= join_at:
            assert late.messages(frame) == [plain]
        assert len(table.names) < max_paths + len(changes)  # starts over once full


def test_a_missed_delta_shows_as_a_gap_not_as_the_next_version():
    table = PathTable(4096)
    reader = CompactReader()
    reader.messages(COMPACT.decode(COMPACT.encode(snapshot(table, 126))))
    moves = [{"path": "tick", "operation": "set", "value": 1}]
    frames = [COMPACT.encode(publish(table, version, moves)) for version in (126, 127, 128)]
    (first,) = reader.messages(COMPACT.decode(frames[0]))
    (third,) = reader.messages(COMPACT.decode(frames[2]))  # 127 never arrived
    assert first["delta"]["fromVersion"] == 126
    assert third["delta"]["fromVersion"] == 128  # a gap the client's chain check sees


def test_resumed_gives_the_reader_its_version():
    table = PathTable(4096)
    reader = CompactReader()
    reader.messages(COMPACT.decode(COMPACT.encode(snapshot(table, 5))))
    moves = [{"path": "tick", "operation": "set", "value": 1}]
    resumed = {"type": "resumed", "roomId": "r", "fromVersion": 300}
    frame = COMPACT.frame([COMPACT.encode(resumed), COMPACT.encode(publish(table, 300, moves))])
    out = reader.messages(COMPACT.decode(frame))
    assert out[0] == resumed and out[1]["delta"]["fromVersion"] == 300
    assert out[1]["delta"]["tick"] == 300 and out[1]["delta"]["changes"][0]["path"] == "tick"


def test_a_movement_tick_costs_a_few_bytes_per_change():
    # The arena's tick: the counter and two players' x and y, versions past
    # 65,535 (the size a long-running room has).
    table = PathTable(4096)
    paths = ["tick", "players.p1.x", "players.p1.y", "players.p2.x", "players.p2.y"]
    values = [70_000, 512, 300, 999, 700]
    moves = [
        {"path": p, "operation": "set", "value": v} for p, v in zip(paths, values, strict=True)
    ]
    COMPACT.encode(publish(table, 70_000, moves))  # defines the paths
    message = publish(table, 70_001, moves)
    message["delta"]["tick"] = 70_010
    # array header 1, version 1, tick 1, then ref + value: 1 + 5 and 4 x (1 + 3)
    assert len(COMPACT.encode(message)) == 3 + 6 + 4 * 4


def test_a_movement_delta_is_small():
    table = PathTable(4096)
    moves = [{"path": "players.p3-4.x", "operation": "set", "value": 512}]
    first = COMPACT.encode(publish(table, 100, moves))
    again = COMPACT.encode(publish(table, 101, moves))
    plain = CODECS["msgpack"].encode(publish(table, 102, moves))
    assert len(again) < len(first) and len(again) <= 10 < len(plain) // 5
