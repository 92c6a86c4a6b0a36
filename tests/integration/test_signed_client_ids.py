"""Signed client ids (`requireSignedClientId`), over real sockets: a handshake
without a token the app's backend minted for that id is refused with 401."""

from __future__ import annotations

import time
from urllib.parse import urlencode

import aiohttp
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from gameserver.identity import mint_token


async def set_flag(server, value) -> aiohttp.ClientResponse:
    app_id = server.app.apps.list_apps()[0].app_id
    url = f"http://127.0.0.1:{server.app.admin_port}/v1/game/{app_id}/settings"
    headers = {"Authorization": f"Bearer {server.secret_key}"}
    async with aiohttp.ClientSession(headers=headers) as http:
        response = await http.patch(url, json={"requireSignedClientId": value})
        await response.read()
        return response


async def refusal(server, client_id: str, token: str | None) -> tuple[int, str]:
    query = {"public_key": server.public_key, "client_id": client_id}
    if token is not None:
        query["token"] = token
    with pytest.raises(InvalidStatus) as err:
        async with connect(f"{server.url}?{urlencode(query)}"):
            pass
    response = err.value.response
    return response.status_code, response.body.decode()


async def test_off_by_default_and_on_through_the_admin_api(server):
    # Off: any client id connects, as before.
    player = server.client("anyone")
    await player.connect()
    await player.disconnect()

    response = await set_flag(server, True)
    assert response.status == 200
    assert (await response.json())["requireSignedClientId"] is True

    status, body = await refusal(server, "anyone", None)
    assert status == 401 and "requires a signed client id" in body
    assert "Traceback" not in body

    token = mint_token(server.secret_key, "alice", int(time.time()) + 60)
    alice = server.client("alice", token=token)
    await alice.connect()
    state = await alice.create_room(room_id="signed")
    assert [p["clientId"] for p in state["players"]] == ["alice"]
    await alice.disconnect()

    # Off again (null is the default, false): no token needed.
    assert (await (await set_flag(server, None)).json())["requireSignedClientId"] is False
    player = server.client("anyone")
    await player.connect()
    await player.disconnect()


async def test_wrong_expired_or_malformed_tokens_get_401_with_a_reason(start_server):
    server = await start_server()
    await set_flag(server, True)
    now = int(time.time())
    other = server.app.apps.create_app("other-game")
    cases = [
        (mint_token(server.secret_key, "bob", now + 60), "not signed for this client id"),
        (mint_token(other.secret_key, "alice", now + 60), "not signed for this client id"),
        (mint_token(server.secret_key, "alice", now - 1), "expired"),
        (mint_token(server.secret_key, "alice", now + 30 * 24 * 3600), "too far ahead"),
        ("12345", "malformed"),
        ("", "requires a signed client id"),
    ]
    for token, reason in cases:
        status, body = await refusal(server, "alice", token)
        assert status == 401 and reason in body, (token, body)
    # The refused handshakes left nothing behind: the right token still works.
    alice = server.client("alice", token=mint_token(server.secret_key, "alice", now + 60))
    await alice.connect()
    await alice.disconnect()


async def test_a_bad_flag_value_is_400(server):
    response = await set_flag(server, 1)
    assert response.status == 400
    assert "true, false or null" in (await response.json())["message"]


async def test_an_app_from_before_signing_keys_learns_its_key_when_turning_it_on(start_server):
    server = await start_server()
    app_id = server.app.apps.list_apps()[0].app_id
    # As a data directory written before signing keys existed.
    server.app.apps._db.execute("DELETE FROM signing_keys WHERE app_id = ?", (app_id,))
    assert server.app.apps.signing_key(app_id) is None
    await set_flag(server, True)
    token = mint_token(server.secret_key, "carol", int(time.time()) + 60)
    carol = server.client("carol", token=token)
    await carol.connect()
    await carol.disconnect()
