"""Bytes in, values out, and back: one long-lived codec per `encoding`.

A frame holds one message or an array of messages. The server encodes each
message once (per room and encoding) and builds a client's frame by gluing the
already-encoded messages into an array, so a delta encoded once can sit in
many frames without being encoded again.

`compact` is msgpack with deltas as arrays and paths numbered per room
(docs/protocol.md, "The compact encoding"). It learns the numbers from the
message objects the engine builds (engine/paths.py): a delta carries `ids`
and `first_new`, a snapshot carries `paths`. Plain codecs see only the dict.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import msgspec

from gameserver.errors import BadRequest
from gameserver.protocol.messages import ClientMessage, request_id_problem

__all__ = ["Codec", "CODECS", "get_codec"]


def _msgpack_array(parts: list[bytes]) -> bytes:
    """A msgpack array of already-encoded values."""
    n = len(parts)
    if n < 16:
        header = bytes((0x90 | n,))
    elif n < 0x10000:
        header = b"\xdc" + n.to_bytes(2, "big")
    else:
        header = b"\xdd" + n.to_bytes(4, "big")
    return header + b"".join(parts)


# A \uXXXX escape of a high surrogate with no low one after it (msgspec
# words a lone low surrogate well by itself).
_LONE_SURROGATE = re.compile(r"\\u[dD][89abAB][0-9a-fA-F]{2}(?!\\u[dD][c-fC-F])")


class Codec:
    """An encoding: `encode` one message, `decode` one frame, `frame` many;
    `message` reads the common frame, one well-formed client message, in
    one pass."""

    name: str
    binary: bool  # binary frames (msgpack) or text frames (json)
    encode: Callable[[Any], bytes]  # one message → bytes (the library's encoder, bound)
    _typed: msgspec.msgpack.Decoder[ClientMessage] | msgspec.json.Decoder[ClientMessage]

    def decode(self, data: bytes | str) -> Any:
        raise NotImplementedError

    def message(self, data: bytes | str) -> ClientMessage | None:
        """The frame as one client message, decoded straight into its type
        (about a third of `parse(decode(data))`); None for anything else, an
        array or a message with something wrong, which `decode` and `parse`
        then handle and put into words. Both accept exactly the same messages."""
        try:
            # (A text frame on a msgpack connection fails here like any bad frame.)
            message = self._typed.decode(data)  # type: ignore[arg-type]
        except Exception:  # not one well-formed message: the general path says why
            return None
        return message if request_id_problem(message.request_id) is None else None

    def frame(self, parts: list[bytes]) -> bytes:
        """One frame from already-encoded messages: the message itself if alone,
        else an array of them."""
        raise NotImplementedError


class MsgpackCodec(Codec):
    name = "msgpack"
    binary = True

    def __init__(self) -> None:
        self._encoder = msgspec.msgpack.Encoder()
        self._decoder = msgspec.msgpack.Decoder()
        self._typed = msgspec.msgpack.Decoder(ClientMessage)  # type: ignore[arg-type]
        self.encode = self._encoder.encode

    def decode(self, data: bytes | str) -> Any:
        if isinstance(data, str):
            data = data.encode("utf-8", "surrogatepass")
        try:
            return self._decoder.decode(data)
        except Exception as exc:  # msgspec errors, RecursionError: all mean "bad bytes"
            raise BadRequest(f"frame does not decode as msgpack: {exc}") from None

    def frame(self, parts: list[bytes]) -> bytes:
        return parts[0] if len(parts) == 1 else _msgpack_array(parts)


class JsonCodec(Codec):
    name = "json"
    binary = False

    def __init__(self) -> None:
        self._encoder = msgspec.json.Encoder()
        self._decoder = msgspec.json.Decoder()
        self._typed = msgspec.json.Decoder(ClientMessage)  # type: ignore[arg-type]
        self.encode = self._encoder.encode

    def decode(self, data: bytes | str) -> Any:
        try:
            return self._decoder.decode(data)
        except Exception as exc:
            reason = str(exc)
            if reason == "Input data was truncated" and _LONE_SURROGATE.search(
                data if isinstance(data, str) else data.decode("utf-8", "replace")
            ):
                # What msgspec says for "\ud800" (JavaScript's JSON.stringify
                # writes a broken emoji that way), which is not truncated at all.
                reason = "a string holds an unpaired surrogate escape (\\ud800-\\udbff)"
            raise BadRequest(f"frame does not decode as JSON: {reason}") from None

    def frame(self, parts: list[bytes]) -> bytes:
        if len(parts) == 1:
            return parts[0]
        return b"[" + b",".join(parts) + b"]"


class CompactCodec(MsgpackCodec):
    name = "compact"

    def __init__(self) -> None:
        super().__init__()
        self._encode_value = self._encoder.encode
        self.encode = self._encode_message

    def _encode_message(self, message: Any) -> bytes:
        first_new = getattr(message, "first_new", None)
        if first_new is not None:
            return self._encode_value(self._delta(message, first_new))
        state = message.get("state")
        paths = getattr(state, "paths", None)
        if paths is not None:  # a snapshot: the path table at its version goes with it
            return self._encode_value({**message, "paths": paths})
        return self._encode_value(message)

    @staticmethod
    def _delta(message: Any, first_new: int) -> list[Any]:
        """[fromVersion % 128, tick - fromVersion, item...]: a set is two items,
        ref and value; a delete is [ref]; nil (first): a new path table. A ref
        is a path's number, or its text the first time (which gives it the
        next number). The reader knows its version, so 7 bits of it check the
        chain; the tick, counted from the version, is one byte while the room
        changes every tick."""
        delta = message["delta"]
        version = delta["fromVersion"]
        out: list[Any] = [version & 127, delta["tick"] - version]
        if first_new < 0:
            out.append(None)
            first_new = 0
        ids = message.ids
        for change in delta["changes"]:
            path = change["path"]
            ref: int | str = ids[path]
            if ref == first_new:  # defined here, in order
                first_new += 1
                ref = path
            if change["operation"] == "set":
                out += (ref, change["value"])
            else:
                out.append([ref])
        return out

    def frame(self, parts: list[bytes]) -> bytes:
        """One message alone, several as an array. A reader tells a delta
        (an array starting with a number) from an array of messages (whose
        first element is a map or a delta)."""
        return parts[0] if len(parts) == 1 else _msgpack_array(parts)


CODECS: dict[str, Codec] = {
    "msgpack": MsgpackCodec(),
    "json": JsonCodec(),
    "compact": CompactCodec(),
}


def get_codec(name: str) -> Codec | None:
    return CODECS.get(name)
