"""The dispatcher fuzzed: structured random frames through GameService.receive.

Frames are built by hand (a small MessagePack packer and JSON writer below)
so they can hold what the libraries refuse to encode but a peer can send:
lone surrogates, integers past 64 bits, NaN, deep nesting, binary, ext types,
integer map keys. Whatever arrives, the service answers with a normal reply
or an `error` whose code docs/protocol.md lists; never `internal_error`, and
nothing is logged at ERROR. The rooms tick in between, so a scripted room's
Lua sees whatever action data got through.
"""

from __future__ import annotations

import json
import logging
import math
import struct

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gameserver.config import BUILTIN_SCRIPTS_DIR, Config
from gameserver.protocol.messages import CLIENT_MESSAGE_TYPES
from gameserver.scripting.library import ScriptLibrary
from gameserver.service import GameService

# docs/protocol.md, "Errors", less `internal_error`.
DOCUMENTED_CODES = {
    "bad_request",
    "unknown_type",
    "room_not_found",
    "room_full",
    "room_exists",
    "already_in_room",
    "not_in_room",
    "room_locked",
    "join_refused",
    "script_not_found",
    "rate_limited",
    "too_many_rooms",
    "script_error",
}
TYPES = list(CLIENT_MESSAGE_TYPES)


# Frames by hand ---------------------------------------------------------------


def pack(value, out: bytearray) -> None:
    """MessagePack, including what msgspec would refuse to write."""
    if value is None:
        out += b"\xc0"
    elif value is True or value is False:
        out += b"\xc3" if value else b"\xc2"
    elif isinstance(value, int):
        if 0 <= value < 2**64:
            out += b"\xcf" + value.to_bytes(8, "big")
        elif -(2**63) <= value < 0:
            out += b"\xd3" + value.to_bytes(8, "big", signed=True)
        else:  # no MessagePack integer holds it: the nearest a peer can send
            out += b"\xcb" + struct.pack(">d", float(value))
    elif isinstance(value, float):
        out += b"\xcb" + struct.pack(">d", value)
    elif isinstance(value, str):
        data = value.encode("utf-8", "surrogatepass")  # lone surrogates: invalid UTF-8
        out += b"\xdb" + len(data).to_bytes(4, "big") + data
    elif isinstance(value, bytes):
        out += b"\xc6" + len(value).to_bytes(4, "big") + value
    elif isinstance(value, msgspec.msgpack.Ext):
        out += b"\xc9" + len(value.data).to_bytes(4, "big") + struct.pack(">b", value.code)
        out += value.data
    elif isinstance(value, list):
        out += b"\xdd" + len(value).to_bytes(4, "big")
        for item in value:
            pack(item, out)
    elif isinstance(value, dict):
        out += b"\xdf" + len(value).to_bytes(4, "big")
        for key, item in value.items():
            pack(key, out)
            pack(item, out)
    else:
        raise TypeError(type(value))


def write_json(value) -> str:
    """JSON, including NaN, Infinity, long integers and lone-surrogate escapes."""
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if value is None or isinstance(value, (bool, int, float, str)):
        return json.dumps(value)  # ensure_ascii: "\ud800" stays an escape
    if isinstance(value, bytes):
        return json.dumps(value.decode("latin-1"))
    if isinstance(value, msgspec.msgpack.Ext):
        return json.dumps({"$ext": value.code})
    if isinstance(value, list):
        return "[" + ",".join(write_json(item) for item in value) + "]"
    return "{" + ",".join(f"{json.dumps(str(k))}:{write_json(v)}" for k, v in value.items()) + "}"


# Strategies -------------------------------------------------------------------

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([2**63 - 1, -(2**63), 2**63, 2**64 - 1, 0, -1]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.sampled_from(["\ud800", "a\udfffb", "x" * 5000, "é" * 40]),
    st.binary(max_size=16),
    st.builds(msgspec.msgpack.Ext, st.integers(-128, 127), st.binary(max_size=8)),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.one_of(st.text(max_size=8), st.integers(0, 9)), inner, max_size=4),
    ),
    max_leaves=20,
)

