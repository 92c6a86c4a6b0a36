from __future__ import annotations

from gameserver.storage import SqliteAppStore


def test_apps_survive_a_reopen_and_keys_resolve(tmp_path):
    store = SqliteAppStore(tmp_path)
    new = store.create_app("game")
    store.close()
    store = SqliteAppStore(tmp_path)
    assert store.app_by_public_key(new.app.public_key) == new.app
    assert store.app_by_name("game") == new.app
    assert store.check_secret(new.app.app_id, new.secret_key)
    assert not store.check_secret(new.app.app_id, new.secret_key + "x")
    assert not store.check_secret(new.app.app_id, new.app.public_key)
    assert not store.check_secret("nope", new.secret_key)
    assert store.app_by_public_key("cb_pk_ключ") is None
    assert store.app_by_public_key(new.secret_key) is None
    assert [a.name for a in store.list_apps()] == ["game"]


def test_only_digests_of_secret_keys_are_stored(tmp_path):
    store = SqliteAppStore(tmp_path)
    new = store.create_app("game")
    store.close()
    raw = (tmp_path / "gameserver.sqlite3").read_bytes()
    wal = tmp_path / "gameserver.sqlite3-wal"
    raw += wal.read_bytes() if wal.exists() else b""
    assert new.secret_key.encode() not in raw
    assert new.secret_key[6:].encode() not in raw
