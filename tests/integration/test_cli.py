"""The command line, run as a user runs it: a real process on a real port."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import sys
import time

from gameserver.client import GameClient

CLI = [sys.executable, "-m", "gameserver"]


async def run(*args: str, timeout: float = 30) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        *CLI, *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout)
    return proc.returncode or 0, out.decode(), err.decode()


async def test_help_explains_every_flag_with_its_default():
    code, out, _ = await run("--help")
    assert code == 0
    for flag in (
        "--host",
        "--port",
        "--tick-rate",
        "--data-dir",
        "--scripts-dir",
        "--max-message-bytes",
        "--admin-port",
        "--lua-instruction-limit",
        "--lua-memory-mb",
        "--reconnect-grace",
        "--drain-timeout",
        "--transport",
    ):
        assert flag in out
    assert "default: 64" in out and "default: 0.0.0.0" in out and "default: 65536" in out
    assert "default: 1000000" in out and "default: 32)" in out
    assert "default: 20.0" in out and "default: picows" in out


async def test_app_create_prints_one_json_line(tmp_path):
    code, out, _ = await run("app", "create", "space-race", "--data-dir", str(tmp_path))
    assert code == 0
    (line,) = out.strip().splitlines()
    created = json.loads(line)
    assert set(created) == {"app_id", "public_key", "secret_key"}
    assert created["public_key"].startswith("cb_pk_") and created["secret_key"].startswith("cb_sk_")
    # The secret is kept only as a digest.
    db = (tmp_path / "gameserver.sqlite3").read_bytes()
    assert created["secret_key"].encode() not in db
    code, _, err = await run("app", "create", "space-race", "--data-dir", str(tmp_path))
    assert code == 1 and "already exists" in err
    code, out, _ = await run("app", "list", "--data-dir", str(tmp_path))
    assert json.loads(out)["public_key"] == created["public_key"]


async def test_serve_creates_default_app_prints_url_serves_and_stops_on_sigterm(tmp_path):
    proc = await asyncio.create_subprocess_exec(
        *CLI,
        "--port",
        "0",
        "--host",
        "127.0.0.1",
        "--tick-rate",
        "32",
        "--data-dir",
        str(tmp_path),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        lines = []
        while not any(line.startswith("connect: ") for line in lines):
            lines.append((await asyncio.wait_for(proc.stdout.readline(), 30)).decode().strip())
        text = "\n".join(lines)
        assert "created the default app" in text
        url = re.search(r"connect: (ws://\S+)\?public_key=(cb_pk_\S+)&client_id=", text)
        assert url is not None
        client = GameClient(url.group(1), url.group(2), "cli-player")
        await client.connect()
        state = await client.create_room(script_name="arena")
        assert state["tickRate"] == 32  # the --tick-rate default reached the room
        await client.wait_until(lambda s: s.get("tick", 0) >= 3)
        closed = client.expect("room_closed")
        proc.send_signal(signal.SIGTERM)
        assert (await closed)["reason"] == "server_shutdown"
        assert await client.wait_closed() == 1001
        assert await asyncio.wait_for(proc.wait(), 15) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    # Second start on the same data dir: same default app, no new secret printed.
    proc = await asyncio.create_subprocess_exec(
        *CLI, "--port", "0", "--host", "127.0.0.1", "--data-dir", str(tmp_path),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        lines = []
        while not any(line.startswith("connect: ") for line in lines):
            lines.append((await asyncio.wait_for(proc.stdout.readline(), 30)).decode().strip())
        assert "created the default app" not in "\n".join(lines)
        assert url.group(2) in "\n".join(lines)
        proc.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(proc.wait(), 15) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_shutdown_ends_within_the_drain_timeout_even_with_a_stuck_reader(tmp_path, transport):
    """SIGTERM with a member that reads nothing: the others get `room_closed`
    and 1001, the stuck socket is cut, and the process exits by --drain-timeout."""
    scripts = tmp_path / "scripts"
    scripts.mkdir()
    (scripts / "flood.lua").write_text(
        'function onTick(room, dt, tick) room.state.blob = string.rep("x", 8000 + tick % 2) end'
    )
    proc = await asyncio.create_subprocess_exec(
        *CLI, "--port", "0", "--host", "127.0.0.1", "--data-dir", str(tmp_path / "data"),
        "--scripts-dir", str(scripts), "--drain-timeout", "1", "--transport", transport,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        lines: list[str] = []
        while not any(line.startswith("connect: ") for line in lines):
            lines.append((await asyncio.wait_for(proc.stdout.readline(), 30)).decode().strip())
        url = re.search(r"connect: (ws://\S+)\?public_key=(cb_pk_\S+)&", "\n".join(lines))
        assert url is not None
        host = GameClient(url.group(1), url.group(2), "host", auto_reconnect=False)
        await host.connect()
        await host.create_room(room_id="r", script_name="flood")
        stuck = GameClient(url.group(1), url.group(2), "stuck", auto_reconnect=False)
        await stuck.connect("r")
        stuck._ws.transport.pause_reading()
        await asyncio.sleep(1.0)  # its buffers fill
        closed = host.expect("room_closed")
        signalled = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert (await asyncio.wait_for(closed, 5))["reason"] == "server_shutdown"
        assert await host.wait_closed() == 1001
        assert await asyncio.wait_for(proc.wait(), 15) == 0
        assert time.monotonic() - signalled < 2.0  # 1 s drain, plus exiting
        stuck._ws.transport.abort()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
