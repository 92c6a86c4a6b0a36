"""Shared fixtures: a real server on 127.0.0.1, port 0, with its own data dir."""

from __future__ import annotations

import dataclasses
import gc
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
import uvloop

from gameserver.app import GameApp, ws_url
from gameserver.client import GameClient
from gameserver.config import BUILTIN_SCRIPTS_DIR, Config


def pytest_collection_finish(session):
    # What collection imported lives for the whole run: move it out of the
    # collector's sight. Otherwise a full (generation 2) collection scans the
    # whole suite's modules, over 100 ms on a busy machine, and when one falls
    # inside a timing test it stalls that test's room ticks.
    gc.freeze()


def pytest_asyncio_loop_factories(config, item):
    return {"uvloop": uvloop.new_event_loop}  # the loop the server runs on in production


@dataclasses.dataclass
class LiveServer:
    app: GameApp
    url: str
    public_key: str
    secret_key: str | None

    def client(self, client_id: str, **kwargs) -> GameClient:
        return GameClient(self.url, self.public_key, client_id, **kwargs)

    def add_script(self, name: str, source: str) -> Path:
        """Write `name`.lua into the server's first scripts folder (the test's own)."""
        path = self.app.config.scripts_dirs[0] / f"{name}.lua"
        path.write_text(source)
        return path


ServerFactory = Callable[..., "AsyncIterator[LiveServer]"]


TRANSPORTS = ("websockets", "picows")


@pytest.fixture(params=TRANSPORTS)
def transport(request) -> str:
    """Every test that starts a server runs once per transport (`[websockets]`, `[picows]`)."""
    return request.param


@pytest.fixture
async def start_server(tmp_path: Path, transport: str):
    """Start a server with Config overrides: `server = await start_server(tick_rate=32)`."""
    started: list[GameApp] = []
    extra_scripts = tmp_path / "scripts"
    extra_scripts.mkdir()

    async def start(**overrides) -> LiveServer:
        config = Config(
            host="127.0.0.1",
            port=0,
            data_dir=tmp_path / f"data{len(started)}",
            scripts_dirs=(extra_scripts, BUILTIN_SCRIPTS_DIR),
            **{"transport": transport, **overrides},
        )
        app = GameApp(config)
        default, created = app.default_app()
        port = await app.start()
        started.append(app)
        return LiveServer(
            app,
            ws_url("127.0.0.1", port),
            default.public_key,
            created.secret_key if created else None,
        )

    start.scripts_dir = extra_scripts  # type: ignore[attr-defined]
    yield start
    for app in started:
        await app.stop()


@pytest.fixture
async def server(start_server) -> LiveServer:
    return await start_server()


@pytest.fixture
async def clients(server: LiveServer):
    """Connected clients, disconnected at the end: `a, b = await clients("a", "b")`."""
    made: list[GameClient] = []

    async def make(*ids: str, encoding: str = "msgpack") -> list[GameClient]:
        out = []
        for client_id in ids:
            client = server.client(client_id, encoding=encoding)
            await client.connect()
            made.append(client)
            out.append(client)
        return out

    yield make
    for client in made:
        await client.disconnect()
