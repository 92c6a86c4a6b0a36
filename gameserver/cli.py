"""`gameserver`: serve, or manage apps.

gameserver [--host H] [--port P] [--tick-rate N] [--data-dir D]
           [--scripts-dir D ...] [--max-message-bytes N] [--transport T] [--log-level L]
gameserver app create NAME [--data-dir D]
gameserver app list [--data-dir D]
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import sys
from pathlib import Path

import uvloop

from gameserver import __version__, _accel
from gameserver.app import GameApp, ws_url
from gameserver.config import BUILTIN_SCRIPTS_DIR, Config
from gameserver.storage import SqliteAppStore

__all__ = ["main"]

_DEFAULTS = Config()


def _serve_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="gameserver",
        description="Authoritative real-time game server. Serves the Connect Base game "
        "protocol over WebSocket. Subcommand: `gameserver app create NAME`, `gameserver app list`.",
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
        "--admin-port",
        type=int,
        default=None,
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
    p.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING or ERROR")
    return p


def _app_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="gameserver app", description="Manage apps and their keys.")
    sub = p.add_subparsers(dest="action", required=True)
    create = sub.add_parser("create", help="create an app; prints {app_id, public_key, secret_key}")
    create.add_argument("name")
    lst = sub.add_parser("list", help="list apps with their public keys")
    for q in (create, lst):
        q.add_argument("--data-dir", type=Path, default=_DEFAULTS.data_dir)
    return p


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
    if args.max_message_bytes < 1024:
        raise SystemExit("gameserver: --max-message-bytes must be at least 1024")
    if args.lua_instruction_limit < 1000 or not 1 <= args.lua_memory_mb <= 4096:
        raise SystemExit(
            "gameserver: --lua-instruction-limit must be at least 1000 and --lua-memory-mb 1..4096"
        )
    if not 0.5 <= args.drain_timeout <= 600:
        raise SystemExit("gameserver: --drain-timeout must be 0.5..600 seconds")
    if not 0 <= args.reconnect_grace <= 3600:
        raise SystemExit("gameserver: --reconnect-grace must be 0..3600 seconds")
    return Config(
        host=args.host,
        port=args.port,
        admin_port=args.admin_port,
        tick_rate=args.tick_rate,
        data_dir=args.data_dir,
        scripts_dirs=(*args.scripts_dir, BUILTIN_SCRIPTS_DIR),
        max_message_bytes=args.max_message_bytes,
        lua_instruction_limit=args.lua_instruction_limit,
        lua_memory_limit=args.lua_memory_mb * 1024 * 1024,
        reconnect_grace=args.reconnect_grace,
        drain_timeout=args.drain_timeout,
        transport=args.transport,
    )


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["app"]:
        return _app_command(argv[1:])
    args = _serve_parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    config = _config_from(args)
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

    uvloop.run(app.serve_until_signalled(ready))
    return 0


if __name__ == "__main__":
    sys.exit(main())
