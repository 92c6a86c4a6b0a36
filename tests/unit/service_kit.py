"""The game service without sockets: a manual clock, frames in and out."""

from __future__ import annotations

import msgspec

from gameserver.config import Config
from gameserver.scripting.library import ScriptLibrary
from gameserver.service import GameService


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def make_game(app_settings=None, **config) -> tuple[GameService, Clock]:
    """A service on a manual clock, with these Config overrides (and, if
    given, `app_settings(app_id)`: each app's own settings)."""
    clock = Clock()
    settings = Config(**config)
    service = GameService(
        settings,
        ScriptLibrary(settings.scripts_dirs),
        app_settings=app_settings or (lambda app_id: {}),
        clock=clock,
        wall_ms=lambda: int(clock.now * 1000),
    )
    return service, clock


def frames(service, session):
    """Decode what the service queued for `session` (one frame → messages)."""
    service.take_pending()
    frame = session.take_frame()
    if frame is None:
        return []
    decoded = msgspec.msgpack.decode(frame)
    return decoded if isinstance(decoded, list) else [decoded]


def tick(service, clock, times=1):
    """Run the next `times` tick deadlines (at once, if the clock is past them)."""
    for _ in range(times):
        clock.now = max(clock.now, service.next_deadline())
        service.run_ticks(clock.now)


def send(service, session, *messages):
    payload = messages[0] if len(messages) == 1 else list(messages)
    service.receive(session, msgspec.msgpack.encode(payload))
