"""The uplink's counters: named counts, rejections, the last connection error and the last ack."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pytest

from kiosk.counters import COUNTS, UplinkCounters


def test_a_fresh_snapshot_is_all_zero() -> None:
    stats = UplinkCounters().snapshot(connected=False)
    assert [getattr(stats, name) for name in COUNTS] == [0] * len(COUNTS)
    assert (stats.connected, stats.rejected, stats.last_error, stats.last_ack) == (False, {}, None, None)


def test_counts_add_up_and_an_unknown_name_is_refused() -> None:
    counters = UplinkCounters()
    counters.add("published", 5)
    counters.add("published")
    counters.add("broker_acked", 4)
    with pytest.raises(KeyError, match="publishd"):
        counters.add("publishd")
    stats = counters.snapshot(connected=True)
    assert (stats.published, stats.broker_acked, stats.connected) == (6, 4, True)


def test_rejections_are_counted_by_reason() -> None:
    counters = UplinkCounters()
    for reason in ("oversized", "ack_invalid", "oversized"):
        counters.reject(reason)
    assert counters.snapshot(connected=False).rejected == {"oversized": 2, "ack_invalid": 1}


def test_a_repeated_connection_error_is_recognised_until_a_connection_clears_it() -> None:
    counters = UplinkCounters()
    assert counters.connect_failed("refused") is False
    assert counters.connect_failed("refused") is True
    assert counters.connect_failed("timed out") is False
    assert counters.snapshot(connected=False).last_error == "timed out"
    counters.connected()
    assert counters.snapshot(connected=True).last_error is None
    assert counters.connect_failed("timed out") is False
    assert counters.snapshot(connected=False).connect_failures == 4


def test_an_applied_ack_counts_its_resends_and_its_time() -> None:
    counters = UplinkCounters()
    when = datetime(2026, 11, 29, 8, 0, tzinfo=UTC)
    counters.ack_applied(when, resent=3)
    counters.ack_applied(when, resent=0)
    stats = counters.snapshot(connected=False)
    assert (stats.acks_applied, stats.resent, stats.last_ack) == (2, 3, when)


def test_a_snapshot_is_not_changed_by_later_counting() -> None:
    counters = UplinkCounters()
    counters.reject("flood")
    stats = counters.snapshot(connected=False)
    counters.reject("flood")
    assert stats.rejected == {"flood": 1}


def test_two_threads_lose_no_count() -> None:
    counters = UplinkCounters()

    def count() -> None:
        for _ in range(10_000):
            counters.add("published")

    threads = [threading.Thread(target=count) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert counters.snapshot(connected=False).published == 20_000
