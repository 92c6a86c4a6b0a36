"""The codecs and the message parser: total on any input."""

from __future__ import annotations

import json

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gameserver.errors import BadRequest, RemoteError, UnknownType
from gameserver.protocol import CODECS, check_value, parse
from gameserver.protocol.messages import CLIENT_MESSAGE_TYPES, CreateRoom, Ping


@pytest.mark.parametrize("count", [1, 2, 15, 16, 300, 70_000])
def test_array_frame_of_preencoded_messages_decodes_to_the_list(count):
    messages = [{"type": "ping", "n": i} for i in range(count)]
    for codec in CODECS.values():
        frame = codec.frame([codec.encode(m) for m in messages])
        decoded = codec.decode(frame)
        assert decoded == (messages[0] if count == 1 else messages)


def test_json_frames_are_plain_json():
    codec = CODECS["json"]
    frame = codec.frame([codec.encode({"a": 1}), codec.encode({"b": "é"})])
    assert json.loads(frame) == [{"a": 1}, {"b": "é"}]


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        ('{"m": "\\ud83d"}', "a string holds an unpaired surrogate escape"),  # half an emoji
        (b'{"m": "\\ud83dx"}', "a string holds an unpaired surrogate escape"),
        ('{"m": "\\ude00"}', "invalid utf-16 surrogate pair"),
        (b'{"m": "ok", ', "Input data was truncated"),  # truly truncated: said as it is
    ],
)
def test_json_decode_errors_say_what_is_wrong(frame, reason):
    with pytest.raises(BadRequest) as refused:
        CODECS["json"].decode(frame)
    assert reason in refused.value.message
    assert CODECS["json"].decode('{"m": "\\ud83d\\ude00"}') == {"m": "\U0001f600"}


def test_parse_gives_typed_messages_with_defaults():
    msg = parse({"type": "create_room", "requestId": "r1"})
    assert isinstance(msg, CreateRoom) and msg.request_id == "r1"
    assert msg.config.metadata == {} and msg.config.max_players is None
    ping = parse({"type": "ping", "requestId": 3, "clientTime": 1.5, "future": "ignored"})
    assert isinstance(ping, Ping) and ping.client_time == 1.5


@pytest.mark.parametrize(
    ("raw", "error"),
    [
        ({"type": "warp"}, UnknownType),
        ({"type": None}, BadRequest),
        ("ping", BadRequest),
        ({"type": "join_room", "roomId": None}, BadRequest),
        ({"type": "chat", "message": 5}, BadRequest),
        ({"type": "action", "action": {"data": 1}}, BadRequest),
        ({"type": "ping", "requestId": 1.5}, BadRequest),
        ({"type": "ping", "requestId": "x" * 129}, BadRequest),
        ({"type": "create_room", "config": {"metadata": {"a": 1}}}, BadRequest),
    ],
)
def test_parse_refuses_with_the_right_code(raw, error):
    with pytest.raises(error):
        parse(raw)


@pytest.mark.parametrize(
    "value",
    [
        float("nan"),
        float("-inf"),
        2**63,
        -(2**63) - 1,
        b"x",
        {1: 1},
        "\ud800",
        {"k": "\udfff"},
        object(),
    ],
)
def test_check_value_refuses_what_cannot_be_json(value):
    with pytest.raises(BadRequest):
        check_value(value, 8)


def test_check_value_depth_and_limits():
    check_value({"a": [1, 2.5, None, True, "é", {"b": 2**63 - 1, "c": -(2**63)}]}, 8)
    deep = [[[[1]]]]
    check_value(deep, 4)
    with pytest.raises(BadRequest):
        check_value(deep, 3)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"a": [1, {"b": float("nan")}]}, "data.a[1].b: number is not finite"),
        ({"a": {1: 2}}, "data.a: map keys must be strings"),
        ({"a": ["x", "\ud800"]}, "data.a[1]: string is not valid UTF-8"),
        ([[[[1]]]], "data[0][0][0]: nested too deep"),
    ],
)
def test_check_value_names_the_path_of_what_it_refuses(value, message):
    with pytest.raises(BadRequest) as refused:
        check_value(value, 3, "data")
    assert refused.value.message == message


