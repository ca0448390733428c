"""Inspection in the loop: an inspector card at a venue kiosk, and a street inspector's handheld."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from kiosk import cardmaker, keys, scenes
from kiosk.app import assemble
from kiosk.cards.inspector import make_inspector_payload
from kiosk.config import Settings
from kiosk.decoder import Symbol
from kiosk.errors import SpoolError
from kiosk.screen.states import HintState, InspectionState, NoQrState, StreetState
from kiosk.screen.texts import INSPECTION_UNAVAILABLE
from kiosk.statuslist import Entry, Status, build_payload, sign_payload
from kiosk.venue_check import DeviceReadings
from tests.support import pins
from tests.test_daemon import make_settings, spooled_events

RELAY = 23
NO_QR_BUTTON = 5
NOW = datetime.now(UTC)


_release_pins = pins.release_pins  # an autouse fixture, found by this name


@pytest.fixture
def authority(tmp_path: Path) -> Ed25519PrivateKey:
    key = Ed25519PrivateKey.generate()
    (tmp_path / "authority.pem").write_text(keys.public_pem(key.public_key()))
    return key


def settings_with_authority(tmp_path: Path, **sections: dict[str, Any]) -> Settings:
    sections.setdefault("policy", {})["authority_keys"] = str(tmp_path / "authority.pem")
    sections.setdefault("feedback", {}).update({"relay_pin": RELAY, "no_qr_pin": NO_QR_BUTTON})
    return make_settings(tmp_path / "state", **sections)


def inspector_card(key: Ed25519PrivateKey, *, days: float = 30) -> str:
    return make_inspector_payload(
        key, inspector="insp-hcm-007", name="Lê Văn Kiểm", valid_from=NOW - timedelta(days=1),
        valid_until=NOW + timedelta(days=days),
    )  # fmt: skip


def shown(payloads: list[str]) -> list[np.ndarray]:
    return scenes.demo_frames(payloads)  # type: ignore[arg-type]


class Watched:
    """Runs the loop over frames and notes every screen state and the relay's levels."""

    def __init__(self, settings: Settings, frames: list[np.ndarray]) -> None:
        self.states: list[object] = []
        with assemble(settings, frames=frames) as kiosk:
            feedback = kiosk.parts.feedback
            original = feedback.pump

            def pump() -> bool:
                self.states.append(feedback.state)
                return original()

            feedback.pump = pump  # type: ignore[method-assign]
            self.relay = feedback.signals.pin_factory.pin(RELAY)  # type: ignore[union-attr]
            self.button = feedback.signals.pin_factory.pin(NO_QR_BUTTON)  # type: ignore[union-attr]
            self.before_run()
            kiosk.run()
            feedback.signals.settle()
            self.relay_levels = [change.state for change in self.relay.states]
        self.kiosk = kiosk

    def before_run(self) -> None:
        """Override to act on the pins before the loop runs."""


def test_inspector_card_opens_the_inspection_screen_without_the_relay(
    tmp_path: Path, authority: Ed25519PrivateKey
) -> None:
    settings = settings_with_authority(tmp_path)
    watched = Watched(settings, shown([inspector_card(authority)]))
    events = spooled_events(settings)
    assert [(e.kind, e.verdict, e.reason, e.format) for e in events] == [
        ("inspection", "pass", "inspector_card_ok", "inspector")
    ]
    inspections = [s for s in watched.states if isinstance(s, InspectionState)]
    assert inspections, "the inspection screen was shown"
    assert inspections[0].figures.device.device_id == settings.device.id
    assert not any(watched.relay_levels), "an inspection never opens the door"


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda key: inspector_card(Ed25519PrivateKey.generate()), "inspector_card_unknown_key"),
        (lambda key: inspector_card(key)[:-6] + "AAAAAA", "inspector_card_invalid"),
        (lambda key: make_inspector_payload(key, inspector="insp-1", valid_from=NOW - timedelta(days=9),
                                            valid_until=NOW - timedelta(days=1)), "inspector_card_expired"),
    ],
)  # fmt: skip
def test_a_bad_inspector_card_is_a_plain_fail(
    tmp_path: Path, authority: Ed25519PrivateKey, make: Any, reason: str
) -> None:
    settings = settings_with_authority(tmp_path)
    watched = Watched(settings, shown([make(authority)]))
    events = spooled_events(settings)
    assert [(e.kind, e.verdict, e.reason) for e in events] == [("scan", "fail", reason)]
    assert not any(isinstance(s, InspectionState) for s in watched.states)


def quarantine_list(tmp_path: Path, authority: Ed25519PrivateKey, identity: str) -> None:
    entry = Entry(identity, Status("quarantine", NOW + timedelta(days=7)))
    payload = build_payload([entry], version=3, issued=NOW)
    (tmp_path / "state").mkdir(exist_ok=True)
    (tmp_path / "state" / "statuslist.json").write_bytes(sign_payload(payload, authority))


