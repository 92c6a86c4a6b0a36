"""`gameserver`: serve, or manage apps.

gameserver [--host H] [--port P] [--tick-rate N] [--tick-phases N] [--data-dir D]
           [--scripts-dir D ...] [--max-message-bytes N] [--transport T] [--compression off|deflate]
           [--log-level L]
           [--max-connections-per-ip N] [--[no-]require-strong-keys] [--dev]
           [--log-format text|json]
gameserver app create NAME [--data-dir D]
gameserver app list [--data-dir D]
gameserver app token APP CLIENT_ID [--ttl S] [--data-dir D]
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path

import uvloop

from gameserver import __version__, _accel, identity
from gameserver.app import GameApp, ws_url
from gameserver.config import BUILTIN_SCRIPTS_DIR, LOG_FORMATS, Config
from gameserver.errors import ConfigError
from gameserver.logs import configure_logging
from gameserver.storage import SqliteAppStore

__all__ = ["main"]

_DEFAULTS = Config()


def _serve_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="gameserver",
        description="Authoritative real-time game server. Serves the Connect Base game "
        "protocol over WebSocket. Subcommands: `gameserver app create NAME`, `gameserver app list`, "
        "`gameserver app token APP CLIENT_ID`.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--host", default=_DEFAULTS.host, help="interface to listen on")
    p.add_argument("--port", type=int, default=_DEFAULTS.port, help="TCP port (0 picks a free one)")
    p.add_argument(
        "--tick-rate",
        type=int,
        default=_DEFAULTS.tick_rate,
        help=f"ticks per second of rooms that do not ask for one "
        f"({_DEFAULTS.min_tick_rate}..{_DEFAULTS.max_tick_rate})",
    )
    p.add_argument(
        "--tick-phases",
        type=int,
        default=_DEFAULTS.tick_phases,
        help=f"at most this many groups (one per {_DEFAULTS.tick_phase_min_rooms} rooms) the "
        "rooms of one tick rate tick in, spread over the period: more cut the wait for a "
        "delta, 1 has the fewest wake-ups (1..16)",
    )
    p.add_argument(
        "--admin-port",
        type=int,
        default=argparse.SUPPRESS,  # (not "default: None" in --help)
        help="port of the admin HTTP API (scripts); default: --port + 1",
    )
    p.add_argument(
        "--data-dir",
        type=Path,
        default=_DEFAULTS.data_dir,
        help="where apps and uploaded scripts are kept (SQLite)",
    )
    p.add_argument(
        "--scripts-dir",
        type=Path,
        action="append",
        default=[],
        help=f"extra folder of Lua room scripts, searched before the built-in {BUILTIN_SCRIPTS_DIR} "
        "(repeatable)",
    )
    p.add_argument(
        "--max-message-bytes",
        type=int,
        default=_DEFAULTS.max_message_bytes,
        help="largest frame a client may send; larger ones close the socket with 1009",
    )
    p.add_argument(
        "--lua-instruction-limit",
        type=int,
        default=_DEFAULTS.lua_instruction_limit,
        help="Lua VM instructions one script hook call may run",
    )
    p.add_argument(
        "--lua-memory-mb",
        type=int,
        default=_DEFAULTS.lua_memory_limit // (1024 * 1024),
        help="memory cap of each room's Lua runtime, in MiB",
    )
    p.add_argument(
        "--reconnect-grace",
        type=float,
        default=_DEFAULTS.reconnect_grace,
        help="seconds a dropped player's seat is held for it to come back (0: leave at once)",
    )
    p.add_argument(
        "--drain-timeout",
        type=float,
        default=_DEFAULTS.drain_timeout,
        help="on SIGTERM/SIGINT: seconds to tell rooms and close sockets before exiting",
    )
    p.add_argument(
        "--transport",
        choices=("picows", "websockets"),
        default=_DEFAULTS.transport,
        help="the WebSocket library serving clients (the same protocol either way)",
    )
    p.add_argument(
        "--compression",
        choices=("off", "deflate"),
        default=_DEFAULTS.compression,
        help="deflate: accept permessage-deflate offers (needs --transport websockets); "
        "fewer bytes, several times the CPU per frame (docs/performance.md)",
    )
    p.add_argument(
        "--max-connections-per-ip",
        type=int,
        default=_DEFAULTS.max_connections_per_ip,
        help="sockets one remote address may hold on the game port; more are refused with "
        "HTTP 429. Behind a load balancer raise it, or 0 for no cap",
    )
    p.add_argument(
        "--require-strong-keys",
        action=argparse.BooleanOptionalAction,
        default=None,
        help=f"refuse to start if an app's keys are short (under {_DEFAULTS.min_key_chars} "
        "random characters) or example keys; on unless --dev",
    )
    p.add_argument(
        "--dev",
        action="store_true",
        help="development mode: allows weak app keys (--no-require-strong-keys)",
    )
    p.add_argument("--log-level", default=_DEFAULTS.log_level, help="DEBUG, INFO, WARNING or ERROR")
    p.add_argument(
        "--log-format",
        choices=LOG_FORMATS,
        default=_DEFAULTS.log_format,
        help="stderr log lines: text for people, json (one object per line) for log collectors",
    )
    return p


def _app_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="gameserver app", description="Manage apps and their keys.")
    sub = p.add_subparsers(dest="action", required=True)
    create = sub.add_parser("create", help="create an app; prints {app_id, public_key, secret_key}")
    create.add_argument("name")
    lst = sub.add_parser("list", help="list apps with their public keys")
    token = sub.add_parser(
        "token",
        help="mint a signed client id token (for testing; a game's backend mints its own)",
    )
    token.add_argument("app", help="app name or app id")
    token.add_argument("client_id")
    token.add_argument("--ttl", type=int, default=3600, help="seconds the token is valid")
    for q in (create, lst, token):
        q.add_argument("--data-dir", type=Path, default=_DEFAULTS.data_dir)
    return p


def _token_command(store: SqliteAppStore, args: argparse.Namespace) -> int:
    app = store.app_by_name(args.app) or store.app_by_id(args.app)
    if app is None:
        print(f"gameserver: no app named {args.app!r}", file=sys.stderr)
        return 1
    key = store.signing_key(app.app_id)
    if key is None:
        print(
            "gameserver: this app has no signing key yet: turn requireSignedClientId on "
            "through the admin API (PATCH /v1/game/{appId}/settings) once",
            file=sys.stderr,
        )
        return 1
    if not 1 <= args.ttl <= _DEFAULTS.max_token_lifetime:
        print(f"gameserver: --ttl must be 1..{_DEFAULTS.max_token_lifetime}", file=sys.stderr)
        return 2
    print(identity.sign(key, args.client_id, int(time.time()) + args.ttl))
    return 0


def _app_command(argv: list[str]) -> int:
    args = _app_parser().parse_args(argv)
    store = SqliteAppStore(args.data_dir)
    try:
        if args.action == "create":
            if not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", args.name):
                print("gameserver: an app name is 1..64 of A-Z a-z 0-9 _ . -", file=sys.stderr)
                return 2
            try:
                new = store.create_app(args.name)
            except ValueError as exc:
                print(f"gameserver: {exc}", file=sys.stderr)
                return 1
            line = {
                "app_id": new.app.app_id,
                "public_key": new.app.public_key,
                "secret_key": new.secret_key,
            }
            print(json.dumps(line))
        elif args.action == "token":
            return _token_command(store, args)
        else:
            for app in store.list_apps():
                print(
                    json.dumps(
                        {"app_id": app.app_id, "name": app.name, "public_key": app.public_key}
                    )
                )
    finally:
        store.close()
    return 0


def _config_from(args: argparse.Namespace) -> Config:
    if not _DEFAULTS.min_tick_rate <= args.tick_rate <= _DEFAULTS.max_tick_rate:
        raise SystemExit(
            f"gameserver: --tick-rate must be {_DEFAULTS.min_tick_rate}..{_DEFAULTS.max_tick_rate}"
        )
    if not 1 <= args.tick_phases <= 16:
        raise SystemExit("gameserver: --tick-phases must be 1..16")
    if args.max_message_bytes < 1024:
        raise SystemExit("gameserver: --max-message-bytes must be at least 1024")
    if args.max_connections_per_ip < 0:
        raise SystemExit("gameserver: --max-connections-per-ip must be 0 (no cap) or more")
    if args.lua_instruction_limit < 1000 or not 1 <= args.lua_memory_mb <= 4096:
        raise SystemExit(
            "gameserver: --lua-instruction-limit must be at least 1000 and --lua-memory-mb 1..4096"
        )
    if not 0.5 <= args.drain_timeout <= 600:
        raise SystemExit("gameserver: --drain-timeout must be 0.5..600 seconds")
    if args.compression == "deflate" and args.transport != "websockets":
        raise SystemExit(
            "gameserver: --compression deflate needs --transport websockets "
            "(picows has no permessage-deflate)"
        )
    if not 0 <= args.reconnect_grace <= 3600:
        raise SystemExit("gameserver: --reconnect-grace must be 0..3600 seconds")
    strong_keys = not args.dev if args.require_strong_keys is None else args.require_strong_keys
    return Config(
        host=args.host,
        port=args.port,
        admin_port=getattr(args, "admin_port", None),
        tick_rate=args.tick_rate,
        tick_phases=args.tick_phases,
        data_dir=args.data_dir,
        scripts_dirs=(*args.scripts_dir, BUILTIN_SCRIPTS_DIR),
        max_message_bytes=args.max_message_bytes,
        lua_instruction_limit=args.lua_instruction_limit,
        lua_memory_limit=args.lua_memory_mb * 1024 * 1024,
        reconnect_grace=args.reconnect_grace,
        drain_timeout=args.drain_timeout,
        max_connections_per_ip=args.max_connections_per_ip,
        require_strong_keys=strong_keys,
        log_level=args.log_level.upper(),
        log_format=args.log_format,
        transport=args.transport,
        compression=args.compression,
    )


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["app"]:
        return _app_command(argv[1:])
    args = _serve_parser().parse_args(argv)
    config = _config_from(args)
    configure_logging(config.log_level, config.log_format)
    app = GameApp(config)
    default, created = app.default_app()

    def ready(port: int) -> None:
        url = ws_url(config.host, port)
        print(
            f"gameserver {__version__} (state core: {_accel.IMPL}) listening on {config.host}:{port}"
        )
        if created is not None:
            print(f"created the default app {default.app_id}; its secret key, shown only now:")
            print(f"  {created.secret_key}")
        print(f"default app public key: {default.public_key}")
        admin_host = url.split("/")[2].rsplit(":", 1)[0]
        print(f"admin API: http://{admin_host}:{app.admin_port}/v1/game/{default.app_id}/scripts")
        print(
            f"connect: {url}?public_key={default.public_key}&client_id=YOUR_PLAYER_ID", flush=True
        )

    try:
        uvloop.run(app.serve_until_signalled(ready))
    except ConfigError as exc:  # raised before the server listens
        print(f"gameserver: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
