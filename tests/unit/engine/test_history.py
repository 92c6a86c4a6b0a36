"""DeltaHistory against the obvious model: a list of (fromVersion, tick, bytes)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from gameserver.engine.history import DeltaHistory

steps = st.lists(
    st.one_of(
        st.tuples(st.just("append"), st.integers(0, 3), st.binary(max_size=12)),
        st.tuples(st.just("forget"), st.integers(0, 6), st.integers(1, 40)),
    ),
    max_size=300,
)


@given(steps, st.integers(-3, 3))
def test_since_matches_the_model(operations, probe_offset):
    history, model = DeltaHistory(), []
    version, tick = 10, 0
    for op, a, b in operations:
        if op == "append":
            tick += a
            history.append(version, tick, b, version % 7 - 1)
            model.append((version, tick, (b, version % 7 - 1)))
            version += 1
        else:
            oldest = tick - a
            model = [m for m in model if m[1] >= oldest]
            model = model[len(model) - min(len(model), b) :]
            history.forget_before(oldest, b)
        assert len(history) == len(model)
        for v in [m[0] for m in model] + [version + probe_offset, 10 + probe_offset]:
            expected = [m[2] for m in model if m[0] >= v] if any(m[0] == v for m in model) else None
            assert history.since(v) == expected
