"""The composition root: config → storage, scripts, service, network; and the
ordered shutdown. Nothing else wires parts together."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable

from aiohttp import web

from gameserver import _accel
from gameserver.config import Config
from gameserver.errors import ConfigError
from gameserver.net import WS_PATH, GameServer, PicowsGameServer
from gameserver.net.admin import admin_app
from gameserver.net.metrics import metrics_registry
from gameserver.scripting.library import ScriptLibrary
from gameserver.service import GameService
from gameserver.storage import App, NewApp, SqliteAppStore
from gameserver.storage.base import key_weakness
from gameserver.storage.sqlite_scripts import SqliteScriptStore

__all__ = ["GameApp", "DEFAULT_APP"]

log = logging.getLogger("gameserver")

DEFAULT_APP = "default"


class GameApp:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.apps = SqliteAppStore(config.data_dir)
        self.script_store = SqliteScriptStore(config.data_dir)
        self.scripts = ScriptLibrary(config.scripts_dirs, self.script_store)
        self.service = GameService(config, self.scripts, app_settings=self.apps.settings)
        transports: dict[str, type[GameServer | PicowsGameServer]] = {
            "websockets": GameServer,
            "picows": PicowsGameServer,
        }
        if config.transport not in transports:
            raise ValueError(f"unknown transport {config.transport!r}")
        if config.compression not in ("off", "deflate"):
            raise ValueError(f"unknown compression {config.compression!r}")
        if config.compression == "deflate" and config.transport != "websockets":
            raise ValueError("compression needs the websockets transport")
        self.server: GameServer | PicowsGameServer = transports[config.transport](
            self.service, self.apps, max_message_bytes=config.max_message_bytes
        )
        self.metrics = metrics_registry(self.service, self.server.connection_count)
        self.port: int | None = None
        self.admin_port: int | None = None
        self._admin: web.AppRunner | None = None
        self._stopped = False

    def default_app(self) -> tuple[App, NewApp | None]:
        """The `default` app, created on an empty data directory (then with its secret)."""
        app = self.apps.app_by_name(DEFAULT_APP)
        if app is not None:
            return app, None
        created = self.apps.create_app(DEFAULT_APP)
        return created.app, created

    def check_keys(self) -> None:
        """Raise ConfigError naming every app whose keys are weak (short,
        patterned or an example key): not for a server players can reach."""
        weak = []
        for app in self.apps.list_apps():
            reason = key_weakness(
                app.public_key,
                self.apps.secret_key_digest(app.app_id),
                min_chars=self.config.min_key_chars,
            )
            if reason is not None:
                weak.append(f"app {app.name!r} ({app.app_id}): {reason}")
        if weak:
            raise ConfigError(
                "refusing to start with weak app keys (--dev allows them):\n  " + "\n  ".join(weak)
            )

    async def start(self) -> int:
        if self.config.require_strong_keys:
            self.check_keys()
        log.info("state core: %s", _accel.IMPL)
        self.port = await self.server.start(self.config.host, self.config.port)
        admin_port = self.config.admin_port
        if admin_port is None:
            admin_port = self.port + 1 if self.config.port else 0
        self._admin = web.AppRunner(
            admin_app(self.config, self.apps, self.script_store, self.service, self.metrics),
            access_log=None,
        )
        await self._admin.setup()
        site = web.TCPSite(self._admin, self.config.host, admin_port)
        await site.start()
        self.admin_port = int(site._server.sockets[0].getsockname()[1])  # type: ignore[union-attr]
        return self.port

    async def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        await self.server.stop(self.config.drain_timeout)
        if self._admin is not None:
            await self._admin.cleanup()
        self.script_store.close()
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
