"""Signed client ids: the game's backend vouches for who a player is.

Without them a client picks its own `client_id`, and anyone holding the app's
public key (which ships in every game client) may claim any id. An app that
turns on `requireSignedClientId` makes each handshake carry a `token` that its
backend minted for exactly that id, until an expiry:

    signing_key = HMAC-SHA256(key=secret_key, msg="gameserver client id v1")
    token       = f"{expiry}.{base64url_nopad(HMAC-SHA256(signing_key, f'{client_id}.{expiry}'))}"

`expiry` is Unix seconds, in decimal. Why a derived key and not the secret
key itself: the server keeps only a SHA-256 digest of the secret key (a
stolen database must not open the admin API), so it cannot key an HMAC with
the secret. It keeps `signing_key` instead, learnt from the secret when the
app is created or when an admin request turns the setting on. The derivation
is one-way: whoever reads `signing_key` from the database can mint tokens
for that app's players, but cannot recover the secret key or use the admin
API. The backend needs only its secret key (`mint_token` derives the rest).

Pure functions; the clock is a parameter.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re

__all__ = ["signing_key", "sign", "mint_token", "token_refusal"]

_LABEL = b"gameserver client id v1"
# Expiry: 1..12 decimal digits (Unix seconds up to the year 33658); the MAC:
# 32 bytes are 43 base64url characters without padding.
_TOKEN = re.compile(r"([0-9]{1,12})\.([A-Za-z0-9_-]{43})")


def signing_key(secret_key: str) -> bytes:
    """The per-app key tokens are signed with, derived from the secret key."""
    return hmac.new(secret_key.encode("utf-8"), _LABEL, hashlib.sha256).digest()


def sign(key: bytes, client_id: str, expiry: int) -> str:
    """The token for `client_id` until `expiry`, from the derived `key`."""
    message = f"{client_id}.{expiry}".encode("utf-8", "surrogatepass")
    mac = hmac.new(key, message, hashlib.sha256).digest()
    return f"{expiry}." + base64.urlsafe_b64encode(mac).rstrip(b"=").decode("ascii")


def mint_token(secret_key: str, client_id: str, expiry: int) -> str:
    """What a game's backend calls: a token for `client_id` valid until
    `expiry` (Unix seconds). Hand it to the client, which passes it as the
    `token` query parameter of its WebSocket URL."""
    return sign(signing_key(secret_key), client_id, expiry)


def token_refusal(
    key: bytes, client_id: str, token: str | None, *, now: float, max_lifetime: float
) -> str | None:
    """None when `token` vouches for `client_id` at `now`; else the reason to
    refuse, safe to show the client. The MAC is checked before the expiry,
    in constant time, so "expired" is only ever said of a genuine token."""
    if not token:
        return "this app requires a signed client id: pass token=EXPIRY.SIGNATURE"
    match = _TOKEN.fullmatch(token)
    if match is None:
        return "malformed token: expected EXPIRY.SIGNATURE"
    expiry = int(match.group(1))
    expected = sign(key, client_id, expiry)
    if not hmac.compare_digest(expected.encode("ascii"), token.encode("ascii")):
        return "the token was not signed for this client id"
    if expiry <= now:
        return "the token has expired"
    if expiry > now + max_lifetime:
        return "the token's expiry is too far ahead"
    return None
