"""A logging filter that keeps credentials out of log lines.

Our own log lines never carry a key, but libraries log what peers send: at
DEBUG websockets logs every handshake's request line, query string included,
a developer who pastes the secret key where the public key goes would find it
in the log, and a client may put anything in its id or its close reason.
Installed on the CLI's log handler, so it sees the records of every logger (a
filter on a logger misses its children's records). It cleans the message and
every `extra=` field, which `--log-format json` writes out as they are.
"""

from __future__ import annotations

import logging
import re
from urllib.parse import unquote

from websockets.frames import Frame

__all__ = ["RedactCredentials", "redact"]

# A secret key anywhere; the value of a `token` or `resume_token` (bearer
# credentials for a client id) in a query string.
_CREDENTIALS = re.compile(r"(cb_sk_|(?<![A-Za-z])(?:resume_)?token=)[^\s&'\"]*")
# A run of URL text with %-escapes in it: a server decodes `resume%5Ftoken=`
# and `%63b_sk_...` like the plain spelling, so the log must not show them.
_ESCAPED = re.compile(r"[^\s'\"]*%[0-9A-Fa-f]{2}[^\s'\"]*")

# Attributes every LogRecord has; anything else on a record came from `extra=`.
_RECORD_FIELDS = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


def _decoded_if_secret(run: re.Match[str]) -> str:
    plain = unquote(run.group())
    return plain if "cb_sk_" in plain or "token=" in plain else run.group()


def redact(text: str) -> str:
    """`text` with secret keys and token values replaced by `<redacted>`."""
    if "%" in text:
        text = _ESCAPED.sub(_decoded_if_secret, text)
    if "cb_sk_" in text or "token=" in text:
        text = _CREDENTIALS.sub(r"\1<redacted>", text)
    return text


class RedactCredentials(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if type(args) is tuple and len(args) == 1 and isinstance(args[0], Frame):
            # websockets logs each frame at DEBUG with the start and end of its
            # payload: whatever a message holds (a resume token in `connected`,
            # a key a player typed into chat), cut where no pattern finds it.
            frame = args[0]
            record.args = (f"{frame.opcode.name} [{len(frame.data)} bytes]",)
        message = record.getMessage()
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        extra = [(k, v) for k, v in vars(record).items() if k not in _RECORD_FIELDS]
        for key, value in extra:
            if type(value) is str:
                setattr(record, key, redact(value))
        return True
