"""The messages of protocol version 1, typed, tagged by `type`.

Client messages are msgspec Structs: `parse` turns one decoded message into
one of them or raises `BadRequest` / `UnknownType`. New fields get defaults,
unknown fields are ignored, so old clients keep working as the protocol grows.
Server messages are built as plain dicts by the small functions at the bottom;
their shapes are documented in docs/protocol.md.
"""

from __future__ import annotations

from typing import Any

import msgspec

from gameserver.errors import BadRequest, UnknownType
from gameserver.protocol.values import INT64_MAX, INT64_MIN

__all__ = [
    "RoomConfig",
    "CreateRoom",
    "JoinRoom",
    "LeaveRoom",
    "SendAction",
    "Chat",
    "GetState",
    "ListRooms",
    "Ping",
    "ClientMessage",
    "CLIENT_MESSAGE_TYPES",
    "parse",
    "request_id_of",
    "error",
]

RequestId = int | str | None
_MAX_REQUEST_ID_LENGTH = 128


class _Message(msgspec.Struct, kw_only=True, rename="camel", tag_field="type"):
    request_id: RequestId = None


class RoomConfig(msgspec.Struct, kw_only=True, rename="camel"):
    room_id: str | None = None
    category_id: str | None = None
    max_players: int | None = None
    tick_rate: int | None = None
    script_name: str | None = None
    metadata: dict[str, str] = msgspec.field(default_factory=dict)


class CreateRoom(_Message, tag="create_room"):
    config: RoomConfig = msgspec.field(default_factory=RoomConfig)


class JoinRoom(_Message, tag="join_room"):
    room_id: str
    metadata: dict[str, str] = msgspec.field(default_factory=dict)
    # The version the client holds of this room, when it comes back after a
    # dropped connection: the reply is `resumed` plus the deltas it missed.
    last_version: int | None = None


class LeaveRoom(_Message, tag="leave_room"):
    pass


class Action(msgspec.Struct):
    type: str
    data: Any = None


class SendAction(_Message, tag="action"):
    action: Action


class Chat(_Message, tag="chat"):
    message: str


class GetState(_Message, tag="get_state"):
    pass


class ListRooms(_Message, tag="list_rooms"):
    category_id: str | None = None


class Ping(_Message, tag="ping"):
    client_time: int | float


ClientMessage = CreateRoom | JoinRoom | LeaveRoom | SendAction | Chat | GetState | ListRooms | Ping

_BY_TYPE: dict[str, type[_Message]] = {
    cls.__struct_config__.tag: cls  # type: ignore[misc]
    for cls in (CreateRoom, JoinRoom, LeaveRoom, SendAction, Chat, GetState, ListRooms, Ping)
}


# Every `type` a client may send.
CLIENT_MESSAGE_TYPES = tuple(_BY_TYPE)


def request_id_of(raw: Any) -> RequestId:
    """The requestId to echo in an error reply, if the message carried a usable one."""
    if type(raw) is not dict:
        return None
    rid = raw.get("requestId")
    if (type(rid) is int and INT64_MIN <= rid <= INT64_MAX) or (
        type(rid) is str and len(rid) <= _MAX_REQUEST_ID_LENGTH
    ):
        return rid
    return None


def parse(raw: Any) -> ClientMessage:
    """One decoded message → its Struct. Raises BadRequest or UnknownType."""
    if type(raw) is not dict:
        raise BadRequest("a message must be a map with a `type`")
    kind = raw.get("type")
    if type(kind) is not str:
        raise BadRequest("a message must have a string `type`")
    cls = _BY_TYPE.get(kind)
    if cls is None:
        raise UnknownType(f"unknown message type {kind[:64]!r}")
    try:
        message = msgspec.convert(raw, cls, strict=True)
    except msgspec.ValidationError as exc:
        raise BadRequest(f"{kind}: {exc}") from None
    problem = request_id_problem(message.request_id)
    if problem is not None:
        raise BadRequest(problem)
    return message  # type: ignore[return-value]


def request_id_problem(rid: RequestId) -> str | None:
    """What is wrong with a requestId the types let through, if anything."""
    if type(rid) is str and len(rid) > _MAX_REQUEST_ID_LENGTH:
        return f"requestId longer than {_MAX_REQUEST_ID_LENGTH} characters"
    if type(rid) is int and not INT64_MIN <= rid <= INT64_MAX:
        return "requestId is out of the 64-bit integer range"
    return None


# Server → client. Each returns the message as a dict, ready to encode.


def error(code: str, message: str, request_id: RequestId = None, **extra: Any) -> dict[str, Any]:
    msg: dict[str, Any] = {"type": "error", "code": code, "message": message}
    if request_id is not None:
        msg["requestId"] = request_id
    msg.update(extra)
    return msg


def with_request_id(msg: dict[str, Any], request_id: RequestId) -> dict[str, Any]:
    if request_id is not None:
        msg["requestId"] = request_id
    return msg
