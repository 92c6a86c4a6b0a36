"""The mirror side of the law, shared by the scripting tests.

The law: applying the changes `tick()` returns, in order, to the previous
mirror gives exactly `read_state()`. `Room.tick()` checks it on every call, so
every test that ticks through a `Room` tests it too.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from gameserver.scripting import LuaRoomScript


def _unescape(segment: str) -> str:
    return segment.replace("~1", ".").replace("~0", "~")


def apply_changes(mirror: Any, changes: list[dict[str, Any]]) -> Any:
    """The mirror after `changes`; strict, so a change that does not fit fails."""
    for change in changes:
        path, operation = change["path"], change["operation"]
        if path == "":
            assert operation == "set", change
            mirror = copy.deepcopy(change["value"])
            continue
        *parents, last = [_unescape(s) for s in path.split(".")]
        node = mirror
        for segment in parents:
            node = node[int(segment)] if isinstance(node, list) else node[segment]
        if isinstance(node, list):
            # Lists change length only through a `set` of the whole list.
            assert operation == "set" and 0 <= int(last) < len(node), change
            node[int(last)] = copy.deepcopy(change["value"])
        elif operation == "set":
            node[last] = copy.deepcopy(change["value"])
        else:
            assert operation == "delete", change
            del node[last]  # a delete of an absent key would be a bug
    return mirror


def canonical(value: Any) -> str:
    """Compares kinds strictly: 1 != 1.0 and [] != {} (Python's == would not)."""
    return json.dumps(value, sort_keys=True)


class Room:
    """A script driven through action steps, with a mirror of its state."""

    def __init__(self, script: LuaRoomScript) -> None:
        self.script = script
        self.mirror: Any = {}
        self.tick_no = 0

    def step(self, index: int) -> bool:
        return self.script.action("tester", {"type": "step", "data": index})

    def tick(self) -> list[dict[str, Any]]:
        self.tick_no += 1
        changes, error = self.script.tick(1 / 64, self.tick_no)
        if error is not None:
            raise error
        self.mirror = apply_changes(self.mirror, changes)
        assert canonical(self.mirror) == canonical(self.script.read_state())
        return changes

    def run(self, index: int) -> list[dict[str, Any]]:
        """Runs step `index`, then ticks: the changes of that step."""
        self.step(index)
        return self.tick()


def steps_source(*steps: str, prelude: str = "") -> str:
    """A script whose onAction runs steps[action.data] (1-based) with `state` bound."""
    bodies = ",\n".join(f"function(room)\nlocal state = room.state\n{s}\nend" for s in steps)
    return f"{prelude}\nSTEPS = {{\n{bodies}\n}}\nfunction onAction(room, id, a) STEPS[a.data](room) end\n"
