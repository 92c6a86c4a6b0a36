"""Every bound and default of the server, in one place.

The command line (`cli.py`) fills a `Config`; everything else reads it. When a
figure here changes, `docs/` changes in the same commit.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "Config",
    "PROTOCOL_VERSION",
    "BUILTIN_SCRIPTS_DIR",
    "LOG_FORMATS",
    "TICK_SECONDS_BUCKETS",
]

PROTOCOL_VERSION = 1

# Lua scripts shipped with the server (the repository's scripts/ folder).
BUILTIN_SCRIPTS_DIR = Path(__file__).resolve().parent.parent / "scripts"

# Upper bounds (seconds) of the tick duration and tick lateness histograms on
# /metrics. A 64 Hz tick period is 15.6 ms and a healthy p99 lateness is about
# 1-2 ms: fine steps below a millisecond, then doubling past the period, so
# both "a bit late" and "a whole tick late" are visible.
TICK_SECONDS_BUCKETS = (
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 0.128,
)  # fmt: skip

# `--log-format`: "text" for people, "json" (one object per line) for log collectors.
LOG_FORMATS = ("text", "json")


@dataclass(frozen=True, slots=True)
class Config:
    # Network
    host: str = "0.0.0.0"
    port: int = 8787
    max_message_bytes: int = 64 * 1024  # larger frames close the socket with 1009
    admin_port: int | None = None  # the admin HTTP API; None: the game port + 1 (0 with port 0)
    max_messages_per_frame: int = 256  # more in one client frame: `bad_request`, none handled
    messages_per_second: float = 60.0  # per connection; over it: `rate_limited`, message dropped
    message_burst: int = 120  # messages a quiet connection may send at once
    abusive_drops: int = 600  # dropped messages (refilled at messages_per_second): close 4029
    rooms_per_minute: float = 30.0  # room creations per connection; over it: `rate_limited`
    room_creation_burst: int = 10
    max_rooms_per_app: int = 10_000  # live rooms; over it create_room gets `too_many_rooms`
    max_outbox_bytes: int = 1024 * 1024  # unsent bytes for one client before 4008 slow_consumer
    close_timeout: float = 2.0  # seconds a peer has to answer our close before TCP is cut
    ping_interval: float = 20.0  # keepalive pings; unanswered for as long again: close 1011

    # Operations
    log_format: str = "text"  # one of LOG_FORMATS
    log_level: str = "INFO"

    # Storage
    data_dir: Path = Path("gameserver-data")
    scripts_dirs: tuple[Path, ...] = field(default_factory=lambda: (BUILTIN_SCRIPTS_DIR,))

    # Rooms
    tick_rate: int = 64  # default for rooms that do not ask for one
    min_tick_rate: int = 1
    max_tick_rate: int = 128
    default_max_players: int = 100
    max_players_limit: int = 10_000
    empty_room_timeout: float = 30.0  # seconds an empty room lives before it is disposed
    max_actions_per_tick: int = 1024  # per room; more are refused with `rate_limited`
    max_listed_rooms: int = 200  # rooms in one `list_rooms` reply, newest first

    # Identifiers and sizes a client may send
    max_id_length: int = 64  # roomId, categoryId, scriptName
    max_client_id_length: int = 128
    max_metadata_entries: int = 32
    max_metadata_value_length: int = 256
    max_chat_length: int = 1000
    max_value_depth: int = 32  # nesting of action data

    # Lua
    lua_memory_limit: int = 32 * 1024 * 1024
    lua_instruction_limit: int = 1_000_000  # VM instructions per hook call
    lua_tick_instruction_limit: int = 2_000_000  # all of one tick's hook calls together
    script_log_lines_per_second: int = 10  # room:log, per room; more are dropped and counted
    max_failing_ticks: int = 10  # a room whose script fails this many ticks in a row closes
