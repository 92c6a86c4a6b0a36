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
    "APP_SETTINGS",
    "APP_FLAGS",
    "REQUIRE_SIGNED_CLIENT_ID",
    "app_limits",
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
    # The WebSocket library serving clients: "picows" or "websockets" (the
    # same protocol and rules either way; picows costs about 30 % less CPU
    # per player-tick, docs/performance.md).
    transport: str = "picows"
    # permessage-deflate: "off", or "deflate" to accept a client's offer
    # (websockets transport only). Off by default: compressing each frame per
    # connection costs more CPU than the rest of a player's tick, and
    # `encoding=compact` is smaller than deflated msgpack (docs/performance.md).
    compression: str = "off"
    # The handshake's request line (`GET <url> HTTP/1.1`); longer: HTTP 414.
    # 8192 is also websockets' own limit, which answers before our check does.
    max_request_line_bytes: int = 8192
    max_message_bytes: int = 64 * 1024  # larger frames close the socket with 1009
    admin_port: int | None = None  # the admin HTTP API; None: the game port + 1 (0 with port 0)
    max_messages_per_frame: int = 256  # more in one client frame: `bad_request`, none handled
    # The four rate limits below are server-wide defaults; an app may set its
    # own (APP_SETTINGS), read when a connection opens.
    messages_per_second: float = 60.0  # per connection; over it: `rate_limited`, message dropped
    message_burst: int = 120  # messages a quiet connection may send at once
    abusive_drops: int = 600  # dropped messages (refilled at messages_per_second): close 4029
    rooms_per_minute: float = 30.0  # room creations per connection; over it: `rate_limited`
    room_creation_burst: int = 10
    max_rooms_per_app: int = 10_000  # live rooms; over it create_room gets `too_many_rooms`
    # A client's outgoing backlog while its socket does not take more: over
    # either bound it falls behind (its backlog is dropped, it gets no room
    # traffic, and one fresh `state` snapshot once its socket drains).
    max_outbox_bytes: int = 256 * 1024
    max_outbox_messages: int = 4096
    slow_consumer_deadline: float = 5.0  # seconds a socket may stay full before 4008 slow_consumer
    # The kernel's send buffer per connection (SO_SNDBUF; None: the kernel's
    # autotuning, up to several MiB each). A bound keeps kernel memory per
    # client known and lets a stalled reader show up as one within seconds.
    send_buffer_bytes: int | None = 256 * 1024
    # Bytes a socket's user-space send buffer may hold before the socket counts
    # as full (flow control: frames wait in the session's outbox meanwhile).
    # 32 KiB is websockets' default high-water mark.
    write_limit_bytes: int = 32 * 1024
    read_buffer_bytes: int = 16 * 1024  # picows: a connection's first receive buffer (it grows)
    handshake_timeout: float = 10.0  # seconds from TCP accept to a complete upgrade request
    close_timeout: float = 2.0  # seconds a peer has to answer our close before TCP is cut
    drain_timeout: float = 10.0  # on SIGTERM: seconds from the first step of shutdown to exit
    ping_interval: float = 20.0  # keepalive pings; unanswered for as long again: close 1011
    # TCP connections to the game port from one remote address, open or still
    # in their handshake; the handshake of one more is answered 429. Behind a
    # load balancer every player shares its address: raise it there (0: no cap).
    max_connections_per_ip: int = 64
    # Over that cap, this many more sockets per address still get their 429;
    # beyond them a socket is closed at accept, so idle half-open handshakes
    # from one address cannot pile up until their 10 s handshake timeout.
    refused_sockets_per_ip: int = 64

    # Keys and identity
    # Refuse to start when an app's key is short or an example key (`--dev`: off).
    require_strong_keys: bool = True
    min_key_chars: int = 32  # random characters after the `cb_pk_`/`cb_sk_` prefix
    # A signed client id token (apps with `requireSignedClientId`) whose expiry is
    # further ahead than this is refused: a backend bug must not mint forever-tokens.
    max_token_lifetime: int = 7 * 24 * 3600  # seconds

    # Operations
    log_format: str = "text"  # one of LOG_FORMATS
    log_level: str = "INFO"

    # Storage
    data_dir: Path = Path("gameserver-data")
    scripts_dirs: tuple[Path, ...] = field(default_factory=lambda: (BUILTIN_SCRIPTS_DIR,))

    # Rooms
    tick_rate: int = 64  # default for rooms that do not ask for one
    # Rooms of one tick rate tick in up to this many groups spread over the
    # period: a move then waits for its own group's tick work, not every
    # room's, before its delta leaves (docs/performance.md).
    tick_phases: int = 8
    # ...but one more phase only per this many rooms of the rate: each phase
    # is a wake-up of its own, which a few rooms' ticks do not repay.
    tick_phase_min_rooms: int = 8
    min_tick_rate: int = 1
    max_tick_rate: int = 128
    default_max_players: int = 100
    max_players_limit: int = 1_000  # joins cost O(players): 1,000 joining at once take ~2 s of CPU
    empty_room_timeout: float = 30.0  # seconds an empty room lives before it is disposed
    max_actions_per_tick: int = 1024  # per room; more are refused with `rate_limited`
    max_listed_rooms: int = 200  # rooms in one `list_rooms` reply, newest first
    reconnect_grace: float = 20.0  # seconds a dropped player's seat is held for it to come back
    resume_history_seconds: float = 4.0  # deltas a room keeps for resuming players (per tick rate)
    max_interned_paths: int = 4096  # a room's path table (compact encoding) then starts over

    # Identifiers and sizes a client may send
    max_id_length: int = 64  # roomId, categoryId, scriptName
    max_client_id_length: int = 128
    max_metadata_entries: int = 32
    max_metadata_value_length: int = 256
    max_chat_length: int = 1000
    max_value_depth: int = 32  # nesting of action data
    # An action's `type` (UTF-8) plus its `data` (MessagePack-encoded, whatever
    # the connection's encoding): over it, `bad_request`. Every member gets a
    # copy of each action, so this bounds what one message can cost a room.
    max_action_bytes: int = 4096

    # Lua
    lua_memory_limit: int = 32 * 1024 * 1024
    lua_instruction_limit: int = 1_000_000  # VM instructions per hook call
    lua_tick_instruction_limit: int = 2_000_000  # all of one tick's hook calls together
    script_log_lines_per_second: int = 10  # room:log, per room; more are dropped and counted
    max_failing_ticks: int = 10  # a room whose script fails this many ticks in a row closes


