"""Coverage-guided fuzzing of the dispatcher with atheris (libFuzzer).

Each input becomes a short session: an encoding, whether the fuzzer sits in a
room running one of the shipped scripts, a plain room or none, then a few frames fed through
GameService.receive with ticks in between. A frame is raw bytes, or messages
built from the input (known types and fields, any values: NaN, long integers,
lone surrogates, binary, ext types, nesting), encoded. A reply with `internal_error`, a
record logged at ERROR, or any exception out of receive/run_ticks is a crash.
The test suite runs it for a bounded number of inputs
(tests/unit/test_atheris_fuzz.py); fuzz/README.md for longer runs.
"""

from __future__ import annotations

import json
import logging
import sys

import atheris
import msgspec

with atheris.instrument_imports(include=["gameserver"]):
    from gameserver.config import BUILTIN_SCRIPTS_DIR, Config
    from gameserver.protocol.messages import CLIENT_MESSAGE_TYPES
    from gameserver.scripting.library import ScriptLibrary
    from gameserver.service import GameService

CONFIG = Config(messages_per_second=1e9, message_burst=10**9)
LIBRARY = ScriptLibrary([BUILTIN_SCRIPTS_DIR])


class _Fail(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        raise RuntimeError(f"logged at {record.levelname}: {record.getMessage()}")


logging.getLogger("gameserver").addHandler(_Fail(logging.ERROR))
logging.getLogger("gameserver").propagate = False


class Clock:
    now = 100.0

    def __call__(self) -> float:
        return self.now


def check(service: GameService, sessions: list) -> None:
    service.take_pending()
    for session in sessions:
        frame = session.take_frame()
        if frame is None:
            continue
        decoded = session.codec.decode(frame)
        # (compact deltas are arrays: the maps are what can be errors)
        for message in decoded if type(decoded) is list else [decoded]:
            if type(message) is not dict:
                continue
            if message.get("type") == "error" and message.get("code") == "internal_error":
                raise RuntimeError(f"internal_error: {message}")


TYPES = list(CLIENT_MESSAGE_TYPES)
FIELDS = ["requestId", "config", "roomId", "metadata", "action", "message", "clientTime"]
# The fuzzer starts in: no room (0), a plain relay room (1), or a room running a shipped script.
ROOMS = [None, None, "arena", "tag", "tictactoe"]
WORDS = ["r", "arena", "tag", "tictactoe", "move", "steer", "place", "cell", "x", "y", "vx", "vy"]


def value(fdp: atheris.FuzzedDataProvider, depth: int = 0) -> object:
    """Any value a decoder could hand us, chosen by the input."""
    kind = fdp.ConsumeIntInRange(0, 12 if depth < 40 else 8)
    if kind == 0:
        return None
    if kind == 1:
        return fdp.ConsumeBool()
    if kind == 2:
        return fdp.ConsumeIntInRange(-(2**63), 2**63 - 1)
    if kind == 3:
        return fdp.ConsumeInt(fdp.ConsumeIntInRange(1, 12))  # past 64 bits (JSON only)
    if kind == 4:
        return fdp.ConsumeFloat()  # NaN and infinities included
    if kind == 5:
        return fdp.ConsumeUnicode(fdp.ConsumeIntInRange(0, 16))  # surrogates included
    if kind == 6:
        return fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 8))
    if kind == 7:
        return msgspec.msgpack.Ext(fdp.ConsumeIntInRange(-128, 127), fdp.ConsumeBytes(4))
    if kind == 8:
        return fdp.PickValueInList(WORDS)
    if kind in (9, 10):
        return [value(fdp, depth + 1) for _ in range(fdp.ConsumeIntInRange(0, 3))]
    keys = WORDS if kind == 11 else [0, 1, -1]
    return {
        fdp.PickValueInList(keys): value(fdp, depth + 1) for _ in range(fdp.ConsumeIntInRange(0, 3))
    }


def message(fdp: atheris.FuzzedDataProvider) -> dict:
    msg: dict = {"type": fdp.PickValueInList(TYPES) if fdp.ConsumeBool() else value(fdp)}
    for _ in range(fdp.ConsumeIntInRange(0, 3)):
        field = fdp.PickValueInList(FIELDS)
        if field == "action" and fdp.ConsumeBool():
            msg[field] = {"type": fdp.PickValueInList(WORDS), "data": value(fdp)}
        else:
            msg[field] = value(fdp)
    return msg


def encode(frame: object, encoding: str) -> bytes | str | None:
    try:
        if encoding != "json":  # compact clients send msgpack
            return msgspec.msgpack.encode(frame)
        return json.dumps(
            frame, default=repr
        )  # NaN, long ints and lone surrogates as JSON has them
    except (TypeError, ValueError, OverflowError, UnicodeError):
        return None


def test_one_input(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    encoding = ("json", "msgpack", "compact")[fdp.ConsumeIntInRange(0, 2)]
    room = fdp.ConsumeIntInRange(0, len(ROOMS) - 1)
    clock = Clock()
    service = GameService(CONFIG, LIBRARY, clock=clock, wall_ms=lambda: int(clock.now * 1000))
    host = service.open_session("app", "host", "json", None)
    fuzzer = service.open_session("app", "fuzzer", encoding, None)
    if room:
        config = {"roomId": "r", "scriptName": ROOMS[room]}
        service.receive(host, json.dumps({"type": "create_room", "config": config}))
        service.receive(fuzzer, fuzzer.codec.encode({"type": "join_room", "roomId": "r"}))
    check(service, [host, fuzzer])
    for _ in range(fdp.ConsumeIntInRange(1, 4)):
        mode = fdp.ConsumeIntInRange(0, 3)
        frame: bytes | str | None
        if mode == 0:  # raw bytes
            frame = fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 256))
        elif mode == 1:  # a batch
            frame = encode([message(fdp) for _ in range(fdp.ConsumeIntInRange(0, 4))], encoding)
        else:  # one message
            frame = encode(message(fdp), encoding)
        if frame is not None:
            service.receive(fuzzer, frame)
        clock.now += fdp.ConsumeIntInRange(0, 40) / 1000
        service.run_ticks(clock.now)
        check(service, [host, fuzzer])


def main() -> None:
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
