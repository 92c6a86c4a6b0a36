"""The wire protocol, sans-I/O: bytes in, typed messages out, and back."""

from gameserver.protocol.codec import CODECS, Codec, get_codec
from gameserver.protocol.messages import ClientMessage, parse, request_id_of
from gameserver.protocol.values import check_text, check_value, encoded_size

__all__ = [
    "CODECS",
    "ClientMessage",
    "Codec",
    "check_text",
    "check_value",
    "encoded_size",
    "get_codec",
    "parse",
    "request_id_of",
]
