"""The admin HTTP API for scripts, end to end with a real HTTP client."""

from __future__ import annotations

import asyncio
import json
from urllib.parse import quote

import aiohttp
import pytest

from gameserver.app import GameApp, ws_url
from gameserver.client import GameClient, GameError

SCRIPT_V1 = "function onInit(room) room.state.version = 1 end\n"
SCRIPT_V2 = "function onInit(room) room.state.version = 2 end\n"


@pytest.fixture
async def admin(server):
    base = (
        f"http://127.0.0.1:{server.app.admin_port}/v1/game/{server.app.apps.list_apps()[0].app_id}"
    )
    headers = {"Authorization": f"Bearer {server.secret_key}"}
    async with aiohttp.ClientSession(base_url=base + "/", headers=headers) as http:
        yield http


async def room_version(server, client_id: str, script: str) -> int:
    client = server.client(client_id)
    await client.connect()
    try:
        state = await client.create_room(script_name=script)
        return state["state"]["version"]
    finally:
        await client.disconnect()


async def test_upload_activate_and_rooms_use_the_active_version(server, admin):
    response = await admin.post(
        "scripts", json={"name": "duel", "source": SCRIPT_V1, "activate": True}
    )
    assert response.status == 201
    assert await response.json() == {"name": "duel", "version": 1, "activeVersion": 1}
    assert await room_version(server, "p1", "duel") == 1

    # A new upload without activate changes nothing for new rooms...
    response = await admin.post("scripts", json={"name": "duel", "source": SCRIPT_V2})
    assert (await response.json())["version"] == 2
    assert await room_version(server, "p2", "duel") == 1
    # ...until it is activated.
    running = server.client("keeper")
    await running.connect()
    await running.create_room(room_id="old", script_name="duel")
    response = await admin.post("scripts/duel/activate", json={"version": 2})
    assert response.status == 200
    assert await room_version(server, "p3", "duel") == 2
    assert (await running.request_state())["state"]["version"] == 1  # running rooms keep theirs
    await running.disconnect()

    detail = await (await admin.get("scripts/duel")).json()
    assert detail["activeVersion"] == 2 and detail["source"] == SCRIPT_V2
    assert [v["version"] for v in detail["versions"]] == [1, 2]
    listing = await (await admin.get("scripts")).json()
    assert [(s["name"], s["activeVersion"], s["latestVersion"]) for s in listing["scripts"]] == [
        ("duel", 2, 2)
    ]


async def test_a_syntax_error_is_a_400_naming_the_line(admin):
    response = await admin.post(
        "scripts", json={"name": "bad", "source": "local x = 1\nfunction (\n"}
    )
    assert response.status == 400
    body = await response.json()
    assert body["error"] == "script_error" and body["line"] == 2 and "bad.lua:2" in body["message"]
    assert (await (await admin.get("scripts")).json())["scripts"] == []


@pytest.mark.parametrize(
    ("path", "payload"),
    [
        ("scripts", {"name": "../x", "source": "x = 1"}),
        ("scripts", {"name": "ok", "source": 5}),
        ("scripts", {"name": "ok", "source": "x = 1", "activate": "yes"}),
        ("scripts", [1, 2]),
    ],
)
async def test_bad_uploads_are_400(admin, path, payload):
    response = await admin.post(path, json=payload)
    assert response.status == 400 and (await response.json())["error"] == "bad_request"


async def test_unknown_script_or_version_is_404(admin):
    assert (await admin.get("scripts/nope")).status == 404
    await admin.post("scripts", json={"name": "s", "source": SCRIPT_V1})
    response = await admin.post("scripts/s/activate", json={"version": 9})
    assert response.status == 404 and (await response.json())["error"] == "version_not_found"


async def test_delete_removes_every_version(server, admin):
    await admin.post("scripts", json={"name": "gone", "source": SCRIPT_V1, "activate": True})
    assert (await admin.delete("scripts/gone")).status == 204
    assert (await admin.get("scripts/gone")).status == 404
    with pytest.raises(GameError) as err:
        await room_version(server, "p", "gone")
    assert err.value.code == "script_not_found"


