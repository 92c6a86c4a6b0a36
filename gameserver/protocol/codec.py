"""Bytes in, values out, and back: one long-lived codec per `encoding`.

A frame holds one message or an array of messages. The server encodes each
message once (per room and encoding) and builds a client's frame by gluing the
already-encoded messages into an array, so a delta encoded once can sit in
many frames without being encoded again.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec

from gameserver.errors import BadRequest

__all__ = ["Codec", "CODECS", "get_codec"]


class Codec:
    """An encoding: `encode` one message, `decode` one frame, `frame` many."""

    name: str
    binary: bool  # binary frames (msgpack) or text frames (json)
    encode: Callable[[Any], bytes]  # one message → bytes (the library's encoder, bound)

    def decode(self, data: bytes | str) -> Any:
        raise NotImplementedError

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
        self.encode = self._encoder.encode

    def decode(self, data: bytes | str) -> Any:
        if isinstance(data, str):
            data = data.encode("utf-8", "surrogatepass")
        try:
            return self._decoder.decode(data)
        except Exception as exc:  # msgspec errors, RecursionError: all mean "bad bytes"
            raise BadRequest(f"frame does not decode as msgpack: {exc}") from None

    def frame(self, parts: list[bytes]) -> bytes:
        n = len(parts)
        if n == 1:
            return parts[0]
        if n < 16:
            header = bytes((0x90 | n,))
        elif n < 0x10000:
            header = b"\xdc" + n.to_bytes(2, "big")
        else:
            header = b"\xdd" + n.to_bytes(4, "big")
        return header + b"".join(parts)


class JsonCodec(Codec):
    name = "json"
    binary = False

    def __init__(self) -> None:
        self._encoder = msgspec.json.Encoder()
        self._decoder = msgspec.json.Decoder()
        self.encode = self._encoder.encode

    def decode(self, data: bytes | str) -> Any:
        try:
            return self._decoder.decode(data)
        except Exception as exc:
            raise BadRequest(f"frame does not decode as JSON: {exc}") from None

    def frame(self, parts: list[bytes]) -> bytes:
        if len(parts) == 1:
            return parts[0]
        return b"[" + b",".join(parts) + b"]"


CODECS: dict[str, Codec] = {"msgpack": MsgpackCodec(), "json": JsonCodec()}


def get_codec(name: str) -> Codec | None:
    return CODECS.get(name)
