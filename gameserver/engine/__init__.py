"""The authoritative core: rooms, ticks, state. No I/O; `now` is a parameter."""

from gameserver.engine.directory import RoomDirectory
from gameserver.engine.logic import Change, RelayLogic, RoomLogic
from gameserver.engine.room import Player, Room, RoomSink
from gameserver.engine.scheduler import Scheduler
from gameserver.engine.stats import ServiceStats, TickStats

__all__ = [
    "Change",
    "Player",
    "RelayLogic",
    "Room",
    "RoomDirectory",
    "RoomLogic",
    "RoomSink",
    "Scheduler",
    "ServiceStats",
    "TickStats",
]
