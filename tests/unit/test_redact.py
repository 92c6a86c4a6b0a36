"""Credentials never reach a log line (gameserver.redact)."""

from __future__ import annotations

import logging

from websockets.frames import Frame, Opcode

from gameserver.redact import RedactCredentials, redact


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


def test_percent_encoded_credentials_are_redacted_too():
    # The server decodes these like the plain spelling, so the log must not show them.
    line = (
        "GET /v1/game/ws?client_id=a&resume%5Ftoken=live1&public_key=%63%62%5F%73%6B%5Fk3y HTTP/1.1"
    )
    assert redact(line) == (
        "GET /v1/game/ws?client_id=a&resume_token=<redacted>&public_key=cb_sk_<redacted> HTTP/1.1"
    )
    assert redact("100% of a%20b") == "100% of a%20b"  # nothing secret: left as it was


def test_extra_fields_lose_credentials_as_the_message_does():
    record = logging.makeLogRecord(
        {"msg": "closed client=%s", "args": ("cb_sk_abc",), "client": "cb_sk_abc", "code": 4000}
    )
    record.reason = "see token=xyz"
    assert RedactCredentials().filter(record)
    assert record.getMessage() == "closed client=cb_sk_<redacted>"
    assert (record.client, record.reason, record.code) == (
        "cb_sk_<redacted>",
        "see token=<redacted>",
        4000,
    )


def test_websockets_frame_lines_keep_only_the_frames_kind_and_size():
    frame = Frame(Opcode.TEXT, b'{"type":"connected","resumeToken":"live-token-123"}')
    record = logging.makeLogRecord({"msg": "> %s", "args": (frame,)})
    assert RedactCredentials().filter(record)
    assert record.getMessage() == f"> TEXT [{len(frame.data)} bytes]"