flat_values = st.one_of(
    st.none(), st.booleans(), st.floats(), st.text(max_size=3),
    st.integers(-(2**64), 2**64),
)  # fmt: skip


def verdict(value, depth):
    try:
        check_value(value, depth, "data")
    except BadRequest as refused:
        return refused.message
    return None


@given(
    st.dictionaries(st.one_of(st.text(max_size=3), st.integers(0, 2)), flat_values, max_size=6),
    st.integers(0, 2),
)
def test_the_flat_map_shortcut_checks_as_the_general_path_does(value, depth):
    from gameserver.protocol import values

    fast = verdict(value, depth)
    real, values._plain_map = values._plain_map, lambda value: False
    try:
        assert fast == verdict(value, depth)
    finally:
        values._plain_map = real


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_any_bytes_decode_or_fail_with_a_remote_error(data):
    for codec in CODECS.values():
        try:
            decoded = codec.decode(data)
        except BadRequest:
            continue
        try:
            for raw in decoded if isinstance(decoded, list) else [decoded]:
                parse(raw)
        except RemoteError:
            pass


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text() | st.binary(),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.one_of(st.text(), st.integers()), inner, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_whatever_check_value_accepts_encodes_in_both_encodings(value):
    try:
        check_value(value, 32)
    except BadRequest:
        return
    for codec in CODECS.values():
        assert codec.decode(codec.encode({"v": value}))["v"] == value or value != value
    msgspec.json.encode(value)


# Messages of every type with fields of right and wrong kinds, as a client could send.
values = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**65), 2**65), st.floats(allow_nan=False),
    st.text(max_size=130), st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.one_of(st.text(max_size=3), st.integers()), max_size=2),
)  # fmt: skip
fields = st.dictionaries(
    st.sampled_from(
        [
            "requestId",
            "config",
            "roomId",
            "metadata",
            "lastVersion",
            "action",
            "message",
            "categoryId",
            "clientTime",
            "somethingNew",
        ]
    ),  # fmt: skip
    st.one_of(values, st.fixed_dictionaries({"type": values}, optional={"data": values})),
    max_size=4,
)
messages = st.builds(
    lambda kind, rest: {**rest, "type": kind},
    st.sampled_from([*CLIENT_MESSAGE_TYPES, "nope"]) | values,
    fields,
)


request_ids = st.one_of(st.none(), st.integers(-(2**64), 2**64), st.text(max_size=130))
well_formed = st.one_of(
    st.fixed_dictionaries(
        {"type": st.just("action"), "action": st.fixed_dictionaries({"type": st.text(max_size=5)}, optional={"data": values})},
        optional={"requestId": request_ids},
    ),
    st.fixed_dictionaries(
        {"type": st.just("join_room"), "roomId": st.text(max_size=5)},
        optional={"lastVersion": st.integers(-5, 2**64), "metadata": st.dictionaries(st.text(max_size=3), st.text(max_size=3), max_size=2)},
    ),
    st.fixed_dictionaries({"type": st.just("chat"), "message": st.text(max_size=5)}, optional={"requestId": request_ids}),
    st.fixed_dictionaries({"type": st.just("ping"), "clientTime": st.one_of(st.integers(), st.floats(allow_nan=False))}),
    st.fixed_dictionaries(
        {"type": st.just("create_room")},
        optional={"config": st.fixed_dictionaries({}, optional={"roomId": st.text(max_size=5), "maxPlayers": values, "tickRate": st.integers(0, 200)})},
    ),
)  # fmt: skip


@settings(max_examples=400, deadline=None)
@given(st.one_of(messages, well_formed), st.sampled_from(sorted(CODECS)))
def test_the_one_pass_read_accepts_exactly_what_parse_accepts(raw, name):
    codec = CODECS[name]
    try:
        frame = codec.encode(raw)
    except (TypeError, OverflowError, msgspec.EncodeError):
        return  # not encodable by this library: nothing a client could send through it
    try:
        slow = parse(codec.decode(frame))
    except RemoteError:
        slow = None
    assert codec.message(frame) == slow
