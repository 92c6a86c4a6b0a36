"""What a JSON-shaped value is, checked on everything a client sends.

Decoders hand us whatever the bytes said: msgpack ext types, binary strings,
integer map keys, 200-digit JSON integers, NaN, lone surrogates. Anything that
could not be re-encoded for every other member in both encodings is refused
here, at the edge, so that one client's payload never breaks a room's frame.
"""

from __future__ import annotations

import math
from typing import Any

import msgspec

from gameserver.errors import BadRequest

__all__ = ["check_value", "check_text", "encoded_size", "INT64_MIN", "INT64_MAX"]

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1


def check_text(text: str, what: str) -> None:
    """A string must encode as UTF-8 (no lone surrogates)."""
    if not text.isascii():
        try:
            _check_utf8(text)
        except _Refused as refused:
            raise BadRequest(f"{what}: {refused.reason}") from None


class _Refused(Exception):
    """A check failed; `where` is built from the inside out as it unwinds,
    so that values that pass never pay for naming their paths."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        self.where = ""


def check_value(value: Any, max_depth: int, where: str = "$") -> None:
    """Raise BadRequest unless `value` is null, bool, 64-bit int, finite float,
    UTF-8 string, list, or map with string keys, nested at most `max_depth` deep."""
    try:
        _check(value, max_depth)
    except _Refused as refused:
        raise BadRequest(f"{where}{refused.where}: {refused.reason}") from None


def _check(value: Any, depth: int) -> None:
    kind = type(value)
    if value is None or kind is bool or kind is str and value.isascii():
        return
    if kind is dict and depth > 0 and _plain_map(value):
        return
    if kind is int:
        if not INT64_MIN <= value <= INT64_MAX:
            raise _Refused("integer out of 64-bit range")
    elif kind is float:
        if not math.isfinite(value):
            raise _Refused("number is not finite")
    elif kind is str:
        _check_utf8(value)
    elif kind is list:
        if depth <= 0:
            raise _Refused("nested too deep")
        for i, item in enumerate(value):
            try:
                _check(item, depth - 1)
            except _Refused as refused:
                refused.where = f"[{i}]{refused.where}"
                raise
    elif kind is dict:
        if depth <= 0:
            raise _Refused("nested too deep")
        for key, item in value.items():
            if type(key) is not str:
                raise _Refused("map keys must be strings")
            if not key.isascii():
                _check_utf8(key)
            try:
                _check(item, depth - 1)
            except _Refused as refused:
                refused.where = f".{key}{refused.where}"
                raise
    else:
        raise _Refused("unsupported value type")


def _plain_map(value: dict[Any, Any]) -> bool:
    """Whether `value` is a map of ASCII keys to ASCII strings, booleans,
    nulls, finite floats and 64-bit ints (most actions' data), checked in
    one loop; False sends it the general way, which says what is wrong."""
    for key, item in value.items():
        kind = type(item)
        if not (
            type(key) is str
            and key.isascii()
            and (
                item is None
                or kind is bool
                or (kind is float and math.isfinite(item))
                or (kind is int and INT64_MIN <= item <= INT64_MAX)
                or (kind is str and item.isascii())
            )
        ):
            return False
    return True


def _check_utf8(text: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise _Refused("string is not valid UTF-8") from None


_SIZER = msgspec.msgpack.Encoder()


def encoded_size(value: Any) -> int:
    """The MessagePack size of a value that passed `check_value`: one figure for
    a payload's size whichever encoding the client used (JSON spells the same
    value longer), and what the server itself will relay."""
    return len(_SIZER.encode(value))
