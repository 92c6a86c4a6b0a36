"""The admin HTTP API (aiohttp): managing an app's room scripts.

Every route is under `/v1/game/{appId}/` and needs the app's secret key as
`Authorization: Bearer cb_sk_...`; anything else (a public key, another app's
secret, no header) is 401. JSON in and out; errors are
`{"error": code, "message": ...}`. docs/admin.md describes the routes.

Next to them, without authentication (like a load balancer's health checks,
and meant for the same private network): `/healthz`, `/readyz`, and
`/metrics` in the Prometheus text format (docs/operations.md).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from gameserver import identity
from gameserver.config import APP_FLAGS, APP_SETTINGS, REQUIRE_SIGNED_CLIENT_ID, Config, app_limits
from gameserver.errors import RoomError
from gameserver.scripting.library import SCRIPT_NAME, compile_error
from gameserver.service import GameService
from gameserver.storage.base import AppStore, ScriptStore, ScriptVersion

__all__ = ["admin_app"]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
MAX_SOURCE_BYTES = 1024 * 1024


class _Refusal(Exception):
    def __init__(self, status: int, code: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status, self.code, self.extra = status, code, extra


def _error(status: int, code: str, message: str, **extra: Any) -> web.Response:
    return web.json_response({"error": code, "message": message, **extra}, status=status)


def _version_info(row: ScriptVersion) -> dict[str, Any]:
    return {"version": row.version, "createdAt": row.created_at}


def _bearer(request: web.Request) -> str:
    auth = request.headers.get("Authorization", "")
    return auth[7:] if auth.startswith("Bearer ") else ""


def admin_app(
    config: Config,
    apps: AppStore,
    scripts: ScriptStore,
    service: GameService,
    metrics: CollectorRegistry,
) -> web.Application:
    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        """Secret-key auth for every route, and errors as JSON, never a traceback."""
        app_id = request.match_info.get("appId")
        if app_id is not None:
            key = _bearer(request)
            if (
                not key.startswith("cb_sk_")
                or not key.isascii()
                or not apps.check_secret(app_id, key)
            ):
                return _error(
                    401,
                    "unauthorized",
                    "send the app's secret key as Authorization: Bearer cb_sk_...",
                )
        try:
            return await handler(request)
        except _Refusal as refusal:
            return _error(refusal.status, refusal.code, str(refusal), **refusal.extra)
        except web.HTTPException as exc:
            codes = {404: "not_found", 405: "method_not_allowed", 413: "too_large"}
            return _error(exc.status, codes.get(exc.status, "bad_request"), exc.reason)

    async def body(request: web.Request) -> dict[str, Any]:
        try:
            data = json.loads(await request.read() or b"{}")
        except (ValueError, UnicodeDecodeError, RecursionError):
            raise _Refusal(400, "bad_request", "the body must be a JSON object") from None
        if not isinstance(data, dict):
            raise _Refusal(400, "bad_request", "the body must be a JSON object")
        return data

    def known(app_id: str, name: str) -> list[ScriptVersion]:
        versions = scripts.versions(app_id, name)
        if not versions:
            raise _Refusal(404, "script_not_found", f"no uploaded script named {name[:64]!r}")
        return versions

    async def upload(request: web.Request) -> web.Response:
        app_id, data = request.match_info["appId"], await body(request)
        name, source, activate = data.get("name"), data.get("source"), data.get("activate", False)
        if not isinstance(name, str) or not SCRIPT_NAME.fullmatch(name):
            raise _Refusal(400, "bad_request", "name must be 1..64 characters of A-Z a-z 0-9 _ -")
        if not isinstance(source, str) or len(source.encode("utf-8", "replace")) > MAX_SOURCE_BYTES:
            raise _Refusal(
                400, "bad_request", f"source must be a string of at most {MAX_SOURCE_BYTES} bytes"
            )
        if not isinstance(activate, bool):
            raise _Refusal(400, "bad_request", "activate must be true or false")
        try:
            source.encode("utf-8")
        except UnicodeEncodeError:
            raise _Refusal(400, "bad_request", "source is not valid UTF-8") from None
        failure = compile_error(
            name,
            source,
            memory_limit=config.lua_memory_limit,
            instruction_limit=config.lua_instruction_limit,
        )
        if failure is not None:
            raise _Refusal(400, "script_error", str(failure)[:2000], line=failure.line)
        row = scripts.add_version(app_id, name, source)
        if activate:
            scripts.activate(app_id, name, row.version)
        active = scripts.active_version(app_id, name)
        return web.json_response(
            {"name": name, "version": row.version, "activeVersion": active}, status=201
        )

    async def listing(request: web.Request) -> web.Response:
        app_id = request.match_info["appId"]
        out = []
        for name in scripts.names(app_id):
            versions = scripts.versions(app_id, name)
            out.append(
                {
                    "name": name,
                    "activeVersion": scripts.active_version(app_id, name),
                    "latestVersion": versions[-1].version,
                    "updatedAt": versions[-1].created_at,
                }
            )
        return web.json_response({"scripts": out})

    async def detail(request: web.Request) -> web.Response:
        app_id, name = request.match_info["appId"], request.match_info["name"]
        versions = known(app_id, name)
        active = scripts.active_version(app_id, name)
        shown = next((v for v in versions if v.version == active), versions[-1])
        return web.json_response(
            {
                "name": name,
                "activeVersion": active,
                "versions": [_version_info(v) for v in versions],
                "source": shown.source,
                "sourceVersion": shown.version,
            }
        )

    async def activate(request: web.Request) -> web.Response:
        app_id, name = request.match_info["appId"], request.match_info["name"]
        known(app_id, name)
        version = (await body(request)).get("version")
        if type(version) is not int:
            raise _Refusal(400, "bad_request", "version must be an integer")
        if not 1 <= version < 2**62 or scripts.version(app_id, name, version) is None:
            raise _Refusal(404, "version_not_found", f"{name} has no version {version}"[:200])
        scripts.activate(app_id, name, version)
        return web.json_response({"name": name, "activeVersion": version})

    async def reload(request: web.Request) -> web.Response:
        app_id, name = request.match_info["appId"], request.match_info["name"]
        try:
            result = service.reload_script(app_id, name)
        except RoomError as exc:
            raise _Refusal(404, "script_not_found", str(exc)) from None
        return web.json_response({"name": name, **result})

    async def get_settings(request: web.Request) -> web.Response:
        app_id = request.match_info["appId"]
        return web.json_response(app_limits(config, apps.settings(app_id)))

    async def patch_settings(request: web.Request) -> web.Response:
        app_id, data = request.match_info["appId"], await body(request)
        values: dict[str, int | None] = {}
        for name, value in data.items():
            if name in APP_FLAGS:
                if value is not None and type(value) is not bool:
                    raise _Refusal(400, "bad_request", f"{name} must be true, false or null")
                values[name] = None if value is None else int(value)
                continue
            setting = APP_SETTINGS.get(name)
            if setting is None:
                raise _Refusal(400, "bad_request", f"unknown setting {name[:64]!r}")
            _, low, high = setting
            if type(value) is float and value.is_integer():
                value = int(value)  # 60.0, as a JSON library may write 60
            if value is not None and (type(value) is not int or not low <= value <= high):
                raise _Refusal(
                    400, "bad_request", f"{name} must be an integer in {low}..{high} or null"
                )
            values[name] = value
        if values.get(REQUIRE_SIGNED_CLIENT_ID):
            # This request carries the secret key (the guard checked it): the
            # moment to (re)learn the signing key of an app that predates it.
            apps.set_signing_key(app_id, identity.signing_key(_bearer(request)))
        apps.set_settings(app_id, values)
        return web.json_response(app_limits(config, apps.settings(app_id)))

    async def delete(request: web.Request) -> web.Response:
        app_id, name = request.match_info["appId"], request.match_info["name"]
        known(app_id, name)
        scripts.delete(app_id, name)
        return web.Response(status=204)

    # JSON escaping can make a 1 MiB source up to 6 times longer on the wire.
    app = web.Application(middlewares=[guard], client_max_size=6 * MAX_SOURCE_BYTES + 4096)
    base = "/v1/game/{appId}/scripts"
    app.router.add_post(base, upload)
    app.router.add_get(base, listing)
    app.router.add_get(base + "/{name}", detail)
    app.router.add_post(base + "/{name}/activate", activate)
    app.router.add_post(base + "/{name}/reload", reload)
    app.router.add_get("/v1/game/{appId}/settings", get_settings)

    async def healthz(request: web.Request) -> web.Response:
        return web.json_response({"status": "alive"})

    async def readyz(request: web.Request) -> web.Response:
        # Ready while accepting players: false once shutdown has begun.
        if service.accepting:
            return web.json_response({"status": "ready", "rooms": len(service.directory)})
        return web.json_response({"status": "shutting_down"}, status=503)

    async def scrape(request: web.Request) -> web.Response:
        # Built from the server's own counters now; cheap, and nothing is kept between scrapes.
        return web.Response(
            body=generate_latest(metrics), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )

    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", scrape)
    app.router.add_patch("/v1/game/{appId}/settings", patch_settings)
    app.router.add_delete(base + "/{name}", delete)
    return app
