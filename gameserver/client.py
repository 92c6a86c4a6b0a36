"""GameClient: an asyncio client for the game protocol, mirroring the SDK.

    client = GameClient("ws://127.0.0.1:8787/v1/game/ws", "cb_pk_...", "player-1")
    client.on("onDelta", lambda delta: print(delta["changes"]))
    await client.connect()
    state = await client.create_room(script_name="arena", max_players=8)
    await client.send_action("move", {"x": 10, "y": 20})
    rtt_ms = await client.ping()
    await client.disconnect()

It keeps `state` (the SDK's GameState) current by applying each delta, and
asks for a fresh snapshot when it sees a version gap. Like the SDK it
reconnects by itself when the connection drops (`auto_reconnect`, at most
`max_reconnect_attempts` tries, waiting `reconnect_interval` seconds doubled
at each try, with jitter) and takes its seat back: `join_room` with
`lastVersion` gets just the deltas it missed (`resumed`), or a snapshot.
Event names are the SDK's: onConnect (again after each reconnect, once back
in the room), onDisconnect, onStateUpdate, onDelta, onAction,
onPlayerJoined, onPlayerLeft, onChat, onError, onPong, plus onRoomClosed.
"""

from __future__ import annotations

import asyncio
import collections
import copy
import inspect
import itertools
import random
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

import msgspec
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from gameserver import _accel
from gameserver.errors import PathError
from gameserver.protocol.compact import CompactReader

__all__ = ["GameClient", "GameError"]

EVENTS = (
    "onConnect",
    "onDisconnect",
    "onStateUpdate",
    "onDelta",
    "onAction",
    "onPlayerJoined",
    "onPlayerLeft",
    "onChat",
    "onError",
    "onPong",
    "onRoomClosed",
)


# Close codes after which reconnecting cannot help (docs/protocol.md): the
# client asked to close, or the server refused something about the client.
NO_RECONNECT = frozenset({1000, 1002, 1007, 1009, 4001, 4002, 4003, 4009, 4010, 4029})
MAX_RECONNECT_DELAY = 30.0


