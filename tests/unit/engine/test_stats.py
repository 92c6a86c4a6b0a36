"""The plain counters /metrics reads: histogram buckets and the message-type set."""

from __future__ import annotations

from gameserver.engine.stats import MESSAGE_TYPES, Histogram, TickStats
from gameserver.protocol import messages as m


def test_histogram_buckets_are_upper_bound_inclusive_and_cumulative():
    histogram = Histogram((0.001, 0.01))
    for value in (0.0005, 0.001, 0.002, 0.01, 5.0):
        histogram.add(value)
    assert histogram.counts == [2, 2, 1]
    assert histogram.cumulative() == [2, 4, 5]  # the last is +Inf: every value
    assert abs(histogram.sum - 5.0135) < 1e-12


def test_tick_stats_record_feeds_rings_and_histograms():
    stats = TickStats(capacity=4)
    for i in range(10):
        stats.record(lateness=0.0001 * i, duration=0.002)
    assert stats.groups == 10
    assert stats.lateness_histogram.cumulative()[-1] == 10  # since start, not the ring's 4
    assert len(stats.lateness.sorted()) == 4
    assert stats.summary()["group_tick_p50_ms"] == 2.0


def test_every_client_message_type_has_its_own_label():
    tags = {cls.__struct_config__.tag for cls in m.ClientMessage.__args__}  # type: ignore[attr-defined]
    assert set(MESSAGE_TYPES) == tags | {"other"}
