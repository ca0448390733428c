"""The uplink's in-flight window on fixed sequences: no broker, no threads, time given by the test."""

from __future__ import annotations

import random

import pytest

from kiosk.backoff import FullJitterBackoff
from kiosk.inflight import InFlightWindow, UnackedResend
from kiosk.spool import EventKey, SpooledEvent

STUCK_S = 30.0
LONG_AGO = float("-inf")  # connected long before anything was published


class Unsent:
    """The spool's unsent events as the window sees them: oldest first, marks and requeues applied."""

    def __init__(self, count: int) -> None:
        self.events = {
            key(n): SpooledEvent("kiosk-1", "venue-1", 1, n, b"token-%d" % n) for n in range(1, count + 1)
        }
        self.sent: set[EventKey] = set()
        self.reads = 0

    def __call__(self, limit: int) -> list[SpooledEvent]:
        self.reads += 1
        return [e for k, e in sorted(self.events.items()) if k not in self.sent][:limit]

    def mark(self, keys: list[EventKey]) -> None:
        self.sent.update(keys)


def key(seq: int) -> EventKey:
    return ("kiosk-1", 1, seq)


def window(size: int = 3, *, seed: int = 7) -> InFlightWindow:
    backoff = FullJitterBackoff(1.0, 8.0, rng=random.Random(seed))
    return InFlightWindow(size, stuck_after_s=STUCK_S, refusal_backoff=backoff)


def publish_all(w: InFlightWindow, unsent: Unsent, now: float, first_mid: int = 1) -> list[int]:
    """Publish what the window offers; the seqs, in order (message ids count up from `first_mid`)."""
    seqs = []
    while (event := w.next(now, unsent)) is not None:
        w.published(first_mid + len(seqs), event.key, now)
        seqs.append(event.seq)
    return seqs


def test_the_window_holds_at_most_its_size_in_seq_order() -> None:
    w, unsent = window(3), Unsent(5)
    assert publish_all(w, unsent, 0.0) == [1, 2, 3]
    assert w.next(0.0, unsent) is None and w.in_flight == 3  # full
    settled = w.settle([(1, None)], 0.1)
    assert (settled.acked, settled.refused) == (1, ())
    assert publish_all(w, unsent, 0.1, first_mid=4) == [4]
    assert unsent.reads == 1, "one read-ahead serves several windows"


def test_a_puback_becomes_a_batched_mark() -> None:
    w, unsent = window(4), Unsent(4)
    publish_all(w, unsent, 0.0)
    w.settle([(1, None), (2, None)], 0.0)
    assert w.unmarked == 2
    keys = w.marks_due(0.0)
    assert keys == [key(1), key(2)]
    unsent.mark(keys)
    w.marked(keys, 0.0)
    w.settle([(3, None)], 0.01)
    assert w.marks_due(0.01) == [], "another spool write so soon waits for more PUBACKs"
    assert w.marks_due(0.01, force=True) == [key(3)]
    assert w.marks_due(1.0) == [key(3)], "and is done once the interval has passed"


def test_an_accepted_event_is_not_offered_again_before_it_is_marked() -> None:
    w, unsent = window(2), Unsent(3)
    publish_all(w, unsent, 0.0)
    w.settle([(1, None)], 0.0)  # accepted, the spool write still to come
    w.reread()  # the spool still calls event 1 unsent
    assert publish_all(w, unsent, 0.0, first_mid=3) == [3]


def test_a_refusal_pauses_and_then_sends_the_event_again_in_order() -> None:
    w, unsent = window(3), Unsent(5)
    publish_all(w, unsent, 0.0)
    settled = w.settle([(1, "Not authorized")], 0.0)
    (refusal,) = settled.refused
    assert (refusal.key, refusal.reason, settled.acked) == (key(1), "Not authorized", 0)
    assert 0 <= refusal.pause_s <= 1.0  # the first full-jitter ceiling
    assert w.next(refusal.pause_s - 0.001, unsent) is None  # paused
    assert publish_all(w, unsent, refusal.pause_s, first_mid=4) == [1]  # 2 and 3 are still in flight


def test_refusals_back_off_until_one_is_accepted() -> None:
    w, unsent = window(1, seed=3), Unsent(2)
    expected = FullJitterBackoff(1.0, 8.0, rng=random.Random(3))
    now = 0.0
    for mid in range(1, 5):
        publish_all(w, unsent, now, first_mid=mid)
        (refusal,) = w.settle([(mid, "Quota exceeded")], now).refused
        assert refusal.pause_s == expected.next_delay()
        now += refusal.pause_s
    publish_all(w, unsent, now, first_mid=10)
    w.settle([(10, None)], now)
    expected.reset()
    publish_all(w, unsent, now, first_mid=11)
    (refusal,) = w.settle([(11, "Quota exceeded")], now).refused
    assert refusal.pause_s == expected.next_delay(), "an accepted event resets the backoff"


def test_a_stuck_event_is_forgotten_and_published_again() -> None:
    w, unsent = window(3), Unsent(2)
    publish_all(w, unsent, 0.0)
    assert w.forget_stuck(STUCK_S - 1, connected_at=LONG_AGO) == 0
    w.settle([(2, None)], 1.0)
    assert w.forget_stuck(STUCK_S + 1, connected_at=LONG_AGO) == 1
    assert publish_all(w, unsent, STUCK_S + 1, first_mid=3) == [1]
    w.settle([(1, None)], STUCK_S + 2)  # the lost message's PUBACK after all: ignored
    assert w.settle([(3, None)], STUCK_S + 2).acked == 1


