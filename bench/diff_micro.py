"""Micro-benchmark of the state-diff kernel on one movement tick.

The room holds 8 players `{"players": {id: {"x", "y", "hp"}}, "tick": n}`;
each tick 2 or 3 players change x and y and `tick` goes up by one.  Times,
per tick, for the compiled and the pure implementation:

- `diff(old, new)` between two snapshots (deep copies: nothing shared),
- `commit(state, changes)` of the tick's 5-7 sets, and
- `tick_*`: that commit plus what `Room.publish` does next, building the
  delta message and encoding it once with the server's msgpack codec (the
  default encoding): the per-room-tick cost the performance goal names.
  `encode_us` is the encoding alone, the same for both kernels.
- `publish_*_us`: the compiled commit and all that `Room.publish` does with
  the result (the `DeltaMessage`, numbering its paths for the compact
  codec, one encode), in the `msgpack` and the `compact` encoding.

Prints one JSON line; times are microseconds per tick, best of several
repeats, and a ratio is python / cython.  Run from the repository root
after `python setup.py build_ext --inplace`:

    .venv/bin/python bench/diff_micro.py
"""

from __future__ import annotations

import copy
import importlib
import json
import random
import sys
import timeit
from pathlib import Path
from types import ModuleType
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # this checkout's build

from gameserver.engine.paths import DeltaMessage, PathTable  # noqa: E402
from gameserver.protocol.codec import CODECS  # noqa: E402

PLAYERS = 8
TICKS = 256  # distinct ticks, replayed in order, so no timing sees one case only
# Many short windows (one pass over the ticks each), keeping the fastest: on
# a shared machine the minimum is what the code costs, the rest is neighbours.
REPEATS = 200


def make_ticks(seed: int = 1) -> tuple[list[dict[str, Any]], list[list[dict[str, Any]]]]:
    """Snapshots of the state after each tick, and each tick's changes."""
    rng = random.Random(seed)
    players = {
        f"p{n}": {"x": round(rng.uniform(0, 100), 3), "y": round(rng.uniform(0, 100), 3), "hp": 100}
        for n in range(PLAYERS)
    }
    state: dict[str, Any] = {"players": players, "tick": 0}
    snapshots, ticks = [copy.deepcopy(state)], []
    for _ in range(TICKS):
        changes = []
        for pid in rng.sample(sorted(players), rng.choice((2, 3))):
            for axis in ("x", "y"):
                value = round(players[pid][axis] + rng.uniform(-1, 1), 3)
                players[pid][axis] = value
                changes.append(
                    {"path": f"players.{pid}.{axis}", "operation": "set", "value": value}
                )
        state["tick"] += 1
        changes.append({"path": "tick", "operation": "set", "value": state["tick"]})
        snapshots.append(copy.deepcopy(state))
        ticks.append(changes)
    return snapshots, ticks


def time_diff(core: ModuleType, snapshots: list[dict[str, Any]]) -> float:
    pairs = list(zip(snapshots, snapshots[1:], strict=False))
    diff = core.diff

    def run() -> None:
        for old, new in pairs:
            diff(old, new)

    best = min(timeit.repeat(run, number=1, repeat=REPEATS))
    return best / len(pairs) * 1e6


def time_commit(core: ModuleType, start: dict[str, Any], ticks: list[list[Any]]) -> float:
    commit = core.commit
    state: dict[str, Any] = {}

    def reset() -> None:  # every pass must replay the ticks from the start
        state.clear()
        state.update(copy.deepcopy(start))

    def run() -> None:
        for changes in ticks:
            commit(state, changes)

    best = float("inf")
    for _ in range(REPEATS):
        reset()
        best = min(best, timeit.timeit(run, number=1))
    return best / len(ticks) * 1e6


def delta_message(version: int, tick: int, effective: list[Any]) -> dict[str, Any]:
    # The message Room.publish builds (less the compact codec's path numbers).
    return {
        "type": "delta",
        "roomId": "room-1",
        "delta": {
            "fromVersion": version,
            "toVersion": version + 1,
            "tick": tick,
            "changes": effective,
        },
    }


def time_tick(core: ModuleType | None, start: dict[str, Any], ticks: list[list[Any]]) -> float:
    """commit, then one encode of the delta message; core None: the message alone
    (every change of these ticks is effective, so it is the same message)."""
    encode = CODECS["msgpack"].encode
    commit = core.commit if core is not None else None
    state: dict[str, Any] = {}

    def reset() -> None:
        state.clear()
        state.update(copy.deepcopy(start))

    def run() -> None:
        for version, changes in enumerate(ticks):
            effective = commit(state, changes) if commit is not None else changes
            encode(delta_message(version, version + 1, effective))

    best = float("inf")
    for _ in range(REPEATS):
        reset()
        best = min(best, timeit.timeit(run, number=1))
    return best / len(ticks) * 1e6


def time_publish(
    core: ModuleType, start: dict[str, Any], ticks: list[list[Any]], codec: str
) -> float:
    """commit, then the delta message as Room.publish builds and encodes it."""
    encode = CODECS[codec].encode
    commit = core.commit
    state: dict[str, Any] = {}
    paths = PathTable(4096)

    def reset() -> None:
        nonlocal paths
        state.clear()
        state.update(copy.deepcopy(start))
        paths = PathTable(4096)

    def run() -> None:
        for version, changes in enumerate(ticks):
            effective = commit(state, changes)
            message = DeltaMessage(delta_message(version, version + 1, effective))
            message.ids = paths.ids
            message.first_new = paths.intern(effective)
            encode(message)

    best = float("inf")
    for _ in range(REPEATS):
        reset()
        best = min(best, timeit.timeit(run, number=1))
    return best / len(ticks) * 1e6


def check(core: ModuleType, snapshots: list[dict[str, Any]], ticks: list[list[Any]]) -> None:
    # The benchmark means nothing unless the kernel does the work it claims.
    state = copy.deepcopy(snapshots[0])
    for n, changes in enumerate(ticks, 1):
        assert core.commit(state, changes) == changes, "every change of a tick is effective"
        assert state == snapshots[n]
        assert len(core.diff(snapshots[n - 1], snapshots[n])) == len(changes)


def main() -> None:
    pure = importlib.import_module("gameserver._core_py")
    try:
        compiled: ModuleType | None = importlib.import_module("gameserver._core")
    except ImportError:
        compiled = None  # not built: report nulls rather than fail
    snapshots, ticks = make_ticks()
    result: dict[str, Any] = {"bench": "diff_micro"}
    for prefix, timer in (
        ("", lambda core: time_diff(core, snapshots)),
        ("commit_", lambda core: time_commit(core, snapshots[0], ticks)),
        ("tick_", lambda core: time_tick(core, snapshots[0], ticks)),
    ):
        python_us = timer(pure)
        cython_us = timer(compiled) if compiled is not None else None
        result[f"{prefix}cython_us"] = round(cython_us, 3) if cython_us else None
        result[f"{prefix}python_us"] = round(python_us, 3)
        result[f"{prefix}ratio"] = round(python_us / cython_us, 2) if cython_us else None
    result["encode_us"] = round(time_tick(None, snapshots[0], ticks), 3)
    for codec in ("msgpack", "compact"):
        publish_us = time_publish(compiled, snapshots[0], ticks, codec) if compiled else None
        result[f"publish_{codec}_us"] = round(publish_us, 3) if publish_us else None
    for core in (pure, compiled):
        if core is not None:
            check(core, snapshots, ticks)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
