"""The kind/format pairs a scan event may have, with their verdicts and identities (one table).

docs/events.md shows this table; `kiosk.events.ScanEvent` applies it when an
event is built (the kiosk) and when one is parsed (central and any verifier), so
both sides refuse the same combinations. An inspector card the kiosk refused is
a failed `scan` with no identity; one it accepted is a passed `inspection`.

A person without a QR is a `no_qr` event on the street (an inspector's handheld)
and a `scan` with reason `no_qr` at a venue (staff record them at a lane, and they
count with the venue's visitors): a fail of format `unknown`, no identity, and the
way they went (`in`, or `out` at an exit lane).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

CARD_FORMATS = frozenset({"national", "cccd", "dcc", "poster", "unknown"})  # what visitors show
INSPECTOR = "inspector"
IdentityRule = Literal["any", "none", "required"]


@dataclass(frozen=True)
class Pair:
    """One row of the table: a kind, the formats it goes with, the verdicts and the identity allowed."""

    kind: str
    formats: frozenset[str]
    verdicts: frozenset[str]
    identity: IdentityRule
    meaning: str


EITHER = frozenset({"pass", "fail"})
PAIRS: tuple[Pair, ...] = (
    Pair("scan", CARD_FORMATS, EITHER, "any", "a visitor at the entrance"),
    Pair("scan", frozenset({INSPECTOR}), frozenset({"fail"}), "none", "an inspector card the kiosk refused"),
    Pair("inspection", frozenset({INSPECTOR}), frozenset({"pass"}), "required", "an inspector's own card"),
    Pair("inspection", CARD_FORMATS, EITHER, "any", "a street check by a mobile inspector"),
    Pair("no_qr", frozenset({"unknown"}), frozenset({"fail"}), "none", "a person recorded without a QR"),
)


def pair_error(kind: str, card_format: str, verdict: str, identity: str | None) -> str | None:
    """Why the table has no such event, or None when it has."""
    row = next((p for p in PAIRS if p.kind == kind and card_format in p.formats), None)
    if row is None:
        return f"no {kind} event has format {card_format}"
    what = f"a {kind} event of format {card_format} ({row.meaning})"
    if verdict not in row.verdicts:
        return f"{what} is always {'/'.join(sorted(row.verdicts))}"
    if row.identity == "none" and identity is not None:
        return f"{what} has no identity"
    if row.identity == "required" and identity is None:
        return f"{what} carries an identity"
    return None


NO_QR = "no_qr"  # the reason code of a person recorded without a QR


def no_qr_error(kind: str, reason: str, card_format: str, verdict: str, direction: str | None,
                identity: str | None) -> str | None:  # fmt: skip
    """Why a venue's no-QR record (a `scan` with reason no_qr) is not one, or None (also for other events)."""
    if kind != "scan" or reason != NO_QR:
        return None
    if card_format != "unknown" or verdict != "fail" or identity is not None or direction is None:
        return (
            "a scan with reason no_qr (a person recorded without a QR at a venue) is a fail of format"
            " unknown with a direction and no identity"
        )
    return None


def is_visit(kind: str, card_format: str) -> bool:
    """Whether an event is a venue's visitor (what reports and contact tracing count)."""
    return kind == "scan" and card_format in CARD_FORMATS
