"""The law clients rely on, end to end through the wire encodings:
applying every delta, in order, to the joined snapshot gives exactly the
room's state at that version, for both kernels and both encodings."""

from __future__ import annotations

import copy

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gameserver import _core, _core_py
from gameserver.protocol import CODECS

KERNELS = {"cython": _core, "python": _core_py}

# Non-empty: "" as a whole path is the root, so state keys are never empty.
keys = st.sampled_from(["a", "b", "x.y", "~", "~1", ".", "0", "players", "hp"])
scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=5)
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=4),
    max_leaves=12,
)
states = st.dictionaries(keys, values, max_size=5)


def edits_for(kernel, old, new):
    """A batch of raw changes a room logic might report: whole-subtree sets
    of every top-level key of `new` (changed or not), deletes of the rest."""
    batch = [{"path": kernel.escape_key(k), "operation": "set", "value": v} for k, v in new.items()]
    batch += [{"path": kernel.escape_key(k), "operation": "delete"} for k in old if k not in new]
    return batch


@pytest.mark.parametrize("kernel_name", KERNELS)
@pytest.mark.parametrize("encoding", ["msgpack", "json"])
@settings(max_examples=150, deadline=None)
@given(first=states, later=st.lists(states, min_size=1, max_size=6))
def test_deltas_applied_to_the_snapshot_give_the_state(kernel_name, encoding, first, later):
    kernel, codec = KERNELS[kernel_name], CODECS[encoding]
    room_state: dict = {}
    kernel.commit(room_state, edits_for(kernel, {}, first))
    client_state = codec.decode(codec.encode({"state": room_state}))["state"]  # the joined snapshot
    version = 0
    for new in later:
        previous = copy.deepcopy(room_state)
        effective = kernel.commit(room_state, edits_for(kernel, previous, new))
        assert room_state == new
        if not effective:
            assert previous == new  # no empty deltas, and nothing changed
            continue
        version += 1
        delta = codec.decode(
            codec.encode({"fromVersion": version - 1, "toVersion": version, "changes": effective})
        )
        kernel.apply(client_state, delta["changes"])
        assert client_state == room_state
        for change in effective:  # delete is only for map keys, and never a no-op
            assert change["operation"] in ("set", "delete")
