"""The handshake decision, the same for every transport.

A transport parses the HTTP upgrade request its own way, then asks `Gate.check`
with what it found (the request target, the headers, the peer's address) and
gets either a `Refusal` to answer with (an HTTP status and a plain-text body,
docs/protocol.md lists them) or an `Accepted` naming the app and the query.
No I/O here: the app lookup goes through the store, cached.

Rules are checked in order, cheapest and least specific first; a new rule is
one `if` in `check`. The per-address cap reads a `PeerCount` that the
transport keeps from TCP accept to TCP close (peers.py); signed client ids
are checked per handshake, since the admin API may turn them on at any time.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from http import HTTPStatus
from urllib.parse import parse_qs, urlsplit

from gameserver import identity
from gameserver.config import REQUIRE_SIGNED_CLIENT_ID
from gameserver.net.peers import PeerCount
from gameserver.storage import App, AppStore

__all__ = ["WS_PATH", "Accepted", "Gate", "Refusal", "collect_headers"]

WS_PATH = "/v1/game/ws"
# What `GET <target> HTTP/1.1\r\n` adds to the request target.
_REQUEST_LINE_OVERHEAD = len("GET  HTTP/1.1\r\n")


@dataclass(frozen=True, slots=True)
class Refusal:
    """Answer the upgrade request with this HTTP status and plain-text body."""

    status: HTTPStatus
    body: str
    headers: tuple[tuple[str, str], ...] = ()  # besides Content-Type


@dataclass(frozen=True, slots=True)
class Accepted:
    """Upgrade: the connection belongs to `app`; `query` is its decoded query."""

    app: App
    query: dict[str, str]


NOT_FOUND = Refusal(HTTPStatus.NOT_FOUND, f"the game endpoint is {WS_PATH}\n")
URL_TOO_LONG = Refusal(HTTPStatus.REQUEST_URI_TOO_LONG, "the URL is too long (8 KiB at most)\n")
# (websockets refuses a non-ASCII request target with 400 too, in its own words.)
NOT_ASCII = Refusal(HTTPStatus.BAD_REQUEST, "the URL must be ASCII (percent-encode the rest)\n")
BAD_QUERY = Refusal(HTTPStatus.BAD_REQUEST, "query parameters must be UTF-8\n")
UNAUTHORIZED = Refusal(HTTPStatus.UNAUTHORIZED, "missing or unknown public key\n")
TWO_PUBLIC_KEYS = Refusal(HTTPStatus.BAD_REQUEST, "X-Public-Key given more than once\n")
TWO_WS_KEYS = Refusal(HTTPStatus.BAD_REQUEST, "Sec-WebSocket-Key given more than once\n")
NOT_AN_UPGRADE = Refusal(
    HTTPStatus.UPGRADE_REQUIRED,
    "this endpoint speaks WebSocket only: send a WebSocket upgrade request\n",
    (("Upgrade", "websocket"), ("Connection", "Upgrade")),
)
BAD_VERSION = Refusal(
    HTTPStatus.UPGRADE_REQUIRED,
    "only WebSocket version 13 (RFC 6455) is spoken here\n",
    (("Sec-WebSocket-Version", "13"),),
)
TOO_MANY = Refusal(HTTPStatus.TOO_MANY_REQUESTS, "too many connections from this address\n")
NO_SIGNING_KEY = "this app requires signed client ids but has no signing key yet"


def collect_headers(items: Iterable[tuple[str, str]]) -> dict[str, list[str]]:
    """A request's headers as the gate reads them: lower-case name → every
    value sent, in order (a header sent twice must not slip by as one)."""
    headers: dict[str, list[str]] = {}
    for name, value in items:
        headers.setdefault(name.lower(), []).append(value)
    return headers


def _is_upgrade(headers: Mapping[str, list[str]]) -> bool:
    """`Upgrade: websocket`, once, and a `Connection` header that names
    `Upgrade` among its tokens (`keep-alive, Upgrade` from some browsers)."""
    tokens = {t.strip().lower() for v in headers.get("connection", ()) for t in v.split(",")}
    return [v.lower() for v in headers.get("upgrade", ())] == ["websocket"] and "upgrade" in tokens


def parse_query(target: str) -> dict[str, str]:
    """The query parameters of a request target; raises UnicodeDecodeError when
    one is not UTF-8 (replacing bad bytes would let different client ids collide)."""
    query = urlsplit(target).query
    return {k: v[0] for k, v in parse_qs(query, keep_blank_values=True, errors="strict").items()}


class Gate:
    """Decides each upgrade request. One per server; caches public key → app."""

    def __init__(
        self,
        store: AppStore,
        *,
        max_request_line: int,
        peers: PeerCount,
        max_token_lifetime: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._max_target = max_request_line - _REQUEST_LINE_OVERHEAD
        self._cache: dict[str, App] = {}
        self.peers = peers
        self._max_token_lifetime = max_token_lifetime
        self._clock = clock

    def check(
        self, target: str, headers: Mapping[str, list[str]], peer: str | None
    ) -> Refusal | Accepted:
        """`target` is the request target as sent (path and query, %-encoded),
        `headers` as `collect_headers` gives them; `peer` the client's IP
        address, when the transport knows it."""
        if len(target) > self._max_target:
            return URL_TOO_LONG
        if urlsplit(target).path != WS_PATH:
            return NOT_FOUND
        if peer is not None and self.peers.over_cap(peer):
            return TOO_MANY
        if not _is_upgrade(headers):
            return NOT_AN_UPGRADE
        if headers.get("sec-websocket-version") != ["13"]:
            return BAD_VERSION
        if len(headers.get("sec-websocket-key", ())) > 1:
            return TWO_WS_KEYS
        try:
            query = parse_query(target)
        except UnicodeDecodeError:
            return BAD_QUERY
        if len(headers.get("x-public-key", ())) > 1:
            return TWO_PUBLIC_KEYS
        app = self.app_for(headers, query)
        if app is None:
            return UNAUTHORIZED
        refusal = self._token_refusal(app, query)
        if refusal is not None:
            return Refusal(HTTPStatus.UNAUTHORIZED, refusal + "\n")
        return Accepted(app, query)

    def _token_refusal(self, app: App, query: Mapping[str, str]) -> str | None:
        """Why the client id is not vouched for, when the app asks for signed ones."""
        if not self._store.settings(app.app_id).get(REQUIRE_SIGNED_CLIENT_ID):
            return None
        key = self._store.signing_key(app.app_id)
        if key is None:  # an app from before signing keys, never turned on through the API
            return NO_SIGNING_KEY
        return identity.token_refusal(
            key,
            query.get("client_id", ""),
            query.get("token"),
            now=self._clock(),
            max_lifetime=self._max_token_lifetime,
        )

    def app_for(self, headers: Mapping[str, list[str]], query: Mapping[str, str]) -> App | None:
        key = query.get("public_key") or next(iter(headers.get("x-public-key", ())), "")
        if not key.startswith("cb_pk_") or len(key) > 256:
            return None
        app = self._cache.get(key)
        if app is None:
            app = self._store.app_by_public_key(key)
            if app is not None:
                self._cache[key] = app
        return app
