"""The only layer that does I/O: sockets, timers.

Two transports serve the same protocol: `GameServer` on websockets and
`PicowsGameServer` on picows (Config.transport picks one).
"""

from gameserver.net.picows_server import GameServer as PicowsGameServer
from gameserver.net.server import WS_PATH, GameServer

__all__ = ["GameServer", "PicowsGameServer", "WS_PATH"]