# What an app may set for itself through the admin API (`PATCH
# /v1/game/{appId}/settings`): wire name → (the Config field that holds the
# server's default, lowest, highest). Integers only: they are stored as such.
# Script limits apply to rooms created afterwards, rate limits to connections
# opened afterwards.
APP_SETTINGS: dict[str, tuple[str, int, int]] = {
    "luaInstructionLimit": ("lua_instruction_limit", 1_000, 100_000_000),
    "luaTickInstructionLimit": ("lua_tick_instruction_limit", 1_000, 1_000_000_000),
    "luaMemoryLimit": ("lua_memory_limit", 1024 * 1024, 4096 * 1024 * 1024),
    # At least 1 message and 1 room creation: an app cannot lock its players out.
    "messagesPerSecond": ("messages_per_second", 1, 10_000),
    "messageBurst": ("message_burst", 1, 100_000),
    "roomsPerMinute": ("rooms_per_minute", 1, 10_000),
    "roomCreationBurst": ("room_creation_burst", 1, 1_000),
}


REQUIRE_SIGNED_CLIENT_ID = "requireSignedClientId"
# Per-app switches (admin API: true, false, or null for false).
APP_FLAGS = (REQUIRE_SIGNED_CLIENT_ID,)


def _whole(value: float) -> float:
    """60.0 as 60: what reads back as an integer can be written back."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


def app_limits(config: Config, stored: dict[str, int]) -> dict[str, float | bool]:
    """Every APP_SETTINGS value and APP_FLAGS switch in force for an app: its
    own where it set one, else the server's."""
    limits: dict[str, float | bool] = {
        name: stored.get(name, _whole(getattr(config, field)))
        for name, (field, _, _) in APP_SETTINGS.items()
    }
    for name in APP_FLAGS:
        limits[name] = bool(stored.get(name, 0))
    return limits
