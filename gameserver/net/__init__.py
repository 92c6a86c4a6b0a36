"""The only layer that does I/O: sockets, timers."""

from gameserver.net.server import WS_PATH, GameServer

__all__ = ["GameServer", "WS_PATH"]
