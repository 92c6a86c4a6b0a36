"""Which app keys `--require-strong-keys` refuses (storage.base.key_weakness)."""

from __future__ import annotations

import pytest

from gameserver.storage.base import key_digest, key_weakness, new_public_key, new_secret_key


def weakness(public_key: str, secret_key: str | None = None) -> str | None:
    digest = None if secret_key is None else key_digest(secret_key)
    return key_weakness(public_key, digest, min_chars=32)


def test_generated_keys_are_strong():
    for _ in range(1000):
        assert weakness(new_public_key(), new_secret_key()) is None


@pytest.mark.parametrize(
    ("public_key", "secret_key", "reason"),
    [
        ("cb_pk_...", None, "example key"),
        ("cb_pk_test", None, "example key"),
        ("cb_pk_" + "x" * 31, None, "fewer than 32"),
        ("cb_pk_" + "x" * 40, None, "repeated pattern"),
        ("cb_pk_" + "ab" * 20, None, "repeated pattern"),
        ("cb_pk_" + "a1b2c3d4e5" * 3 + "é!", None, "fewer than 32"),  # not base64url
        ("cb_pk_" + "0123456789abcdefghijklmnopqrstuv", "cb_sk_changeme", "secret key"),
        ("cb_pk_" + "0123456789abcdefghijklmnopqrstuv", "cb_sk_...", "secret key"),
    ],
)
def test_short_patterned_or_example_keys_are_weak(public_key, secret_key, reason):
    found = weakness(public_key, secret_key)
    assert found is not None and reason in found
