"""The kind/format table: the code's rows are the documented ones, and both sides refuse the rest."""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import ValidationError

from kiosk.errors import EventError
from kiosk.eventkinds import PAIRS, is_visit, pair_error
from kiosk.events import (
    EventDraft,
    ScanEvent,
    ScanEventV1,
    build_event,
    parse_event,
    sign_event,
    verify_event,
)
from tests.support.central import SEALER

SEALED = SEALER.event_identity("kiosk-1", "001093029317")

DOCS = Path(__file__).resolve().parents[1] / "docs" / "events.md"
KINDS = ("scan", "inspection", "no_qr")
FORMATS = ("national", "cccd", "dcc", "poster", "inspector", "unknown")
VERDICTS = ("pass", "fail")
KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
HMAC = "hmac:" + "ab" * 32


def documented_rows() -> list[tuple[str, set[str], set[str], str]]:
    """(kind, formats, verdicts, identity cell) of each row of the table in docs/events.md."""
    text = DOCS.read_text()
    table = text[text.index("| `kind` | `format` | `verdict`") :].split("\n\n")[0]
    rows = []
    for line in table.splitlines()[2:]:
        kind, formats, verdicts, identity = (cell.strip() for cell in line.strip().strip("|").split("|")[:4])
        rows.append(
            (
                kind.strip("`"),
                set(re.findall(r"`(\w+)`", formats)),
                set(re.findall(r"pass|fail", verdicts)),
                identity,
            )
        )
    return rows


def documented(kind: str, card_format: str, verdict: str, identity: str | None) -> bool:
    """Whether the documented table has such an event (read from the docs, not from the code)."""
    for doc_kind, formats, verdicts, cell in documented_rows():
        if doc_kind == kind and card_format in formats and verdict in verdicts:
            if cell == "`null`":
                return identity is None
            if "or `null`" in cell:
                return True
            return identity is not None
    return False


def test_the_code_has_the_documented_rows() -> None:
    rows = documented_rows()
    assert len(rows) == len(PAIRS) == 5
    for (kind, formats, verdicts, _), pair in zip(rows, PAIRS, strict=True):
        assert (kind, formats, verdicts) == (pair.kind, set(pair.formats), set(pair.verdicts))


COMBINATIONS = list(itertools.product(KINDS, FORMATS, VERDICTS, (HMAC, None)))


@pytest.mark.parametrize(("kind", "card_format", "verdict", "identity"), COMBINATIONS)
def test_an_event_exists_exactly_when_the_table_has_it(
    kind: str, card_format: str, verdict: str, identity: str | None
) -> None:
    exists = documented(kind, card_format, verdict, identity)
    assert (pair_error(kind, card_format, verdict, identity) is None) == exists
    fields = {
        "v": 1, "id": "0b7c6f8e-3d2a-4c59-9e1f-5a4b3c2d1e0f", "kind": kind, "device": "kiosk-1",
        "destination": "venue-1", "epoch": 1, "seq": 1, "ts": 1, "clock_synced": True, "direction": None,
        "verdict": verdict, "reason": "ok", "format": card_format, "identity": identity, "sw": "0.1",
        "decode_ms": 1.0,
    }  # fmt: skip
    # Schema v2 carries the card's identities sealed; v1 (still read) one hashed: one table for both.
    sealed = (SEALED,) if identity else ()
    v2 = {k: v for k, v in fields.items() if k != "identity"} | {"v": 2, "identities": sealed}
    for model, values in ((ScanEventV1, fields), (ScanEvent, v2)):
        if exists:
            event = model(**values)  # type: ignore[arg-type]
            assert parse_event(event.to_json()) == event
            continue
        with pytest.raises(ValidationError):
            model(**values)  # type: ignore[arg-type]
        # A verifier given the same fields, signed by the device, refuses them before they are stored.
        payload = model.model_construct(**values).to_json()  # type: ignore[arg-type]
        with pytest.raises(EventError):
            parse_event(payload)


def test_the_kiosk_cannot_sign_a_passed_scan_of_an_inspector_card() -> None:
    draft = EventDraft(verdict="pass", reason="ok", format="inspector", direction="in", ts=1)
    with pytest.raises(ValidationError, match="inspector card the kiosk refused"):
        build_event(draft, device="kiosk-1", destination="venue-1", epoch=1, seq=1, sealer=SEALER)


def test_a_refused_inspector_card_is_a_failed_scan_both_sides_accept() -> None:
    draft = EventDraft(verdict="fail", reason="expired", format="inspector", ts=1)
    event = build_event(
        draft, device="kiosk-1", destination="venue-1", epoch=1, seq=1, sealer=SEALER
    )
    assert verify_event(sign_event(event, KEY), lambda _kid: KEY.public_key()) == event


@pytest.mark.parametrize(
    ("kind", "card_format", "visit"),
    [("scan", "national", True), ("scan", "unknown", True), ("scan", "inspector", False),
     ("inspection", "national", False), ("inspection", "inspector", False), ("no_qr", "unknown", False)],
)  # fmt: skip
def test_only_scans_of_a_visitor_card_are_visits(kind: str, card_format: str, visit: bool) -> None:
    assert is_visit(kind, card_format) is visit