def test_after_a_reconnect_paho_gets_time_to_resend_before_anything_is_stuck() -> None:
    w, unsent = window(3), Unsent(1)
    publish_all(w, unsent, 0.0)
    reconnected = STUCK_S  # paho re-sends the unacknowledged message on this connection
    assert w.forget_stuck(STUCK_S + 5, connected_at=reconnected) == 0
    assert w.forget_stuck(reconnected + STUCK_S + 1, connected_at=reconnected) == 1


def test_a_resend_request_is_read_again_in_order() -> None:
    w, unsent = window(2), Unsent(6)
    publish_all(w, unsent, 0.0)
    w.settle([(1, None), (2, None)], 0.0)
    keys = w.marks_due(0.0, force=True)
    unsent.mark(keys)
    w.marked(keys, 0.0)
    unsent.sent.discard(key(1))  # central asked for seq 1 again; the spool requeued it
    assert publish_all(w, unsent, 0.0, first_mid=3) == [3, 4], "the read-ahead does not know yet"
    w.settle([(3, None), (4, None)], 0.0)
    w.reread()
    assert publish_all(w, unsent, 0.0, first_mid=5) == [1, 5]


@pytest.mark.parametrize("size", [1, 2, 7])
def test_every_event_goes_out_once_when_all_is_accepted(size: int) -> None:
    w, unsent = window(size), Unsent(20)
    sent, mid, now = [], 1, 0.0
    while len(unsent.sent) < 20:
        for seq in publish_all(w, unsent, now, first_mid=mid):
            sent.append(seq)
            w.settle([(mid, None)], now)
            mid += 1
        now += 1.0
        keys = w.marks_due(now)
        unsent.mark(keys)
        w.marked(keys, now)
    assert sent == list(range(1, 21))


def rounds(timer: UnackedResend, times: list[float], found: int = 3) -> list[tuple[float, int]]:
    """(time, cutoff in ms) of each round that is due at one of `times`; each round sends `found` again."""
    due = []
    for now in times:
        if (cutoff := timer.due(now)) is not None:
            timer.resent(found, now)
            due.append((now, cutoff))
    return due


def test_unacked_events_are_sent_again_on_a_timer_without_any_ack() -> None:
    timer = UnackedResend(120.0, max_interval_s=600.0)
    ticks = [1000.0 + t for t in range(0, 2000, 5)]  # the drain thread's ticks, no ack ever
    due = rounds(timer, ticks)
    assert [now - 1000.0 for now, _ in due] == [120, 360, 840, 1440]  # waits of 240, 480, then 600
    assert all(cutoff == int((now - 120.0) * 1000) for now, cutoff in due), "what is older than 120 s"


def test_an_ack_starts_the_timer_over() -> None:
    timer = UnackedResend(10.0, max_interval_s=80.0)
    assert rounds(timer, [0.0, 10.0, 30.0, 70.0]) == [(10.0, 0), (30.0, 20_000), (70.0, 60_000)]
    assert timer.interval_s == 80.0
    timer.acked(75.0)  # central is back: its ack already re-queued what it leaves uncovered
    assert timer.interval_s == 10.0
    assert rounds(timer, [80.0, 84.9, 85.0, 100.0]) == [(85.0, 75_000)]


def test_the_first_round_waits_a_full_interval_after_start() -> None:
    timer = UnackedResend(2.0, max_interval_s=1.0)
    assert timer.max_interval_s == 2.0, "never checked more often than the age it looks for"
    assert rounds(timer, [50.0, 51.9, 52.0, 53.0, 54.0]) == [(52.0, 50_000), (54.0, 52_000)]


def test_a_round_that_finds_nothing_starts_the_wait_over() -> None:
    timer = UnackedResend(10.0, max_interval_s=80.0)
    found = iter([4, 2, 0, 0, 5, 1, 0])  # what each round sends again, in order; no ack ever
    due = []
    for now in [float(t) for t in range(0, 160)]:
        if timer.due(now) is not None:
            timer.resent(next(found), now)
            due.append((now, timer.interval_s))
    # 10: 4 found, wait 20; 30: 2 found, wait 40; 70: none, back to 10; 80: none, still 10;
    # 90: 5 found, 20; 110: 1 found, 40; 150: none, 10.
    assert due == [(10, 20), (30, 40), (70, 10), (80, 10), (90, 20), (110, 40), (150, 10)]


def test_a_quiet_kiosk_checks_every_interval_and_never_thins_out() -> None:
    timer = UnackedResend(120.0, max_interval_s=1800.0)
    due = rounds(timer, [t * 30.0 for t in range(0, 200)], found=0)  # 100 minutes, nothing outstanding
    assert [now for now, _ in due] == [120.0 * n for n in range(1, 50)]
    assert timer.interval_s == 120.0


def test_a_round_left_unreported_is_not_repeated_on_every_tick() -> None:
    timer = UnackedResend(10.0, max_interval_s=80.0)
    assert [now for now in [0.0, 10.0, 11.0, 19.0, 20.0] if timer.due(now) is not None] == [10.0, 20.0]
