"""One room's Lua runtime: whitelisted globals, a memory cap, an instruction budget.

The runtime is `lupa.lua54` (PUC Lua 5.4, never LuaJIT: the count hook and the
`__pairs`/`__len` metamethods the state proxies rely on behave as documented
only there). Two Lua files from this package are loaded into it, in order:

- `state.lua`: room.state as write-tracking proxies and the delta collector;
- `prelude.lua`: the sandbox environment scripts run in (with library
  functions bounded in time and `math.random` seeded by the room's seed), the
  instruction budget, and the driver whose functions Python calls.

After loading, the runtime's own globals lose everything a script could misuse
(`python`, `debug`, `load`, `os`, `io`, ...). Scripts never see those globals
anyway: their chunk is loaded with a separate whitelisted environment.
"""

from __future__ import annotations

import functools
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lupa.lua54 as lua

__all__ = ["Driver", "new_seed", "open_runtime"]

_HERE = Path(__file__).parent
_STATE_LUA = (_HERE / "state.lua").read_text(encoding="utf-8")
_PRELUDE_LUA = (_HERE / "prelude.lua").read_text(encoding="utf-8")


@dataclass(frozen=True, slots=True)
class Driver:
    """The Lua functions Python calls; each call is one Lua call.

    Every function returns `(ok, value_or_message, line)`, except: `read`
    returns the state as JSON; `collect` `(ok, message, line, json_or_None,
    path, value, ...)`, where the JSON array holds deletes and table-valued
    sets and the pairs after it are scalar sets; `step` what `D.step` in
    prelude.lua says.
    """

    load: Any  # (name, source)
    init: Any  # (shape, *scalars)
    join: Any  # (shape, *scalars)
    leave: Any  # (reason, shape, *scalars)
    presence: Any  # (hook, clientId): onPlayerDisconnect / onPlayerReconnect
    step: Any  # (tick, dt, resync, count, *(client_id, action_type, shape, *scalars))
    collect: Any  # (resync)
    restore: Any  # (tick, shape, *scalars)
    join_attempt: Any  # (shape, *scalars)
    chat: Any  # (client_id, message)
    dispose: Any  # ()
    drain: Any  # () -> the queued room commands
    pending: Any  # Lua table; pending.n = how many commands are queued
    progress: Any  # Lua table: where `step` is (phase, done, relays), read when it fails
    configure: Any  # (shape, *scalars)
    read: Any  # ()


def _load_chunk(load: Any, code: str | bytes, name: str) -> Any:
    chunk = load(code, "=" + name, "t" if isinstance(code, str) else "b")
    if isinstance(chunk, tuple):  # (nil, message): a bug in the shipped Lua
        raise RuntimeError(f"cannot load {name}: {chunk[1]}")
    return chunk


@functools.cache
def _bytecode(name: str) -> bytes:
    """The shipped Lua file `name`, compiled once per process: every room
    loads it, and parsing it in each room leaves garbage in each room's heap.
    state.lua is also stripped of debug information; prelude.lua keeps its
    names, which library errors show to script authors ("bad argument #1 to
    'find'")."""
    scratch = lua.LuaRuntime(encoding=None, register_eval=False, register_builtins=False)
    g = scratch.globals()
    source = {"state.lua": _STATE_LUA, "prelude.lua": _PRELUDE_LUA}[name]
    chunk = g.load(source.encode(), b"=" + name.encode(), b"t")
    if isinstance(chunk, tuple):
        raise RuntimeError(f"cannot load {name}: {chunk[1]!r}")
    return bytes(g.string.dump(chunk, name == "state.lua"))


def new_seed() -> int:
    """A fresh room seed from the OS: two rooms created in the same second differ."""
    return secrets.randbits(64)


def open_runtime(
    *,
    room_id: str,
    memory_limit: int,
    instruction_limit: int,
    seed: int | None = None,
    tick_instruction_limit: int | None = None,
) -> tuple[lua.LuaRuntime, Driver]:
    """A fresh runtime and its driver. The script itself is loaded by `Driver.load`.

    `seed` (0 <= seed < 2**64; None picks one) seeds the room's `math.random`:
    the same seed gives the same sequence. Raises `lupa.lua54.LuaMemoryError`
    if `memory_limit` cannot even hold the prelude.
    """
    if instruction_limit < 1:
        raise ValueError("instruction_limit must be at least 1")
    if seed is None:
        seed = new_seed()
    if not 0 <= seed < 2**64:
        raise ValueError("seed must be in range(2**64)")
    runtime = lua.LuaRuntime(
        register_eval=False,
        register_builtins=False,
        unpack_returned_tuples=True,
        max_memory=memory_limit,
    )
    g = runtime.globals()
    g.python = None
    load = g.load
    state = _load_chunk(load, _bytecode("state.lua"), "state.lua")()
    # Lua integers are signed 64-bit: pass the seed's bits, not its value.
    lua_seed = seed - 2**64 if seed >= 2**63 else seed
    tick_limit = tick_instruction_limit or 2 * instruction_limit
    d = _load_chunk(load, _bytecode("prelude.lua"), "prelude.lua")(
        state, room_id, instruction_limit, lua_seed, tick_limit
    )
    driver = Driver(
        load=d["load"],
        init=d["init"],
        join=d["join"],
        leave=d["leave"],
        presence=d["presence"],
        step=d["step"],
        collect=d["collect"],
        restore=d["restore"],
        join_attempt=d["joinAttempt"],
        chat=d["chat"],
        dispose=d["dispose"],
        drain=d["drain"],
        pending=d["pending"],
        progress=d["progress"],
        configure=d["configure"],
        read=d["read"],
    )
    return runtime, driver
