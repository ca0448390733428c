"""Acks to devices: which seqs central holds durably, and which ranges it wants again.

Per epoch, the ack names the highest seq such that every seq at or below it is
stored; a device may delete events up to it. Missing seqs below a later stored one
are gaps; the ack asks for them ("resend") once they are old enough that they are
not merely still in flight, or in another ingest instance's uncommitted batch.
The ack itself is `kiosk.events.Ack`, signed with `kiosk.events.sign_ack`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Walk:
    """What stored seqs above a contiguous mark say: the new mark and the gaps above it."""

    contiguous: int
    gaps: tuple[tuple[int, int], ...] = ()  # (first, last) missing seqs, each older than the grace
    missing: int = 0  # every missing seq below the highest stored one, old or not


def walk(contiguous: int, stored: Sequence[tuple[int, int]], *, older_than_ms: int) -> Walk:
    """Advance `contiguous` over `stored` (seq, received_ms) in seq order and find the gaps.

    A gap counts for a resend only when the event just above it was received
    before `older_than_ms`: the missing ones have had time to arrive.
    """
    mark, gaps, missing = contiguous, [], 0
    expected = contiguous + 1
    for seq, received_ms in stored:
        if seq < expected:
            continue
        if seq > expected:
            missing += seq - expected
            if received_ms < older_than_ms:
                gaps.append((expected, seq - 1))
        if not missing:
            mark = seq
        expected = seq + 1
    return Walk(contiguous=mark, gaps=tuple(gaps), missing=missing)
