"""Storage behind an interface: SQLite in the data directory now, Redis later.

Keys: an app has a public key (`cb_pk_...`, safe to ship in a game client)
and a secret key (`cb_sk_...`, for the game's backend and admin tools). Both
are long random strings. Stores keep only SHA-256 digests of secret keys and
look public keys up by digest, and compare in constant time, so neither a
stolen database nor a timing probe gives a key away.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from typing import Protocol

__all__ = [
    "App",
    "AppStore",
    "NewApp",
    "ScriptStore",
    "ScriptVersion",
    "key_digest",
    "key_weakness",
    "new_public_key",
    "new_secret_key",
]

PUBLIC_PREFIX = "cb_pk_"
SECRET_PREFIX = "cb_sk_"


@dataclass(frozen=True, slots=True)
class App:
    app_id: str
    name: str
    public_key: str
    created_at: int  # ms since epoch


@dataclass(frozen=True, slots=True)
class NewApp:
    """What `create_app` returns: the only time the secret key is seen."""

    app: App
    secret_key: str


def key_digest(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def digests_equal(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode("ascii"), b.encode("ascii"))


# Keys that have been printed somewhere (docs, examples, tutorials' habits):
# never acceptable in production however long they are. Secrets are compared
# by digest, since that is all a store keeps of them.
EXAMPLE_KEYS = frozenset(
    prefix + body
    for prefix in (PUBLIC_PREFIX, SECRET_PREFIX)
    for body in ("...", "", "test", "example", "secret", "changeme", "dev", "demo", "default")
)
_EXAMPLE_DIGESTS = frozenset(key_digest(key) for key in EXAMPLE_KEYS)
_KEY_CHARS = re.compile(r"[A-Za-z0-9_-]*")


def key_weakness(public_key: str, secret_key_digest: str | None, *, min_chars: int) -> str | None:
    """Why an app's keys are too weak for production, or None. The public key
    is checked whole: `min_chars` base64url characters after the prefix, not
    one character repeated. Of the secret only its digest is known: it is
    checked against the example keys (the store itself only ever generates
    43 random characters, 256 bits)."""
    body = public_key.removeprefix(PUBLIC_PREFIX)
    if public_key in EXAMPLE_KEYS:
        return "its public key is an example key"
    if len(body) < min_chars or not _KEY_CHARS.fullmatch(body):
        return f"its public key has fewer than {min_chars} random characters after {PUBLIC_PREFIX}"
    # A random 32-character key has about 25 distinct characters; fewer than
    # 10 is a hand-typed pattern (the chance for a random one is below 1e-16).
    if len(set(body)) < 10:
        return "its public key is a repeated pattern, not random"
    if secret_key_digest is not None and secret_key_digest in _EXAMPLE_DIGESTS:
        return "its secret key is an example key"
    return None


def new_public_key() -> str:
    return PUBLIC_PREFIX + secrets.token_urlsafe(24)


def new_secret_key() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(32)


class AppStore(Protocol):
    def create_app(self, name: str) -> NewApp: ...
    def app_by_public_key(self, public_key: str) -> App | None: ...
    def app_by_name(self, name: str) -> App | None: ...
    def app_by_id(self, app_id: str) -> App | None: ...
    def check_secret(self, app_id: str, secret_key: str) -> bool: ...
    def secret_key_digest(self, app_id: str) -> str | None: ...
    def list_apps(self) -> list[App]: ...
    def settings(self, app_id: str) -> dict[str, int]:
        """Per-app overrides of server defaults (e.g. "luaInstructionLimit");
        booleans (e.g. "requireSignedClientId") are 0 or 1."""
        ...

    def signing_key(self, app_id: str) -> bytes | None:
        """The key client id tokens are signed with (gameserver.identity), if known."""
        ...

    def set_signing_key(self, app_id: str, key: bytes) -> None: ...

    def set_settings(self, app_id: str, values: dict[str, int | None]) -> None: ...
    def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class ScriptVersion:
    app_id: str
    name: str
    version: int  # 1, 2, ... per (app, name); each upload is a new version
    source: str
    created_at: int  # ms since epoch


class ScriptStore(Protocol):
    """Room scripts uploaded through the admin API, versioned per app."""

    def add_version(self, app_id: str, name: str, source: str) -> ScriptVersion: ...
    def versions(self, app_id: str, name: str) -> list[ScriptVersion]: ...
    def version(self, app_id: str, name: str, version: int) -> ScriptVersion | None: ...
    def active_version(self, app_id: str, name: str) -> int | None: ...
    def activate(self, app_id: str, name: str, version: int) -> None: ...
    def names(self, app_id: str) -> list[str]: ...
    def delete(self, app_id: str, name: str) -> bool: ...
