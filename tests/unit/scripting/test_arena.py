"""scripts/arena.lua, the example game developers copy."""

from __future__ import annotations

import pytest
from lua_mirror import apply_changes

from gameserver.config import BUILTIN_SCRIPTS_DIR


def player(client_id):
    return {"clientId": client_id, "joinedAt": 0, "metadata": {}}


@pytest.fixture
def arena(make_script):
    script = make_script((BUILTIN_SCRIPTS_DIR / "arena.lua").read_text(), name="arena.lua")
    script.init({})
    return script


def test_join_move_tick_leave(arena):
    arena.player_join(player("a"))
    arena.player_join(player("b.c"))
    assert arena.action("a", {"type": "move", "data": {"x": 10, "y": 20.5}}) is False
    mirror = apply_changes({}, arena.tick(1 / 64, 1)[0])
    assert mirror == {
        "tick": 1,
        "players": {"a": {"x": 10, "y": 20.5, "hp": 100}, "b.c": {"x": 0, "y": 0, "hp": 100}},
    }

    arena.action("b.c", {"type": "move", "data": {"x": 1}})
    changes, error = arena.tick(1 / 64, 2)
    assert error is None
    assert changes == [{"path": "tick", "operation": "set", "value": 2}]  # y missing: ignored

    arena.action("b.c", {"type": "move", "data": {"x": 5, "y": 6}})
    changes, _ = arena.tick(1 / 64, 3)
    assert sorted(c["path"] for c in changes) == ["players.b~1c.x", "players.b~1c.y", "tick"]

    arena.player_leave(player("a"), "left")
    mirror = apply_changes(apply_changes(mirror, changes), arena.tick(1 / 64, 4)[0])
    assert (
        mirror == arena.read_state() == {"tick": 4, "players": {"b.c": {"x": 5, "y": 6, "hp": 100}}}
    )


@pytest.mark.parametrize(
    ("data", "where"),
    [
        ({"x": -5, "y": 2000}, (0, 1000)),
        ({"x": 1e300, "y": -1e300}, (1000, 0)),
        ({"x": 3, "y": "4"}, (0, 0)),
        ({"x": float("nan"), "y": 1}, (0, 0)),
        ([1, 2], (0, 0)),
        ("move", (0, 0)),
        (None, (0, 0)),
    ],
)
def test_move_is_clamped_and_bad_input_ignored(arena, data, where):
    arena.player_join(player("a"))
    assert arena.action("a", {"type": "move", "data": data}) is False
    arena.tick(1 / 64, 1)
    p = arena.read_state()["players"]["a"]
    assert (p["x"], p["y"]) == where


def test_moves_of_unknown_players_are_ignored_and_other_actions_relayed(arena):
    assert arena.action("ghost", {"type": "move", "data": {"x": 1, "y": 1}}) is False
    assert arena.action("ghost", {"type": "chat", "data": "hi"}) is True
    arena.tick(1 / 64, 1)
    assert arena.read_state() == {"players": {}, "tick": 1}
