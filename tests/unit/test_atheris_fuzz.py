"""The coverage-guided fuzzer (fuzz/fuzz_receive.py), sized for CI: tens of
thousands of inputs into the dispatcher in all three encodings, rooms
ticking, and not one `internal_error`, ERROR log line or exception.

atheris ships wheels for Linux x86-64 only (requirements-dev.txt pins the
release for this Python); elsewhere the hypothesis fuzzer
(test_service_fuzz.py) is the one that runs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("atheris")

HARNESS = Path(__file__).resolve().parents[2] / "fuzz"
RUNS = 20_000


def test_the_dispatcher_survives_the_fuzzer(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            str(HARNESS / "fuzz_receive.py"),
            f"-dict={HARNESS / 'protocol.dict'}",
            f"-runs={RUNS}",
            "-seed=1",  # the same inputs on every run: a failure here reproduces
        ],
        cwd=tmp_path,  # where a crash file would land
        capture_output=True,
        text=True,
        timeout=300,
    )
    report = result.stderr[-3000:]
    assert result.returncode == 0, report
    assert f"Done {RUNS} runs" in result.stderr, report
    assert not list(tmp_path.glob("crash-*")), report