async def test_only_the_apps_secret_key_opens_the_api(server):
    app_id = server.app.apps.list_apps()[0].app_id
    other = server.app.apps.create_app("other")
    url = f"http://127.0.0.1:{server.app.admin_port}/v1/game/{app_id}/scripts"
    async with aiohttp.ClientSession() as http:
        for headers in (
            {},
            {"Authorization": f"Bearer {server.public_key}"},
            {"Authorization": f"Bearer {other.secret_key}"},
            {"Authorization": "Bearer cb_sk_ключ"},
            {"Authorization": server.secret_key},
        ):
            response = await http.get(url, headers=headers)
            assert response.status == 401, headers
            assert (await response.json())["error"] == "unauthorized"


async def test_uploaded_scripts_survive_a_restart(tmp_path, start_server):
    server = await start_server()
    app_id = server.app.apps.list_apps()[0].app_id
    url = f"http://127.0.0.1:{server.app.admin_port}/v1/game/{app_id}/scripts"
    async with aiohttp.ClientSession(
        headers={"Authorization": f"Bearer {server.secret_key}"}
    ) as http:
        await http.post(url, json={"name": "kept", "source": SCRIPT_V2, "activate": True})
    data_dir = server.app.config.data_dir
    await server.app.stop()

    again = GameApp(server.app.config)
    port = await again.start()
    try:
        assert again.config.data_dir == data_dir
        client = GameClient(ws_url("127.0.0.1", port), server.public_key, "p")
        await client.connect()
        assert (await client.create_room(script_name="kept"))["state"]["version"] == 2
        await client.disconnect()
    finally:
        await again.stop()


COUNTER_V1 = """
function onInit(room) room.state.version = 1; room.state.n = 0 end
function onAction(room, id, action) room.state.n = room.state.n + 1 end
"""
COUNTER_V2 = """
function onAction(room, id, action) room.state.n = room.state.n + 10; room.state.version = 2 end
"""


async def test_live_reload_swaps_hooks_and_keeps_the_state(server, admin):
    await admin.post("scripts", json={"name": "counter", "source": COUNTER_V1, "activate": True})
    player = server.client("p")
    await player.connect()
    await player.create_room(room_id="live", script_name="counter")
    for _ in range(3):
        await player.send_action("hit")
    await player.wait_until(lambda s: s["n"] == 3)

    await admin.post("scripts", json={"name": "counter", "source": COUNTER_V2, "activate": True})
    response = await admin.post("scripts/counter/reload")
    assert response.status == 200
    assert await response.json() == {"name": "counter", "reloaded": ["live"], "failed": []}

    await player.send_action("hit")
    state = await player.wait_until(lambda s: s["n"] == 13)
    assert state["version"] == 2  # the new hooks ran on the kept state
    assert player.resyncs == 0
    await player.disconnect()


async def test_a_reload_that_fails_to_load_leaves_the_room_on_the_old_version(start_server):
    server = await start_server()
    script = server.add_script("filed", COUNTER_V1)
    player = server.client("p")
    await player.connect()
    await player.create_room(room_id="r", script_name="filed")
    script.write_text("function onAction(room\n")  # the file on disk is now broken
    app_id = server.app.apps.list_apps()[0].app_id
    url = f"http://127.0.0.1:{server.app.admin_port}/v1/game/{app_id}/scripts/filed/reload"
    async with aiohttp.ClientSession(
        headers={"Authorization": f"Bearer {server.secret_key}"}
    ) as http:
        body = await (await http.post(url)).json()
    assert body["reloaded"] == [] and [f["roomId"] for f in body["failed"]] == ["r"]
    assert body["failed"][0]["line"] == 2  # Lua reports the unexpected end of the file
    await player.send_action("hit")
    await player.wait_until(lambda s: s["n"] == 1)  # still the old hooks
    await player.disconnect()


@pytest.mark.parametrize(
    ("method", "path", "payload", "status", "code"),
    [
        ("post", "scripts", "[" * 100_000, 400, "bad_request"),
        ("post", "scripts", '{"name": "s", "source": "x = \\"\\ud800\\""}', 400, "bad_request"),
        (
            "post",
            "scripts/s/activate",
            '{"version": 18446744073709551616}',
            404,
            "version_not_found",
        ),
        ("post", "scripts/s/activate", '{"version": "1"}', 400, "bad_request"),
        ("put", "scripts/s", "{}", 405, "method_not_allowed"),
    ],
)
async def test_hostile_admin_bodies_get_json_errors_not_500(
    admin, method, path, payload, status, code
):
    await admin.post("scripts", json={"name": "s", "source": SCRIPT_V1})
    response = await getattr(admin, method)(path, data=payload)
    assert response.status == status
    assert (await response.json())["error"] == code


