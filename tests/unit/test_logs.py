"""The JSON log format: one parseable object per record, extra= fields as keys."""

from __future__ import annotations

import json
import logging
import sys

from gameserver.logs import JsonFormatter, TextFormatter


def record(exc_info=None, extra=None) -> logging.LogRecord:
    return logging.getLogger("gameserver.test").makeRecord(
        "gameserver.test", logging.INFO, __file__, 1, "room %s/%s disposed", ("a", "r"),
        exc_info, extra=extra,
    )  # fmt: skip


def test_a_record_becomes_one_line_with_its_extra_fields():
    line = JsonFormatter().format(record(extra={"event": "room_disposed", "room": "r", "n": 3}))
    assert "\n" not in line
    entry = json.loads(line)
    assert entry["message"] == "room a/r disposed" and entry["level"] == "INFO"
    assert entry["logger"] == "gameserver.test" and entry["time"].endswith("Z")
    assert (entry["event"], entry["room"], entry["n"]) == ("room_disposed", "r", 3)
    assert "args" not in entry and "exc_info" not in entry  # LogRecord internals stay out


def test_a_traceback_and_a_non_json_field_still_make_one_line():
    try:
        raise ValueError("boom")
    except ValueError:
        exc_info = sys.exc_info()
    line = JsonFormatter().format(record(exc_info=exc_info, extra={"peer": ("127.0.0.1", 9)}))
    entry = json.loads(line)
    assert "Traceback" in entry["exc_info"] and "ValueError: boom" in entry["exc_info"]
    assert entry["peer"] == ["127.0.0.1", 9]


def test_the_text_format_escapes_what_could_forge_a_line():
    reason = "bye\n2026-01-01 00:00:00,000 ERROR gameserver.service: forged\r\x1b[31m\u2028"
    line = TextFormatter().format(
        logging.makeLogRecord({"msg": "closed reason=%s", "args": (reason,), "levelname": "INFO"})
    )
    assert "\n" not in line and "\r" not in line and "\x1b" not in line and "\u2028" not in line
    assert line.endswith(
        "closed reason=bye\\n2026-01-01 00:00:00,000 ERROR gameserver.service: forged\\r\\x1b[31m\\u2028"
    )


def test_a_traceback_follows_its_record_indented_and_without_secrets():
    try:
        raise ValueError("bad header: cb_sk_s3cret token=t0k\n2026-01-01 00:00:00,000 ERROR forged")
    except ValueError:
        info = sys.exc_info()
    lines = TextFormatter().format(record(exc_info=info)).splitlines()
    assert lines[0].endswith("room a/r disposed")
    assert lines[1] == "  Traceback (most recent call last):"
    assert all(line.startswith("  ") for line in lines[1:])  # nothing passes for a record
    assert "s3cret" not in "\n".join(lines) and "t0k" not in "\n".join(lines)
    entry = json.loads(JsonFormatter().format(record(exc_info=info)))
    assert "s3cret" not in entry["exc_info"] and "cb_sk_<redacted>" in entry["exc_info"]