def test_street_scan_of_a_quarantined_person(tmp_path: Path, authority: Ed25519PrivateKey) -> None:
    # Listed by her citizen number; her PC-Covid QR also carries a QID: any identity on the card counts.
    quarantined = cardmaker.national_payload(
        id_number="079201001234", qid="162979388586179999", name="TRAN THI B"
    )
    quarantine_list(tmp_path, authority, "079201001234")
    settings = settings_with_authority(tmp_path, device={"mode": "inspector"})
    watched = Watched(settings, shown([cardmaker.cccd_payload(), quarantined]))
    events = spooled_events(settings)
    assert [(e.kind, e.verdict, e.format, e.direction) for e in events] == [
        ("inspection", "pass", "cccd", None),
        ("inspection", "fail", "national", None),
    ]
    assert events[1].device == settings.device.id
    streets = [s for s in watched.states if isinstance(s, StreetState)]
    assert any("cách ly" in " ".join(s.finding.lines("vi")) for s in streets)
    assert not any(watched.relay_levels), "a handheld has no door"


def test_no_qr_button_records_a_person_without_a_code(tmp_path: Path, authority: Ed25519PrivateKey) -> None:
    settings = settings_with_authority(tmp_path, device={"mode": "inspector"})

    class Pressed(Watched):
        def before_run(self) -> None:
            self.button.drive_low()
            self.button.drive_high()

    empty = [scenes.empty_frame(scenes.Scene(seed=i)) for i in range(20)]
    watched = Pressed(settings, empty)
    events = spooled_events(settings)
    assert [(e.kind, e.reason, e.identity) for e in events] == [("no_qr", "no_qr", None)]
    assert any(isinstance(s, NoQrState) for s in watched.states)


@pytest.mark.parametrize("mode", ["kiosk", "inspector"])
def test_a_check_whose_record_failed_is_done_again(
    tmp_path: Path, authority: Ed25519PrivateKey, mode: str
) -> None:
    """An inspector card at a kiosk, a card on the street: a failed record is no repeat of anything."""
    payload = inspector_card(authority) if mode == "kiosk" else cardmaker.cccd_payload()
    settings = settings_with_authority(tmp_path, device={"mode": mode})
    symbol = Symbol(raw=payload.encode(), text=payload, corners=(), format="QRCode")
    with assemble(settings, frames=shown([payload])) as kiosk:
        spool, record = kiosk.parts.spool, kiosk.parts.spool.record

        def full(_draft: object) -> None:
            spool.record = record  # type: ignore[method-assign]
            raise SpoolError("cannot write the spool: database or disk is full")

        spool.record = full  # type: ignore[method-assign]
        for _ in range(3):  # refused (not recorded), then recorded, then a repeat of that
            kiosk.handle_symbol(symbol, 1.0)
        tables, now = (kiosk._checked, kiosk._not_recorded_told), kiosk.parts.now()
        # Both tables know the card by a keyed hash of its payload, never by its text.
        assert [len(table) for table in tables] == [1, 1]
        assert all(table.find(symbol.raw, now) is None for table in tables)
    assert [(e.kind, e.verdict) for e in spooled_events(settings)] == [("inspection", "pass")]
    assert (kiosk.counters.errors, kiosk.counters.decisions, kiosk.counters.repeats) == (1, 1, 1)


def test_inspection_figures_that_fail_after_the_record_say_the_visit_is_recorded(
    tmp_path: Path, authority: Ed25519PrivateKey, caplog: pytest.LogCaptureFixture
) -> None:
    payload = inspector_card(authority)
    settings = settings_with_authority(tmp_path)
    symbol = Symbol(raw=payload.encode(), text=payload, corners=(), format="QRCode")

    def broken_readings(_pixels: object) -> DeviceReadings:
        raise RuntimeError("camera sharpness unavailable")

    with assemble(settings, frames=shown([payload])) as kiosk:
        kiosk.parts = dataclasses.replace(kiosk.parts, readings=broken_readings)
        kiosk.handle_symbol(symbol, 1.0)
        state = kiosk.parts.feedback.state
    assert [(e.kind, e.verdict, e.reason) for e in spooled_events(settings)] == [
        ("inspection", "pass", "inspector_card_ok")
    ]
    assert (kiosk.counters.errors, kiosk.counters.decisions) == (1, 1)
    assert state == HintState(*(text.vi for text in INSPECTION_UNAVAILABLE)), state
    logged = " ".join(r.getMessage() for r in caplog.records if r.levelname == "ERROR")
    assert "visit is recorded" in logged and "camera sharpness unavailable" in logged
    assert "refused" not in logged and "could not be recorded" not in logged
