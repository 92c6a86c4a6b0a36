"""Credentials never reach a log line (gameserver.redact)."""

from __future__ import annotations

import logging

from gameserver.redact import RedactCredentials


def test_log_records_lose_secret_keys_and_tokens():
    record = logging.LogRecord(
        "websockets", logging.DEBUG, __file__, 1, "< GET %s HTTP/1.1", (
            "/v1/game/ws?public_key=cb_sk_abcDEF-_1&client_id=a&token=123.xyz&resume_token=q1",
        ), None,
    )  # fmt: skip
    assert RedactCredentials().filter(record)
    assert record.getMessage() == (
        "< GET /v1/game/ws?public_key=cb_sk_<redacted>&client_id=a&token=<redacted>"
        "&resume_token=<redacted> HTTP/1.1"
    )
