"""The log lines of a connection's life, the same from every transport: one
when it opens and one when it closes (never one per message), with their
fields as structured `extra` for `--log-format json`."""

from __future__ import annotations

import logging

__all__ = ["log_open", "log_closed"]

log = logging.getLogger("gameserver.net")


def log_open(app_id: str, client_id: str, peer: str | None) -> None:
    log.info(
        "connection open app=%s client=%s peer=%s",
        app_id,
        client_id,
        peer,
        extra={"event": "connection_open", "app": app_id, "client": client_id, "peer": peer},
    )


def log_closed(app_id: str, client_id: str, code: int | None, reason: str) -> None:
    log.info(
        "connection closed app=%s client=%s code=%s reason=%s",
        app_id,
        client_id,
        code,
        reason,
        extra={
            "event": "connection_closed",
            "app": app_id,
            "client": client_id,
            "code": code,
            "reason": reason,
        },
    )
