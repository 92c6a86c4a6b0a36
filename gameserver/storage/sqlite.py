"""The embedded default store: one SQLite file in the data directory."""

from __future__ import annotations

import secrets
import sqlite3
import time
from pathlib import Path

from gameserver import identity
from gameserver.storage.base import (
    App,
    NewApp,
    digests_equal,
    key_digest,
    new_public_key,
    new_secret_key,
)

__all__ = ["SqliteAppStore", "open_database"]

DATABASE_FILE = "gameserver.sqlite3"


def open_database(data_dir: Path, schema: str) -> sqlite3.Connection:
    """The data directory's one SQLite file (created if need be), with `schema`
    applied. Each store opens its own connection; WAL lets them share the file."""
    data_dir.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(data_dir / DATABASE_FILE, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA busy_timeout=5000")
    db.executescript(schema)
    return db


_SCHEMA = """
CREATE TABLE IF NOT EXISTS apps (
    app_id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    public_key TEXT NOT NULL,
    public_key_digest TEXT NOT NULL UNIQUE,
    secret_key_digest TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS app_settings (
    app_id TEXT NOT NULL,
    name TEXT NOT NULL,
    value INTEGER NOT NULL,
    PRIMARY KEY (app_id, name)
);
-- Derived from the secret key (gameserver.identity): it cannot give the secret back.
CREATE TABLE IF NOT EXISTS signing_keys (
    app_id TEXT PRIMARY KEY,
    key BLOB NOT NULL
);
"""


class SqliteAppStore:
    def __init__(self, data_dir: Path) -> None:
        self._db = open_database(data_dir, _SCHEMA)

    def create_app(self, name: str) -> NewApp:
        app = App(
            app_id="app_" + secrets.token_hex(8),
            name=name,
            public_key=new_public_key(),
            created_at=int(time.time() * 1000),
        )
        secret = new_secret_key()
        try:
            self._db.execute(
                "INSERT INTO apps VALUES (?, ?, ?, ?, ?, ?)",
                (
                    app.app_id,
                    app.name,
                    app.public_key,
                    key_digest(app.public_key),
                    key_digest(secret),
                    app.created_at,
                ),
            )
        except sqlite3.IntegrityError:
            raise ValueError(f"an app named {name!r} already exists") from None
        self.set_signing_key(app.app_id, identity.signing_key(secret))
        return NewApp(app, secret)

    def _one(self, where: str, arg: str) -> App | None:
        row = self._db.execute(
            f"SELECT app_id, name, public_key, created_at FROM apps WHERE {where} = ?", (arg,)
        ).fetchone()
        return App(*row) if row else None

    def app_by_public_key(self, public_key: str) -> App | None:
        # Looked up by digest: the index never compares the key itself.
        return self._one("public_key_digest", key_digest(public_key))

    def app_by_name(self, name: str) -> App | None:
        return self._one("name", name)

    def app_by_id(self, app_id: str) -> App | None:
        return self._one("app_id", app_id)

    def check_secret(self, app_id: str, secret_key: str) -> bool:
        digest = self.secret_key_digest(app_id)
        return digest is not None and digests_equal(digest, key_digest(secret_key))

    def secret_key_digest(self, app_id: str) -> str | None:
        row = self._db.execute(
            "SELECT secret_key_digest FROM apps WHERE app_id = ?", (app_id,)
        ).fetchone()
        return None if row is None else str(row[0])

    def signing_key(self, app_id: str) -> bytes | None:
        row = self._db.execute(
            "SELECT key FROM signing_keys WHERE app_id = ?", (app_id,)
        ).fetchone()
        return None if row is None else bytes(row[0])

    def set_signing_key(self, app_id: str, key: bytes) -> None:
        self._db.execute(
            "INSERT INTO signing_keys VALUES (?, ?) "
            "ON CONFLICT (app_id) DO UPDATE SET key = excluded.key",
            (app_id, key),
        )

    def settings(self, app_id: str) -> dict[str, int]:
        rows = self._db.execute(
            "SELECT name, value FROM app_settings WHERE app_id = ?", (app_id,)
        ).fetchall()
        return dict(rows)

    def set_settings(self, app_id: str, values: dict[str, int | None]) -> None:
        """Set (or with None, reset to the server's default) per-app settings."""
        with self._db:
            for name, value in values.items():
                if value is None:
                    self._db.execute(
                        "DELETE FROM app_settings WHERE app_id = ? AND name = ?", (app_id, name)
                    )
                else:
                    self._db.execute(
                        "INSERT INTO app_settings VALUES (?, ?, ?) ON CONFLICT (app_id, name) "
                        "DO UPDATE SET value = excluded.value",
                        (app_id, name, value),
                    )

    def list_apps(self) -> list[App]:
        rows = self._db.execute(
            "SELECT app_id, name, public_key, created_at FROM apps ORDER BY created_at"
        ).fetchall()
        return [App(*row) for row in rows]

    def close(self) -> None:
        self._db.close()
