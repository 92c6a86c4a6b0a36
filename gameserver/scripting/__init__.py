"""Lua room scripts: the room-handler lifecycle, run by a sandboxed Lua 5.4 runtime.

`LuaRoomScript` is the whole public surface; see its docstring for what the
engine calls and when.
"""

from gameserver.scripting.lua_room import LuaRoomScript

__all__ = ["LuaRoomScript"]
