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
    message.ids = table.ids
    message.first_new = table.intern(changes)
    return message


def snapshot(table: PathTable, version: int) -> dict:
    state = Snapshot(roomId="r", state={}, version=version)
    state.paths = list(table.names)
    return {"type": "joined", "roomId": "r", "state": state}


@settings(max_examples=200)
@given(deltas, st.integers(1, 6), st.integers(0, 39))
def test_readers_from_the_start_and_from_a_snapshot_see_the_plain_deltas(
    sequence, max_paths, join_at
):
    table = PathTable(max_paths)
    early, late = CompactReader(), CompactReader()
    early.messages(COMPACT.decode(COMPACT.frame([COMPACT.encode(snapshot(table, 0))])))
    for version, changes in enumerate(sequence):
        if version == join_at:
            late.messages(COMPACT.decode(COMPACT.frame([COMPACT.encode(snapshot(table, version))])))
        message = publish(table, version, changes)
        plain = CODECS["msgpack"].decode(CODECS["msgpack"].encode(message))
        frame = COMPACT.decode(COMPACT.frame([COMPACT.encode(message)]))
        assert early.messages(frame) == [plain]
        if version >= join_at:
            assert late.messages(frame) == [plain]
        assert len(table.names) < max_paths + len(changes)  # starts over once full


def test_a_movement_delta_is_small():
    table = PathTable(4096)
    moves = [{"path": "players.p3-4.x", "operation": "set", "value": 512}]
    first = COMPACT.encode(publish(table, 100, moves))
    again = COMPACT.encode(publish(table, 101, moves))
    plain = CODECS["msgpack"].encode(publish(table, 102, moves))
    assert len(again) < len(first) and len(again) <= 10 < len(plain) // 5
