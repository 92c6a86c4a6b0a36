"""Uploaded room scripts in the data directory's SQLite file, versioned."""

from __future__ import annotations

import time
from pathlib import Path

from gameserver.storage.base import ScriptVersion
from gameserver.storage.sqlite import open_database

__all__ = ["SqliteScriptStore"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS script_versions (
    app_id TEXT NOT NULL,
    name TEXT NOT NULL,
    version INTEGER NOT NULL,
    source TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (app_id, name, version)
);
CREATE TABLE IF NOT EXISTS active_scripts (
    app_id TEXT NOT NULL,
    name TEXT NOT NULL,
    version INTEGER NOT NULL,
    PRIMARY KEY (app_id, name)
);
"""


class SqliteScriptStore:
    def __init__(self, data_dir: Path) -> None:
        self._db = open_database(data_dir, _SCHEMA)

    def add_version(self, app_id: str, name: str, source: str) -> ScriptVersion:
        with self._db:  # one transaction: the next version number is ours alone
            self._db.execute("BEGIN IMMEDIATE")
            (latest,) = self._db.execute(
                "SELECT COALESCE(MAX(version), 0) FROM script_versions WHERE app_id = ? AND name = ?",
                (app_id, name),
            ).fetchone()
            row = ScriptVersion(app_id, name, latest + 1, source, int(time.time() * 1000))
            self._db.execute(
                "INSERT INTO script_versions VALUES (?, ?, ?, ?, ?)",
                (row.app_id, row.name, row.version, row.source, row.created_at),
            )
        return row

    def versions(self, app_id: str, name: str) -> list[ScriptVersion]:
        rows = self._db.execute(
            "SELECT app_id, name, version, source, created_at FROM script_versions "
            "WHERE app_id = ? AND name = ? ORDER BY version",
            (app_id, name),
        ).fetchall()
        return [ScriptVersion(*row) for row in rows]

    def version(self, app_id: str, name: str, version: int) -> ScriptVersion | None:
        row = self._db.execute(
            "SELECT app_id, name, version, source, created_at FROM script_versions "
            "WHERE app_id = ? AND name = ? AND version = ?",
            (app_id, name, version),
        ).fetchone()
        return ScriptVersion(*row) if row else None

    def active_version(self, app_id: str, name: str) -> int | None:
        row = self._db.execute(
            "SELECT version FROM active_scripts WHERE app_id = ? AND name = ?", (app_id, name)
        ).fetchone()
        return row[0] if row else None

    def activate(self, app_id: str, name: str, version: int) -> None:
        self._db.execute(
            "INSERT INTO active_scripts VALUES (?, ?, ?) "
            "ON CONFLICT (app_id, name) DO UPDATE SET version = excluded.version",
            (app_id, name, version),
        )

    def names(self, app_id: str) -> list[str]:
        rows = self._db.execute(
            "SELECT DISTINCT name FROM script_versions WHERE app_id = ? ORDER BY name", (app_id,)
        ).fetchall()
        return [row[0] for row in rows]

    def delete(self, app_id: str, name: str) -> bool:
        with self._db:
            gone = self._db.execute(
                "DELETE FROM script_versions WHERE app_id = ? AND name = ?", (app_id, name)
            ).rowcount
            self._db.execute(
                "DELETE FROM active_scripts WHERE app_id = ? AND name = ?", (app_id, name)
            )
        return gone > 0

    def close(self) -> None:
        self._db.close()
