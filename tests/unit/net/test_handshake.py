"""The handshake decision both transports share, without a socket."""

from __future__ import annotations

from http import HTTPStatus

import pytest

from gameserver.net.handshake import WS_PATH, Accepted, Gate, Refusal
from gameserver.net.peers import PeerCount
from gameserver.storage import SqliteAppStore


@pytest.fixture
def gate_and_key(tmp_path):
    store = SqliteAppStore(tmp_path)
    key = store.create_app("game").app.public_key
    yield Gate(store, max_request_line=8192, peers=PeerCount(2, 2), max_token_lifetime=3600), key
    store.close()


def test_a_good_request_names_the_app_and_the_query(gate_and_key):
    gate, key = gate_and_key
    verdict = gate.check(f"{WS_PATH}?public_key={key}&client_id=%C3%A9", {}, "10.0.0.1")
    assert isinstance(verdict, Accepted)
    assert verdict.app.public_key == key and verdict.query["client_id"] == "é"


def test_the_key_may_come_as_a_header(gate_and_key):
    gate, key = gate_and_key
    assert isinstance(gate.check(f"{WS_PATH}?client_id=a", {"X-Public-Key": key}, None), Accepted)


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
    verdict = gate.check(target.format(key=key), {}, "10.0.0.1")
    assert isinstance(verdict, Refusal) and verdict.status == status
    assert verdict.body.endswith("\n")


def test_the_request_line_limit_counts_the_whole_line(gate_and_key):
    gate, key = gate_and_key
    base = f"{WS_PATH}?public_key={key}&pad="
    fits = base + "x" * (8192 - len("GET  HTTP/1.1\r\n") - len(base))
    assert isinstance(gate.check(fits, {}, None), Accepted)
    assert isinstance(gate.check(fits + "x", {}, None), Refusal)