class GameError(Exception):
    """An `error` reply to one of this client's requests."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class GameClient:
    def __init__(
        self,
        url: str,
        public_key: str,
        client_id: str,
        *,
        encoding: str = "msgpack",
        request_timeout: float = 10.0,
        token: str | None = None,
        auto_reconnect: bool = True,
        max_reconnect_attempts: int = 5,
        reconnect_interval: float = 1.0,
    ) -> None:
        """`token`: the signed client id token your backend minted for
        `client_id` (gameserver.identity.mint_token), for apps that require one."""
        if encoding not in ("msgpack", "json", "compact"):
            raise ValueError("encoding must be msgpack, json or compact")
        self.url = url
        self.public_key = public_key
        self.client_id = client_id
        self.token = token
        self.encoding = encoding
        self.request_timeout = request_timeout
        self.auto_reconnect = auto_reconnect
        self.max_reconnect_attempts = max_reconnect_attempts
        self.reconnect_interval = reconnect_interval
        self.reconnects = 0  # connections taken back after a drop
        self.resumes = 0  # ... of which got back into the room with only the missed deltas
        self.state: dict[str, Any] | None = None  # GameState of the current room
        self.room_id: str | None = None
        self.resume_token: str | None = None
        self.latency: float = 0.0  # ms, from the last ping
        self.resyncs = 0  # snapshots asked for after a version gap
        # The newest messages received, for debugging and tests.
        self.inbox: collections.deque[dict[str, Any]] = collections.deque(maxlen=10_000)
        self._ws: ClientConnection | None = None
        self._reader: asyncio.Task[None] | None = None
        self._handlers: dict[str, list[Callable[..., Any]]] = {name: [] for name in EVENTS}
        self._waiting: dict[Any, asyncio.Future[dict[str, Any]]] = {}
        self._ids = itertools.count(1)
        self._changed = asyncio.Event()
        self._connected: asyncio.Future[dict[str, Any]] | None = None
        self._resyncing = False
        self._closing = False  # disconnect() was called: do not reconnect
        self._reconnecting: asyncio.Task[None] | None = None
        self._join_metadata: dict[str, str] = {}
        self._watchers: list[tuple[str, dict[str, Any], asyncio.Future[dict[str, Any]]]] = []
        # compact: deltas arrive as arrays with numbered paths; the reader turns
        # them back into plain delta messages (it keeps the room's path table).
        self._compact = CompactReader() if encoding == "compact" else None
        if encoding in ("msgpack", "compact"):
            self._encode = msgspec.msgpack.encode
            self._decode: Callable[[Any], Any] = msgspec.msgpack.decode
        else:
            self._encode = msgspec.json.encode
            self._decode = msgspec.json.decode

    # Events -------------------------------------------------------------

    def on(self, event: str, handler: Callable[..., Any]) -> GameClient:
        if event not in self._handlers:
            raise ValueError(f"unknown event {event!r}; one of {', '.join(EVENTS)}")
        self._handlers[event].append(handler)
        return self

    def _emit(self, event: str, *args: Any) -> None:
        for handler in self._handlers[event]:
            result = handler(*args)
            if inspect.isawaitable(result):
                asyncio.ensure_future(result)

    # Connection -----------------------------------------------------------

    @property
    def is_connected(self) -> bool:
        return self._ws is not None and self._reader is not None and not self._reader.done()

    async def connect(self, room_id: str | None = None, *, resume: bool = False) -> None:
        """Open the socket and wait for `connected`; then join `room_id` if given.
        With `resume=True` the stored resume token takes over a live session."""
        self._closing = False
        await self._open(resume)
        self._emit("onConnect")
        if room_id is not None:
            await self.join_room(room_id)

    async def _open(self, resume: bool) -> dict[str, Any]:
        query = {
            "public_key": self.public_key,
            "client_id": self.client_id,
            "encoding": self.encoding,
        }
        if self.token is not None:
            query["token"] = self.token
        if resume and self.resume_token:
            query["resume_token"] = self.resume_token
        self._connected = asyncio.get_running_loop().create_future()
        self._ws = await asyncio.wait_for(
            connect(f"{self.url}?{urlencode(query)}", max_size=None, compression=None),
            self.request_timeout,
        )
        self._reader = asyncio.create_task(self._read(self._ws))
        hello = await asyncio.wait_for(asyncio.shield(self._connected), self.request_timeout)
        self.resume_token = hello["resumeToken"]
        return hello

    async def _reconnect(self) -> None:
        """Back off, reconnect, take the room back; give up after the last try."""
        for attempt in range(self.max_reconnect_attempts):
            delay = min(MAX_RECONNECT_DELAY, self.reconnect_interval * 2**attempt)
            await asyncio.sleep(delay * random.uniform(0.5, 1.0))  # jitter: not all at once
            if self._closing:
                return
            try:
                await self._open(resume=True)
            except (OSError, InvalidHandshake):  # refused, timed out, or no server yet
                continue
            self.reconnects += 1
            if self.room_id is not None and not await self._rejoin(self.room_id):
                continue  # dropped again before it got back in
            self._emit("onConnect")
            return
        self._emit("onError", {"code": "reconnect_failed", "message": "gave up reconnecting"})

    async def _rejoin(self, room_id: str) -> bool:
        """Take the seat back; False when the connection dropped meanwhile."""
        fields: dict[str, Any] = {"roomId": room_id, "metadata": self._join_metadata}
        if self.state is not None:
            fields["lastVersion"] = self.state["version"]
        try:
            reply = await self.request("join_room", **fields)
        except GameError:  # the room is gone, or full after the seat was lost
            self.room_id = None
            self.state = None
            return True
        except OSError:
            return False
        if reply["type"] == "resumed":
            self.resumes += 1
        return True

    async def disconnect(self) -> None:
        self._closing = True
        if self._reconnecting is not None:
            self._reconnecting.cancel()
        if self._ws is not None:
            await self._ws.close()
        if self._reader is not None:
            await asyncio.gather(self._reader, return_exceptions=True)

    @property
    def close_code(self) -> int | None:
        return None if self._ws is None else self._ws.close_code

    async def wait_closed(self, timeout: float = 5.0) -> int | None:
        """Wait until the server closes the socket; returns the close code."""
        if self._reader is not None:
            await asyncio.wait_for(asyncio.shield(self._reader), timeout)
        return self.close_code

    # Requests -------------------------------------------------------------

    async def create_room(
        self,
        *,
        room_id: str | None = None,
        category_id: str | None = None,
        max_players: int | None = None,
        tick_rate: int | None = None,
        script_name: str | None = None,
        metadata: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        config = {
            "roomId": room_id,
            "categoryId": category_id,
            "maxPlayers": max_players,
            "tickRate": tick_rate,
            "scriptName": script_name,
            "metadata": metadata,
        }
        reply = await self.request(
            "create_room", config={k: v for k, v in config.items() if v is not None}
        )
        return dict(reply["state"])

    async def join_room(
        self, room_id: str, metadata: dict[str, str] | None = None
    ) -> dict[str, Any]:
        reply = await self.request("join_room", roomId=room_id, metadata=metadata or {})
        self._join_metadata = dict(metadata or {})
        return dict(reply["state"])

    async def leave_room(self) -> None:
        await self.request("leave_room")
        self.room_id = None
        self.state = None

    async def request_state(self) -> dict[str, Any]:
        return dict((await self.request("get_state"))["state"])

    async def list_rooms(self, category_id: str | None = None) -> list[dict[str, Any]]:
        fields = {} if category_id is None else {"categoryId": category_id}
        return list((await self.request("list_rooms", **fields))["rooms"])

    async def ping(self) -> float:
        """Round trip to the server in ms."""
        sent = time.perf_counter()
        await self.request("ping", clientTime=int(time.time() * 1000))
        self.latency = (time.perf_counter() - sent) * 1000
        return self.latency

    async def send_action(self, type: str, data: Any = None) -> None:
        await self.send({"type": "action", "action": {"type": type, "data": data}})

    async def send_chat(self, message: str) -> None:
        await self.send({"type": "chat", "message": message})

    async def request(self, type: str, **fields: Any) -> dict[str, Any]:
        """Send a message with a fresh requestId and wait for its reply.
        An `error` reply raises GameError."""
        request_id = next(self._ids)
        future = asyncio.get_running_loop().create_future()
        self._waiting[request_id] = future
        try:
            await self.send({"type": type, "requestId": request_id, **fields})
            return await asyncio.wait_for(future, self.request_timeout)
        finally:
            self._waiting.pop(request_id, None)

    async def send(self, message: dict[str, Any] | list[dict[str, Any]]) -> None:
        await self.send_raw(self._encode(message))

    async def send_raw(self, data: bytes | str) -> None:
        """Send a frame as is (tests use it for garbage)."""
        if self._ws is None:
            raise ConnectionError("not connected")
        if isinstance(data, bytes) and self.encoding == "json":
            data = data.decode("utf-8", "replace")
        await self._ws.send(data)

    # Waiting on state ----------------------------------------------------

    async def wait_until(
        self, predicate: Callable[[dict[str, Any]], bool], timeout: float = 5.0
    ) -> dict[str, Any]:
        """Wait until `predicate(self.state["state"])` holds; returns that state."""

        async def loop() -> dict[str, Any]:
            while True:
                self._changed.clear()
                if self.state is not None and predicate(self.state["state"]):
                    return self.state["state"]
                await self._changed.wait()

        return await asyncio.wait_for(loop(), timeout)

    def expect(self, type: str, **match: Any) -> asyncio.Future[dict[str, Any]]:
        """A future for the next message of `type` whose fields equal `match`.
        Call it before doing what triggers the message, then await it."""
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._watchers.append((type, match, future))
        return future

    def received(self, type: str) -> list[dict[str, Any]]:
        """The messages of `type` still in `inbox`, oldest first."""
        return [message for message in self.inbox if message.get("type") == type]

    # Incoming -------------------------------------------------------------

    async def _read(self, ws: ClientConnection) -> None:
        code = None
        try:
            async for frame in ws:
                decoded = self._decode(frame)
                if self._compact is not None:
                    decoded = self._compact.messages(decoded)
                for message in decoded if type(decoded) is list else (decoded,):
                    self._dispatch(message)
                self._changed.set()
        except ConnectionClosed:
            pass
        finally:
            code = ws.close_code
            for future in self._waiting.values():
                if not future.done():
                    future.set_exception(ConnectionError(f"connection closed ({code})"))
            if self._connected is not None and not self._connected.done():
                self._connected.set_exception(ConnectionError(f"connection closed ({code})"))
            self._changed.set()
            self._emit("onDisconnect", code)
            if (
                self.auto_reconnect
                and not self._closing
                and code not in NO_RECONNECT
                and ws is self._ws
                and (self._reconnecting is None or self._reconnecting.done())
            ):
                self._reconnecting = asyncio.ensure_future(self._reconnect())

    def _dispatch(self, message: dict[str, Any]) -> None:
        self.inbox.append(message)
        if self._watchers:
            self._notify_watchers(message)
        kind = message.get("type")
        request_id = message.get("requestId")
        future = self._waiting.get(request_id) if request_id is not None else None
        if kind == "connected":
            if self._connected is not None and not self._connected.done():
                self._connected.set_result(message)
        elif kind == "error":
            if future is not None and not future.done():
                future.set_exception(GameError(message["code"], message["message"]))
                return
            self._emit("onError", message)
        elif kind == "delta":
            self._on_delta(message["delta"])
        elif kind == "resumed":
            self._resyncing = False  # the missed deltas follow, in this frame
        elif kind in ("joined", "state"):
            # Taken here, in stream order: the deltas after it in this frame build on it.
            self._take_snapshot(message)
        elif kind == "action":
            self._emit("onAction", message)
        elif kind == "chat":
            self._emit("onChat", message)
        elif kind == "player_joined":
            self._emit("onPlayerJoined", message["player"])
        elif kind == "player_left":
            if message["player"].get("clientId") == self.client_id:  # kicked out
                self.room_id = None
                self.state = None
            self._emit("onPlayerLeft", message["player"])
        elif kind == "pong":
            self._emit("onPong", message)
        elif kind == "room_closed":
            self.room_id = None
            self.state = None
            self._emit("onRoomClosed", message)
        if future is not None and not future.done():
            future.set_result(message)

    def _notify_watchers(self, message: dict[str, Any]) -> None:
        for watcher in list(self._watchers):
            kind, match, future = watcher
            if future.done():
                self._watchers.remove(watcher)
            elif message.get("type") == kind and all(message.get(k) == v for k, v in match.items()):
                future.set_result(message)
                self._watchers.remove(watcher)

    def _take_snapshot(self, message: dict[str, Any]) -> None:
        # A copy: deltas change `self.state`, the message keeps the snapshot as sent.
        self.state = copy.deepcopy(message["state"])
        self.room_id = message["roomId"]
        self._resyncing = False
        self._emit("onStateUpdate", self.state)

    def _on_delta(self, delta: dict[str, Any]) -> None:
        state = self.state
        if state is None or self._resyncing:
            return
        if delta["toVersion"] <= state["version"]:
            return  # already have it
        if delta["fromVersion"] != state["version"]:
            self._resync()
            return
        try:
            _accel.apply(state["state"], delta["changes"])
        except PathError:
            self._resync()
            return
        state["version"] = delta["toVersion"]
        self._emit("onDelta", delta)

    def _resync(self) -> None:
        """A gap in the chain: ask for a fresh snapshot, drop deltas until it comes."""
        self._resyncing = True
        self.resyncs += 1
        asyncio.ensure_future(self.send({"type": "get_state"}))
