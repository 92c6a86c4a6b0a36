"""The command line, run as a user runs it: a real process on a real port."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import sys
import time

import aiohttp
import msgspec
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from gameserver.client import GameClient
from gameserver.identity import mint_token
from gameserver.storage import SqliteAppStore
from gameserver.storage.base import key_digest

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
        "--tick-phases",
        "--data-dir",
        "--scripts-dir",
        "--max-message-bytes",
        "--admin-port",
        "--lua-instruction-limit",
        "--lua-memory-mb",
        "--reconnect-grace",
        "--drain-timeout",
        "--max-connections-per-ip",
        "--require-strong-keys",
        "--no-require-strong-keys",
        "--dev",
        "--log-format",
        "--transport",
        "--compression",
    ):
        assert flag in out
    assert "default: 64" in out and "default: 0.0.0.0" in out and "default: 65536" in out
    assert "default: 1000000" in out and "default: 32)" in out
    assert "default: 20.0" in out and "default: picows" in out
    assert "{text,json}" in out and "default: text" in out


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


async def test_tick_phases_out_of_range_are_refused_with_the_range():
    code, _, err = await run("--tick-phases", "0")
    assert code != 0 and "--tick-phases must be 1..16" in err


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
    proc, lines = await start_cli(
        "--data-dir", str(tmp_path / "data"), "--scripts-dir", str(scripts),
        "--drain-timeout", "1", "--transport", transport,
    )  # fmt: skip
    try:
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


async def start_cli(*args: str) -> tuple[asyncio.subprocess.Process, list[str]]:
    """A server process on a free port; returns it with its stdout up to `connect: `."""
    proc = await asyncio.create_subprocess_exec(
        *CLI, "--port", "0", "--host", "127.0.0.1", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert proc.stdout is not None
    lines: list[str] = []
    while not any(line.startswith("connect: ") for line in lines):
        line = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode()
        if not line:
            _, err = await proc.communicate()
            raise AssertionError(f"the server exited: {err.decode()}")
        lines.append(line.rstrip("\n"))
    return proc, lines


async def stop_cli(proc: asyncio.subprocess.Process) -> tuple[str, str]:
    proc.send_signal(signal.SIGTERM)
    out, err = await asyncio.wait_for(proc.communicate(), 15)
    assert proc.returncode == 0
    return out.decode(), err.decode()


def weaken_default_app(data_dir, public_key: str) -> None:
    """A data directory whose default app has `public_key`: as if typed in by hand."""
    store = SqliteAppStore(data_dir)
    app = store.create_app("default").app
    store._db.execute(
        "UPDATE apps SET public_key = ?, public_key_digest = ? WHERE app_id = ?",
        (public_key, key_digest(public_key), app.app_id),
    )
    store.close()


async def test_weak_keys_stop_the_server_unless_dev(tmp_path):
    weaken_default_app(tmp_path, "cb_pk_test")
    code, out, err = await run("--port", "0", "--host", "127.0.0.1", "--data-dir", str(tmp_path))
    assert code == 2
    assert "refusing to start with weak app keys" in err and "'default'" in err
    assert "example key" in err and "--dev" in err
    assert "Traceback" not in err and "listening" not in out
    code, _, err = await run(
        "--port", "0", "--host", "127.0.0.1", "--data-dir", str(tmp_path), "--require-strong-keys"
    )
    assert code == 2 and "weak app keys" in err

    for flags in (["--dev"], ["--no-require-strong-keys"]):
        proc, lines = await start_cli("--data-dir", str(tmp_path), *flags)
        assert "default app public key: cb_pk_test" in lines
        await stop_cli(proc)


async def test_compression_on_picows_is_refused_with_a_reason(tmp_path):
    code, out, err = await run(
        "--port", "0", "--data-dir", str(tmp_path), "--compression", "deflate"
    )  # fmt: skip
    assert code == 1 and "--compression deflate needs --transport websockets" in err
    assert "Traceback" not in err and "listening" not in out


async def test_a_short_public_key_is_weak_too(tmp_path):
    weaken_default_app(tmp_path, "cb_pk_" + "Ab1-_xYz9" * 3)  # 27 characters
    code, _, err = await run("--port", "0", "--data-dir", str(tmp_path))
    assert code == 2 and "fewer than 32 random characters" in err


async def test_the_quick_start_keys_are_strong(tmp_path):
    # What `./dev serve` does on an empty data directory: no --dev needed.
    proc, lines = await start_cli("--data-dir", str(tmp_path))
    assert any("created the default app" in line for line in lines)
    await stop_cli(proc)


async def test_app_token_mints_what_the_server_accepts(tmp_path):
    proc, lines = await start_cli("--data-dir", str(tmp_path))
    try:
        secret = lines[lines.index(next(x for x in lines if "shown only now" in x)) + 1].strip()
        admin = re.search(r"admin API: (http://\S+)/scripts", "\n".join(lines)).group(1)
        url, public_key = re.search(
            r"connect: (ws://\S+)\?public_key=(cb_pk_\S+)&", "\n".join(lines)
        ).groups()
        async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {secret}"}) as http:
            response = await http.patch(admin + "/settings", json={"requireSignedClientId": True})
            assert response.status == 200
        code, out, _ = await run("app", "token", "default", "dana", "--data-dir", str(tmp_path))
        assert code == 0
        token = out.strip()
        assert re.fullmatch(r"[0-9]+\.[A-Za-z0-9_-]{43}", token)
        assert token == mint_token(secret, "dana", int(token.split(".")[0]))
        player = GameClient(url, public_key, "dana", token=token)
        await player.connect()
        await player.disconnect()
        with pytest.raises(InvalidStatus):
            await GameClient(url, public_key, "eve", token=token).connect()
    finally:
        await stop_cli(proc)
    code, _, err = await run("app", "token", "nope", "x", "--data-dir", str(tmp_path))
    assert code == 1 and "no app named" in err


FORGED = "2026-01-01 00:00:00,000 ERROR gameserver.service: forged by a client"


async def test_the_secret_key_never_reaches_the_logs(tmp_path, transport):
    proc, lines = await start_cli(
        "--data-dir", str(tmp_path), "--log-level", "DEBUG", "--transport", transport
    )
    stopped = False
    try:
        shown = lines.index(next(x for x in lines if "shown only now" in x)) + 1
        secret = lines[shown].strip()
        app_id = re.search(r"/v1/game/(app_\w+)/scripts", "\n".join(lines)).group(1)
        admin = re.search(r"admin API: (http://\S+)/scripts", "\n".join(lines)).group(1)
        url, public_key = re.search(
            r"connect: (ws://\S+)\?public_key=(cb_pk_\S+)&", "\n".join(lines)
        ).groups()
        async with aiohttp.ClientSession() as http:
            good = {"Authorization": f"Bearer {secret}"}
            upload = {"name": "duel", "source": "x = 1", "activate": True}
            assert (await http.post(admin + "/scripts", json=upload, headers=good)).status == 201
            assert (await http.get(admin + "/scripts/duel", headers=good)).status == 200
            response = await http.patch(admin + "/settings", json={"nope": 1}, headers=good)
            assert response.status == 400
            bad = {"Authorization": f"Bearer {secret}x"}  # contains the real secret
            assert (await http.get(admin + "/scripts", headers=bad)).status == 401
            wrong_app = admin.replace(app_id, "app_0000000000000000")
            assert (await http.get(wrong_app + "/scripts", headers=good)).status == 401
        # A developer pasting the secret where the public key goes; a resumed session.
        with pytest.raises(InvalidStatus):
            await GameClient(url, secret, "oops").connect()
        player = GameClient(url, public_key, "p", encoding="json")
        await player.connect()
        await player.create_room(script_name="duel")
        json_token = player.resume_token  # websockets logs JSON frames' text at DEBUG
        await player.disconnect()
        # A client putting the secret and a forged log line wherever it may:
        # its id, its close reason, and a resume token spelled %-encoded.
        as_secret = f"{url}?public_key={public_key}&client_id={secret}"
        async with connect(as_secret) as first:
            token = msgspec.msgpack.decode(await first.recv())["resumeToken"]
            async with connect(f"{as_secret}&resume%5Ftoken={token}") as second:
                await second.recv()  # connected: it took the first one's place
                await second.close(4000, f"key {secret}\n{FORGED}")
        # Where only a library's traceback would quote it: a malformed
        # handshake header, a header with a control character on the admin port.
        port = int(re.search(r":(\d+)/", url).group(1))
        admin_port = int(re.search(r":(\d+)/", admin).group(1))
        for where, request in (
            (
                port,
                f"GET /v1/game/ws HTTP/1.1\r\nUpgrade: websocket\r\nSec-WebSocket-Key: {secret}\r\n",
            ),
            (admin_port, f"GET /healthz HTTP/1.1\r\nAuthorization: Bearer {secret}\x01\r\n"),
        ):
            reader, writer = await asyncio.open_connection("127.0.0.1", where)
            writer.write(request.encode() + b"\r\n")
            await asyncio.wait_for(reader.read(), 5)
            writer.close()
        out, err = await stop_cli(proc)
        stopped = True
    finally:
        if not stopped:
            proc.kill()
            await proc.wait()
    assert "connection open" in err
    if transport == "websockets":  # it logs each handshake's request line at DEBUG
        assert "DEBUG" in err and "GET /v1/game/ws" in err
    assert secret not in err
    assert secret[len("cb_sk_") :] not in err
    assert token not in err and json_token[-8:] not in err
    assert "reason=key cb_sk_<redacted>\\n" + FORGED in err  # escaped, on its own line
    assert not [line for line in err.splitlines() if line.startswith(FORGED[:10])]
    stdout_lines = [*lines, *out.splitlines()]
    assert [i for i, line in enumerate(stdout_lines) if secret in line] == [shown]


async def test_log_format_json_writes_one_object_per_line_with_lifecycle_fields(tmp_path):
    proc = await asyncio.create_subprocess_exec(
        *CLI, "--port", "0", "--host", "127.0.0.1", "--data-dir", str(tmp_path),
        "--log-format", "json",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        assert proc.stdout is not None and proc.stderr is not None
        lines = []
        while not any(line.startswith("connect: ") for line in lines):
            lines.append((await asyncio.wait_for(proc.stdout.readline(), 30)).decode().strip())
        url = re.search(r"connect: (ws://\S+)\?public_key=(cb_pk_\S+)&client_id=", "\n".join(lines))
        assert url is not None
        fake_secret = "cb_sk_" + "s3cr3t" * 6
        async with connect(
            f"{url.group(1)}?public_key={url.group(2)}&client_id={fake_secret}"
        ) as ws:
            await ws.recv()
            await ws.close(4000, f"key {fake_secret}")
        client = GameClient(url.group(1), url.group(2), "json-player")
        await client.connect()
        await client.create_room(room_id="logged-room", script_name="arena")
        await client.send_action("move", {"x": 1, "y": 2})  # per message: no line
        await client.ping()
        proc.send_signal(signal.SIGTERM)
        assert await client.wait_closed() == 1001
        _, err = await asyncio.wait_for(proc.communicate(), 15)
        assert proc.returncode == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    records = [json.loads(line) for line in err.decode().splitlines()]  # every line is JSON
    assert records and all({"time", "level", "logger", "message"} <= set(r) for r in records)
    assert all(r["time"].endswith("Z") for r in records)
    events = {r["event"]: r for r in records if "event" in r}
    opened, created = events["connection_open"], events["room_created"]
    assert opened["client"] == "json-player" and opened["app"].startswith("app_")
    assert created["room"] == "logged-room" and created["client"] == "json-player"
    assert created["app"] == opened["app"] and created["logger"] == "gameserver.service"
    disposed = events["room_disposed"]
    assert disposed["room"] == "logged-room" and disposed["reason"] == "server_shutdown"
    closed = events["connection_closed"]
    assert closed["client"] == "json-player" and closed["code"] == 1001
    assert closed["reason"] == "server shutdown"
    # Lifecycles only: nothing per message.
    assert not any("action" in r["message"] or "ping" in r["message"] for r in records)
    assert not any(r["level"] in ("ERROR", "CRITICAL") for r in records)
    assert fake_secret[6:] not in err.decode()  # nor in any field
    assert any(r.get("client") == "cb_sk_<redacted>" for r in records)


async def test_a_clients_malformed_bytes_never_make_an_error_line(tmp_path):
    # picows logs a frame that breaks the protocol at ERROR, aiohttp an
    # over-long request line with a traceback: both are the client's fault.
    proc, lines = await start_cli("--data-dir", str(tmp_path))
    stopped = False
    try:
        text = "\n".join(lines)
        url, public_key = re.search(r"connect: (ws://\S+)\?public_key=(cb_pk_\S+)&", text).groups()
        admin = re.search(r"admin API: http://([\d.]+):(\d+)/", text)
        async with connect(f"{url}?public_key={public_key}&client_id=bad") as ws:
            await ws.recv()  # connected
            ws.transport.write(b"\x83\x80" + bytes(4))  # opcode 3 is reserved
            await asyncio.wait_for(ws.wait_closed(), 5)
            assert ws.close_code == 1002
        reader, writer = await asyncio.open_connection(admin.group(1), int(admin.group(2)))
        writer.write(b"GET /v1/game/" + b"a" * 10_000 + b"/scripts HTTP/1.1\r\nHost: x\r\n\r\n")
        assert b" 400 " in await reader.readline()
        writer.close()
        out, err = await stop_cli(proc)
        stopped = True
    finally:
        if not stopped:
            proc.kill()
            await proc.wait()
    assert "connection closed" in err and "code=1002" in err  # our own line says it
    assert " ERROR " not in err and "Traceback" not in err, err
