"""The handshake decision both transports share, without a socket."""

from __future__ import annotations

from http import HTTPStatus

import pytest

from gameserver.net.handshake import WS_PATH, Accepted, Gate, Refusal, collect_headers
from gameserver.net.peers import PeerCount
from gameserver.storage import SqliteAppStore

# What every WebSocket handshake carries.
UPGRADE = {"upgrade": ["websocket"], "connection": ["Upgrade"], "sec-websocket-version": ["13"]}


@pytest.fixture
def gate_and_key(tmp_path):
    store = SqliteAppStore(tmp_path)
    key = store.create_app("game").app.public_key
    yield Gate(store, max_request_line=8192, peers=PeerCount(2, 2), max_token_lifetime=3600), key
    store.close()


def test_a_good_request_names_the_app_and_the_query(gate_and_key):
    gate, key = gate_and_key
    verdict = gate.check(f"{WS_PATH}?public_key={key}&client_id=%C3%A9", UPGRADE, "10.0.0.1")
    assert isinstance(verdict, Accepted)
    assert verdict.app.public_key == key and verdict.query["client_id"] == "é"


def test_the_key_may_come_as_a_header(gate_and_key):
    gate, key = gate_and_key
    headers = collect_headers(
        [("Upgrade", "WebSocket"), ("Connection", "upgrade"), ("Sec-WebSocket-Version", "13")]
    )
    headers |= collect_headers([("X-Public-Key", key)])
    assert isinstance(gate.check(f"{WS_PATH}?client_id=a", headers, None), Accepted)


@pytest.mark.parametrize("name", ["X-Public-Key", "Sec-WebSocket-Key"])
def test_a_key_header_sent_twice_is_refused(gate_and_key, name):
    gate, key = gate_and_key
    headers = UPGRADE | collect_headers([("X-Public-Key", key), (name, key), (name.lower(), key)])
    verdict = gate.check(f"{WS_PATH}?client_id=a", headers, None)
    assert isinstance(verdict, Refusal) and verdict.status == HTTPStatus.BAD_REQUEST
    assert verdict.body == f"{name} given more than once\n"


UP = {"upgrade": ["websocket"], "connection": ["keep-alive, Upgrade"]}


@pytest.mark.parametrize(
    ("headers", "answer_header"),
    [
        ({}, ("Upgrade", "websocket")),  # a plain GET
        (UP | {"upgrade": ["h2c"], "sec-websocket-version": ["13"]}, ("Upgrade", "websocket")),
        (
            UP | {"connection": ["keep-alive"], "sec-websocket-version": ["13"]},
            ("Upgrade", "websocket"),
        ),
        (UP | {"sec-websocket-version": ["8"]}, ("Sec-WebSocket-Version", "13")),
        (UP | {"sec-websocket-version": ["13", "13"]}, ("Sec-WebSocket-Version", "13")),
        (UP, ("Sec-WebSocket-Version", "13")),
    ],
)
def test_what_is_not_an_rfc_6455_upgrade_gets_426_saying_what_to_send(
    gate_and_key, headers, answer_header
):
    gate, key = gate_and_key
    verdict = gate.check(f"{WS_PATH}?public_key={key}", headers, None)
    assert isinstance(verdict, Refusal) and verdict.status == HTTPStatus.UPGRADE_REQUIRED
    assert answer_header in verdict.headers


@pytest.mark.parametrize(
    ("target", "status"),
    [
        (WS_PATH + "?public_key={key}&pad=" + "x" * 8200, HTTPStatus.REQUEST_URI_TOO_LONG),
        ("/elsewhere?public_key={key}", HTTPStatus.NOT_FOUND),
        (WS_PATH + "?public_key={key}&client_id=%FF", HTTPStatus.BAD_REQUEST),
        (WS_PATH + "?client_id=a", HTTPStatus.UNAUTHORIZED),
        (WS_PATH + "?public_key=cb_pk_unknown", HTTPStatus.UNAUTHORIZED),
        (WS_PATH + "?public_key=cb_sk_secret", HTTPStatus.UNAUTHORIZED),
    ],
)
def test_refusals(gate_and_key, target, status):
    gate, key = gate_and_key
    verdict = gate.check(target.format(key=key), UPGRADE, "10.0.0.1")
    assert isinstance(verdict, Refusal) and verdict.status == status
    assert verdict.body.endswith("\n")


def test_the_request_line_limit_counts_the_whole_line(gate_and_key):
    gate, key = gate_and_key
    base = f"{WS_PATH}?public_key={key}&pad="
    fits = base + "x" * (8192 - len("GET  HTTP/1.1\r\n") - len(base))
    assert isinstance(gate.check(fits, UPGRADE, None), Accepted)
    assert isinstance(gate.check(fits + "x", UPGRADE, None), Refusal)
