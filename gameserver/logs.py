"""Where log lines go and how they look: text for people, JSON for collectors.

`--log-format json` writes one JSON object per line: `time` (UTC, ISO 8601),
`level`, `logger`, `message`, then every field the code passed with `extra=`
(the lifecycle lines pass `event`, `app`, `client`, `room`, `code`,
`reason`), and `exc_info` with the traceback when there is one. A collector
indexes the fields without parsing the message. docs/operations.md lists them.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any

from gameserver.config import LOG_FORMATS
from gameserver.redact import RedactCredentials, redact

__all__ = ["ClientFaultsAtDebug", "JsonFormatter", "TextFormatter", "configure_logging"]

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

# Attributes every LogRecord has; anything else on a record came from `extra=`.
# websockets adds its connection object as `websocket` to its own lines: not a field.
_RECORD_FIELDS = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime", "websocket"}


# Line breaks and other control characters a client put in a field (its id,
# a close reason, a script's log text) are shown escaped: one record is one
# line, so nobody can forge a line of the log.
_ESCAPES = {c: f"\\x{c:02x}" for c in (*range(32), 0x7F, *range(0x80, 0xA0)) if c != 9}
_ESCAPES |= {10: "\\n", 13: "\\r", 0x2028: "\\u2028", 0x2029: "\\u2029"}


class TextFormatter(logging.Formatter):
    """Each record is one line; a traceback follows it with every line
    indented, so that nothing in it (an exception's message may quote what a
    client sent) can pass for a record of its own."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 (logging's name)
        record.message = record.message.translate(_ESCAPES)
        return super().formatMessage(record)

    def formatException(self, ei: Any) -> str:  # noqa: N802
        return _indented(redact(super().formatException(ei)))

    def formatStack(self, stack_info: str) -> str:  # noqa: N802
        return _indented(redact(stack_info))


def _indented(text: str) -> str:
    return "\n".join("  " + line.translate(_ESCAPES) for line in text.splitlines())


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _RECORD_FIELDS and key not in entry:
                entry[key] = value
        if record.exc_info:
            entry["exc_info"] = redact(self.formatException(record.exc_info))
        if record.stack_info:
            entry["stack_info"] = redact(self.formatStack(record.stack_info))
        # default=str: a field that is not JSON (a path, an address tuple) still
        # makes a line, never an error inside the logging call.
        return json.dumps(entry, default=str)


class ClientFaultsAtDebug(logging.Filter):
    """Two libraries log a client's malformed bytes at ERROR: picows each
    frame that breaks the WebSocket protocol (the client gets its 1002/1007/
    1009 close), aiohttp an over-long request line or header on the admin port
    (the client gets its 400), with a traceback. Any client could fill the log
    with them, and they are not the server's errors: they become DEBUG lines,
    shown only at `--log-level DEBUG`, like websockets' own."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.ERROR and self._client_fault(record):
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
            return logging.getLogger("gameserver").isEnabledFor(logging.DEBUG)
        return True

    @staticmethod
    def _client_fault(record: logging.LogRecord) -> bool:
        if record.name.startswith("gameserver.picows"):
            return str(record.msg).startswith("WS parser error")
        if record.name == "aiohttp.server" and record.exc_info:
            from aiohttp.http_exceptions import BadHttpMessage

            return isinstance(record.exc_info[1], BadHttpMessage)
        return False


def configure_logging(level: str, log_format: str) -> None:
    """Send every logger's records to stderr, as `log_format` says (LOG_FORMATS)."""
    if log_format not in LOG_FORMATS:
        raise ValueError(f"log format must be one of {', '.join(LOG_FORMATS)}")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    handler.addFilter(RedactCredentials())  # secret keys and tokens never reach the log
    handler.addFilter(ClientFaultsAtDebug())
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)
