"""Signed client id tokens (gameserver.identity): pure, with the clock handed in."""

from __future__ import annotations

import base64
import hashlib
import hmac
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from gameserver.identity import mint_token, sign, signing_key, token_refusal

SECRET = "cb_sk_" + "s3cr3t-for-tests-only-0123456789abcdefghij"
NOW = 1_800_000_000
WEEK = 7 * 24 * 3600


def check(token: str | None, client_id: str = "player-1", *, now: float = NOW, secret=SECRET):
    return token_refusal(signing_key(secret), client_id, token, now=now, max_lifetime=WEEK)


def test_the_format_is_expiry_dot_base64url_hmac_of_a_derived_key():
    # Written out with hashlib/hmac alone, as docs/admin.md tells a backend to.
    key = hmac.new(SECRET.encode(), b"gameserver client id v1", hashlib.sha256).digest()
    mac = hmac.new(key, b"player-1.1800000060", hashlib.sha256).digest()
    expected = "1800000060." + base64.urlsafe_b64encode(mac).decode().rstrip("=")
    assert mint_token(SECRET, "player-1", NOW + 60) == expected
    assert sign(signing_key(SECRET), "player-1", NOW + 60) == expected
    assert len(expected.split(".")[1]) == 43


def test_a_fresh_token_for_the_id_passes():
    assert check(mint_token(SECRET, "player-1", NOW + 60)) is None
    assert check(mint_token(SECRET, "jöur.ney", NOW + 1), "jöur.ney") is None


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        (None, "requires a signed client id"),
        ("", "requires a signed client id"),
        ("1800000060", "malformed"),
        ("abc.def", "malformed"),
        ("-5." + "A" * 43, "malformed"),
        ("1" * 13 + "." + "A" * 43, "malformed"),
        ("1800000060." + "A" * 43 + "=", "malformed"),
        ("1800000060.ключ", "malformed"),
        ("1800000060." + "A" * 43, "not signed for this client id"),
    ],
)
def test_missing_malformed_or_forged_tokens_are_refused(token, reason):
    refusal = check(token)
    assert refusal is not None and reason in refusal


def test_another_players_token_or_another_apps_key_is_refused():
    token = mint_token(SECRET, "player-1", NOW + 60)
    assert "not signed" in check(token, "player-2")
    assert "not signed" in check(token, "player-1 ")
    assert "not signed" in check(token, secret=SECRET + "x")


def test_a_token_changed_in_its_expiry_no_longer_verifies():
    token = mint_token(SECRET, "player-1", NOW + 60)
    stretched = str(NOW + 6000) + token[token.index(".") :]
    assert "not signed" in check(stretched)


def test_expiry_is_checked_against_the_injected_clock():
    token = mint_token(SECRET, "player-1", NOW + 60)
    assert check(token, now=NOW + 59.9) is None
    assert check(token, now=NOW + 60) == "the token has expired"
    assert check(token, now=NOW + 10_000) == "the token has expired"


def test_an_expiry_beyond_the_longest_lifetime_is_refused():
    assert check(mint_token(SECRET, "player-1", NOW + WEEK)) is None
    assert "too far ahead" in check(mint_token(SECRET, "player-1", NOW + WEEK + 1))


def _snippet(doc: str, lang: str) -> str:
    section = doc[doc.index("## Signed client ids") :]
    start = section.index(f"```{lang}\n") + len(lang) + 4
    return section[start : section.index("```", start)]


def test_the_python_snippet_in_the_admin_docs_mints_the_same_token(monkeypatch):
    doc = (Path(__file__).resolve().parents[2] / "docs" / "admin.md").read_text()
    scope: dict = {}
    exec(_snippet(doc, "python"), scope)
    monkeypatch.setattr(time, "time", lambda: NOW)
    assert scope["mint_token"](SECRET, "plåyer", 60) == mint_token(SECRET, "plåyer", NOW + 60)


@pytest.mark.skipif(shutil.which("node") is None, reason="Node.js is not installed")
def test_the_nodejs_snippet_in_the_admin_docs_mints_the_same_token():
    doc = (Path(__file__).resolve().parents[2] / "docs" / "admin.md").read_text()
    script = _snippet(doc, "js") + "console.log(mintToken(process.argv[1], process.argv[2], 60))\n"
    out = subprocess.run(
        ["node", "-e", script, SECRET, "plåyer"], capture_output=True, text=True, check=True
    ).stdout.strip()
    expiry = int(out.split(".")[0])
    assert abs(expiry - (time.time() + 60)) < 30
    assert out == mint_token(SECRET, "plåyer", expiry)
