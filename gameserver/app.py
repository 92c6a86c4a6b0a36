"""The composition root: config → storage, scripts, service, network; and the
ordered shutdown. Nothing else wires parts together."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable

from gameserver import _accel
from gameserver.config import Config
from gameserver.net import WS_PATH, GameServer
from gameserver.scripting.library import ScriptLibrary
from gameserver.service import GameService
from gameserver.storage import App, NewApp, SqliteAppStore

__all__ = ["GameApp", "DEFAULT_APP"]

log = logging.getLogger("gameserver")

DEFAULT_APP = "default"


class GameApp:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.apps = SqliteAppStore(config.data_dir)
        self.scripts = ScriptLibrary(config.scripts_dirs)
        self.service = GameService(config, self.scripts)
        self.server = GameServer(
            self.service, self.apps, max_message_bytes=config.max_message_bytes
        )
        self.port: int | None = None
        self._stopped = False

    def default_app(self) -> tuple[App, NewApp | None]:
        """The `default` app, created on an empty data directory (then with its secret)."""
        app = self.apps.app_by_name(DEFAULT_APP)
        if app is not None:
            return app, None
        created = self.apps.create_app(DEFAULT_APP)
        return created.app, created

    async def start(self) -> int:
        log.info("state core: %s", _accel.IMPL)
        self.port = await self.server.start(self.config.host, self.config.port)
        return self.port

    async def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        await self.server.stop()
        self.apps.close()

    async def serve_until_signalled(self, on_ready: Callable[[int], None]) -> None:
        """Serve until SIGTERM/SIGINT, then close rooms and sockets in order."""
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, stop.set)
        port = await self.start()
        on_ready(port)
        await stop.wait()
        log.info("shutting down")
        await self.stop()


def ws_url(host: str, port: int) -> str:
    shown = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    return f"ws://{shown}:{port}{WS_PATH}"