# What a well-behaved client sends: JSON-shaped (these reach the room scripts).
plain_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(alphabet=st.characters(exclude_categories=["Cs"]), max_size=10),
)
plain = st.recursive(
    plain_scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


@st.composite
def deep(draw) -> object:
    """Nesting around the depth limits (max_value_depth is 32, the decoders' far more)."""
    depth = draw(st.sampled_from([30, 31, 32, 33, 200]))
    value: object = draw(scalars)
    for _ in range(depth):
        value = [value] if draw(st.booleans()) else {"k": value}
    return value


def either(good: st.SearchStrategy) -> st.SearchStrategy:
    """Mostly a plausible value for the field, sometimes anything at all."""
    return st.one_of(good, good, good, good, values, deep())


ids = st.sampled_from(["r", "arena", "tag", "x" * 65, "", "a b", "r\u0000"])
scripts = st.sampled_from([None, "arena", "tag", "tictactoe", "missing", "../etc", ""])
metadata = st.dictionaries(st.text(max_size=6), st.text(max_size=6), max_size=3)
request_ids = st.one_of(
    st.integers(-5, 5), st.text(max_size=4), st.sampled_from([2**64, "x" * 200])
)
room_config = st.fixed_dictionaries(
    {},
    optional={
        "roomId": either(ids),
        "categoryId": either(ids),
        "maxPlayers": either(st.integers(-2, 3)),
        "tickRate": either(st.sampled_from([0, 1, 64, 128, 129])),
        "scriptName": either(scripts),
        "metadata": either(metadata),
    },
)
action = st.fixed_dictionaries(
    {"type": either(st.sampled_from(["move", "steer", "place", "x", ""]))},
    optional={
        "data": st.one_of(
            plain,
            st.fixed_dictionaries({"x": plain_scalars, "y": plain_scalars}),
            st.fixed_dictionaries({"vx": plain_scalars, "vy": plain_scalars}),
            st.fixed_dictionaries({"cell": plain_scalars}),
            values,
            deep(),
        )
    },
)
# The fields of each message type, (required, optional); each plausible most of the time.
FIELDS = {
    "create_room": ({}, {"config": either(room_config)}),
    "join_room": ({"roomId": either(ids)}, {"metadata": either(metadata)}),
    "leave_room": ({}, {}),
    "action": ({"action": either(action)}, {}),
    "chat": ({"message": either(st.text(max_size=30))}, {}),
    "get_state": ({}, {}),
    "list_rooms": ({}, {"categoryId": either(ids)}),
    "ping": ({"clientTime": either(st.floats(allow_nan=False, allow_infinity=False))}, {}),
}
typed = st.one_of(
    *(
        st.fixed_dictionaries(
            {"type": st.just(kind), **required},
            optional={"requestId": either(request_ids), "unknownField": plain, **optional},
        )
        for kind, (required, optional) in FIELDS.items()
    )
)
ALL_FIELDS = {
    k: v for required, optional in FIELDS.values() for k, v in {**required, **optional}.items()
}
anything = st.fixed_dictionaries(
    {"type": st.one_of(st.sampled_from(TYPES), values)},
    optional={"requestId": values, "unknownField": values, **ALL_FIELDS},
)
messages = st.one_of(typed, typed, typed, anything)
frames = st.one_of(
    messages,
    st.lists(messages, min_size=0, max_size=5),
    values,
    deep(),
)
steps = st.lists(
    st.tuples(
        st.one_of(frames, frames, frames, st.binary(max_size=40)),
        st.sampled_from([0.0, 0.002, 0.016, 0.5]),  # clock advance before the next frame
    ),
    min_size=1,
    max_size=8,
)


# The test ---------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Errors(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def error_log():
    handler = Errors()
    logger = logging.getLogger("gameserver")
    logger.addHandler(handler)
    yield handler
    logger.removeHandler(handler)


def replies(service: GameService, sessions) -> list[dict]:
    service.take_pending()
    out = []
    for session in sessions:
        frame = session.take_frame()
        if frame is not None:
            decoded = session.codec.decode(frame)  # what we send always decodes
            # (compact deltas are arrays: the maps are what can be errors)
            items = decoded if type(decoded) is list else [decoded]
            out.extend(item for item in items if type(item) is dict)
    return out


@pytest.mark.parametrize("encoding", ["msgpack", "json", "compact"])
@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(start=st.sampled_from([None, "arena", "r"]), steps=steps)
def test_random_frames_get_documented_answers_only(encoding, start, steps, error_log):
    clock = Clock()
    service = GameService(
        Config(messages_per_second=1e9, message_burst=10**9),
        ScriptLibrary([BUILTIN_SCRIPTS_DIR]),
        clock=clock,
        wall_ms=lambda: int(clock.now * 1000),
    )
    # Two rooms the fuzzer may join: a scripted one and a plain relay.
    host = service.open_session("app", "host", None, None)
    other = service.open_session("app", "other", "json", None)
    create = {"type": "create_room", "config": {"roomId": "arena", "scriptName": "arena"}}
    service.receive(host, msgspec.msgpack.encode(create))
    service.receive(other, msgspec.json.encode({"type": "create_room", "config": {"roomId": "r"}}))
    fuzzer = service.open_session("app", "fuzzer", encoding, None)
    if start is not None:  # most actions and chat need a room
        join = {"type": "join_room", "roomId": start}
        service.receive(fuzzer, fuzzer.codec.encode(join))
    sessions = [host, other, fuzzer]
    replies(service, sessions)

    error_log.records.clear()
    for frame, advance in steps:
        if isinstance(frame, bytes):
            data: bytes | str = frame  # raw bytes, as they come
        elif encoding != "json":  # compact clients send msgpack
            out = bytearray()
            pack(frame, out)
            data = bytes(out)
        else:
            data = write_json(frame)
        service.receive(fuzzer, data)
        clock.now += advance
        service.run_ticks(clock.now)
        for message in replies(service, sessions):
            if message["type"] == "error":
                assert message["code"] in DOCUMENTED_CODES, message
    assert [r.getMessage() for r in error_log.records] == []
