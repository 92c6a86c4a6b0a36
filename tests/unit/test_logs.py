"""The JSON log format: one parseable object per record, extra= fields as keys."""

from __future__ import annotations

import json
import logging
import sys

from gameserver.logs import JsonFormatter


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