async def test_a_one_mib_source_fits_even_when_escaping_inflates_it(admin):
    source = "-- " + "\x01" * (1024 * 1024 - 16) + "\nx = 1\n"  # just under 1 MiB
    response = await admin.post("scripts", json={"name": "big", "source": source})
    assert response.status == 201


LOOPER = "function onAction(room) local x = 0 for i = 1, 20000 do x = x + i end room.state.done = true end\n"


async def test_per_app_script_limits(server, admin):
    defaults = await (await admin.get("settings")).json()
    assert defaults == {
        "luaInstructionLimit": 1_000_000,
        "luaTickInstructionLimit": 2_000_000,
        "luaMemoryLimit": 32 * 1024 * 1024,
        "messagesPerSecond": 60,
        "messageBurst": 120,
        "roomsPerMinute": 30,
        "roomCreationBurst": 10,
        "requireSignedClientId": False,
    }
    response = await admin.patch("settings", json={"luaInstructionLimit": 5000})
    assert (await response.json())["luaInstructionLimit"] == 5000
    await admin.post("scripts", json={"name": "looper", "source": LOOPER, "activate": True})

    player = server.client("p")
    await player.connect()
    await player.create_room(room_id="tight", script_name="looper")
    error = player.expect("error", code="script_error")
    await player.send_action("go")
    assert "instruction budget exceeded" in (await error)["message"]
    await player.leave_room()

    # Back to the server's default: new rooms may loop as much again.
    await admin.patch("settings", json={"luaInstructionLimit": None})
    await player.create_room(room_id="roomy", script_name="looper")
    await player.send_action("go")
    await player.wait_until(lambda s: s.get("done") is True)
    await player.disconnect()

    for bad in ({"luaInstructionLimit": 10}, {"luaMemoryLimit": "big"}, {"colour": 1}):
        response = await admin.patch("settings", json=bad)
        assert response.status == 400 and (await response.json())["error"] == "bad_request"


async def test_per_app_rate_limits(server, admin):
    """An app's own message rate applies to connections opened afterwards: 20
    pings in one frame pass the default burst of 120 but not a burst of 5."""
    ping = {"type": "ping", "clientTime": 1}
    before = server.client("before")
    await before.connect()
    response = await admin.patch(
        "settings", json={"messagesPerSecond": 2, "messageBurst": 5, "roomCreationBurst": 1}
    )
    assert response.status == 200
    settings = await response.json()
    rates = ("messagesPerSecond", "messageBurst", "roomsPerMinute", "roomCreationBurst")
    assert [settings[name] for name in rates] == [2, 5, 30, 1]

    after = server.client("after")
    await after.connect()
    limited = after.expect("error", code="rate_limited")
    await after.send([ping] * 20)
    message = (await limited)["message"]
    assert "15 message(s) dropped" in message and "at most 2 per second (bursts of 5)" in message
    assert len(after.received("pong")) == 5

    unlimited = before.expect("pong", clientTime=2)
    await before.send([ping] * 20 + [{**ping, "clientTime": 2}])
    await unlimited
    assert before.received("error") == []  # opened under the default: bursts of 120

    # roomCreationBurst 1: a second room at once is refused (the default allows 10).
    creator = server.client("creator")
    await creator.connect()
    await creator.create_room(room_id="one")
    await creator.leave_room()
    with pytest.raises(GameError) as err:
        await creator.create_room(room_id="two")
    assert err.value.code == "rate_limited"
    for client in (before, after, creator):
        await client.disconnect()


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ({"messagesPerSecond": 0}, "messagesPerSecond must be an integer in 1..10000 or null"),
        ({"messagesPerSecond": 2.5}, "messagesPerSecond must be an integer"),
        ({"messageBurst": 10**6}, "messageBurst must be an integer in 1..100000"),
        ({"roomsPerMinute": -1}, "roomsPerMinute must be an integer in 1..10000"),
        ({"roomCreationBurst": "5"}, "roomCreationBurst must be an integer in 1..1000"),
        ({"messagesPerSecond": True}, "messagesPerSecond must be an integer"),
    ],
)
async def test_rate_settings_out_of_range_are_400(admin, body, says):
    response = await admin.patch("settings", json=body)
    answer = await response.json()
    assert response.status == 400 and answer["error"] == "bad_request"
    assert says in answer["message"]
    assert (await (await admin.get("settings")).json())["messagesPerSecond"] == 60  # unchanged


