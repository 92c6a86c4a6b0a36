"""A logging filter that keeps credentials out of log lines.

Our own log lines never carry a key, but libraries log what peers send: at
DEBUG websockets logs every handshake's request line, query string included,
and a developer who pastes the secret key where the public key goes would
find it in the log. Installed on the CLI's log handler, so it sees the
records of every logger (a filter on a logger misses its children's records).
"""

from __future__ import annotations

import logging
import re

__all__ = ["RedactCredentials"]

# A secret key anywhere; the value of a `token` or `resume_token` (bearer
# credentials for a client id) in a query string.
_CREDENTIALS = re.compile(r"(cb_sk_|(?<![A-Za-z])(?:resume_)?token=)[^\s&'\"]*")


class RedactCredentials(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "cb_sk_" in message or "token=" in message:
            record.msg = _CREDENTIALS.sub(r"\1<redacted>", message)
            record.args = None
        return True