async def test_settings_read_back_can_be_written_back(admin):
    settings = await (await admin.get("settings")).json()
    assert type(settings["messagesPerSecond"]) is int  # the server's default, 60
    response = await admin.patch("settings", json=settings)
    assert response.status == 200 and await response.json() == settings
    response = await admin.patch("settings", json={"messageBurst": 150.0})  # how some write 150
    assert response.status == 200 and (await response.json())["messageBurst"] == 150


async def test_health_and_readiness(start_server):
    server = await start_server()
    base = f"http://127.0.0.1:{server.app.admin_port}"
    async with aiohttp.ClientSession() as http:
        assert (await (await http.get(base + "/healthz")).json()) == {"status": "alive"}
        ready = await http.get(base + "/readyz")
        assert ready.status == 200 and (await ready.json())["status"] == "ready"
        server.app.service.shutdown()  # what SIGTERM starts with
        ready = await http.get(base + "/readyz")
        assert ready.status == 503 and (await ready.json())["status"] == "shutting_down"


ROUTES = [
    ("GET", "scripts"),
    ("POST", "scripts"),
    ("GET", "scripts/s"),
    ("POST", "scripts/s/activate"),
    ("POST", "scripts/s/reload"),
    ("DELETE", "scripts/s"),
    ("GET", "settings"),
    ("PATCH", "settings"),
]


@pytest.mark.parametrize(("method", "path"), ROUTES)
async def test_every_admin_route_refuses_the_public_key(server, method, path):
    app_id = server.app.apps.list_apps()[0].app_id
    url = f"http://127.0.0.1:{server.app.admin_port}/v1/game/{app_id}/{path}"
    headers = {"Authorization": f"Bearer {server.public_key}"}
    async with aiohttp.ClientSession() as http:
        response = await http.request(method, url, headers=headers, json={})
        assert response.status == 401
        assert (await response.json())["error"] == "unauthorized"
    # Nothing changed behind the refusal.
    assert server.app.apps.settings(app_id) == {}


async def raw_admin_request(server, target: bytes, auth: bytes) -> tuple[int, bytes]:
    """One HTTP request written byte by byte: headers no HTTP client would send."""
    reader, writer = await asyncio.open_connection("127.0.0.1", server.app.admin_port)
    writer.write(
        b"GET " + target + b" HTTP/1.1\r\nHost: x\r\nAuthorization: " + auth
        + b"\r\nConnection: close\r\n\r\n"
    )  # fmt: skip
    data = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    status = int(data.split(b" ", 2)[1])
    return status, data.split(b"\r\n\r\n", 1)[1]


@pytest.mark.parametrize(
    ("auth", "expected"),
    [
        ("Bearer cb_sk_ключ".encode(), 401),  # UTF-8
        ("Bearer cb_sk_clé".encode("latin-1"), 401),  # not UTF-8 at all
        (b"Bearer cb_sk_\xff\xfe\x80", 401),
        (b"Bearer " + "ключ".encode(), 401),
        (b"Bearer cb_sk_" + b"A" * 6000, 401),
        (b"Bearer cb_sk_\x7f\x01", 400),  # control characters: the HTTP parser refuses the header
    ],
)
async def test_non_ascii_or_odd_keys_get_401_not_500(server, auth, expected):
    app_id = server.app.apps.list_apps()[0].app_id
    status, body = await raw_admin_request(server, f"/v1/game/{app_id}/scripts".encode(), auth)
    assert status == expected, body
    assert b"Traceback" not in body
    if status == 401:
        assert json.loads(body)["error"] == "unauthorized"


async def test_a_non_ascii_app_id_gets_401(server):
    status, body = await raw_admin_request(
        server,
        b"/v1/game/" + quote("прил").encode() + b"/scripts",
        f"Bearer {server.secret_key}".encode(),
    )
    assert status == 401 and json.loads(body)["error"] == "unauthorized"
    # Raw UTF-8 in the path is refused by the HTTP parser, still not a 500.
    status, body = await raw_admin_request(
        server, "/v1/game/прил/scripts".encode(), f"Bearer {server.secret_key}".encode()
    )
    assert status == 400 and b"Traceback" not in body
