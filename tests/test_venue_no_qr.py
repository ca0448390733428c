"""A person without a QR recorded by staff at a venue's lane: the event, who is inside, central's figures."""

from __future__ import annotations

import csv
import io
import json
import logging
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import ValidationError

from kiosk import cardmaker, keys, scenes
from kiosk.app import assemble
from kiosk.cards import parse_card
from kiosk.central.ingest import Processor
from kiosk.central.registry import Registry, parse_registration
from kiosk.central.render import as_csv, as_table
from kiosk.central.reports import ReportSettings, build_report
from kiosk.central.store import open_store
from kiosk.config import DestinationConfig, PolicyConfig, Settings
from kiosk.errors import SpoolError
from kiosk.events import ScanEvent, ScanEventV1
from kiosk.policy import Policy
from kiosk.presence import ANONYMOUS, Sighting
from kiosk.reasons import Reason
from kiosk.screen.states import NoQrState
from kiosk.venue_check import inspection_figures
from tests import test_daemon as daemon_tests
from tests.support import central as central_support
from tests.test_central_reports import at
from tests.test_daemon import make_settings, spooled_events
from tests.test_venue_check import READINGS

NO_QR_BUTTON = 5
NOW = datetime(2026, 11, 20, 3, 0, tzinfo=UTC)
EMPTY = [scenes.empty_frame(scenes.Scene(seed=i)) for i in range(10)]


_release_pins = daemon_tests._release_pins  # gpiozero's MockFactory closed after each test


def lane(state: Path, direction: str, **destination: Any) -> Settings:
    """A lane of shop-v with a no-QR button on a MockFactory pin."""
    return make_settings(
        state, device={"id": f"lane-{direction}"},
        destination={"id": "shop-v", "direction": direction, "share_presence": True, **destination},
        feedback={"no_qr_pin": NO_QR_BUTTON},
    )  # fmt: skip


def run_pressing(settings: Settings, presses: int) -> tuple[Any, list[object]]:
    """Run the loop over empty frames after `presses` presses of the button; the kiosk and its screens."""
    shown: list[object] = []
    with assemble(settings, frames=EMPTY) as kiosk:
        feedback = kiosk.parts.feedback
        pump = feedback.pump

        def noting() -> bool:
            shown.append(feedback.state)
            return pump()

        feedback.pump = noting  # type: ignore[method-assign]
        button = feedback.signals.pin_factory.pin(NO_QR_BUTTON)  # type: ignore[union-attr]
        for _ in range(presses):
            button.drive_low()  # pressed (pulled up, to ground)
            button.drive_high()
        kiosk.run()
    return kiosk, shown


def test_the_button_at_an_entrance_records_an_anonymous_entry_counted_inside(tmp_path: Path) -> None:
    settings = lane(tmp_path, "in")
    kiosk, shown = run_pressing(settings, 2)
    events = spooled_events(settings)
    assert [(e.kind, e.verdict, e.reason, e.format, e.direction, e.identities) for e in events] == [
        ("scan", "fail", "no_qr", "unknown", "in", ())
    ] * 2
    assert kiosk.parts.policy.occupancy == 2
    assert kiosk.counters.by_reason["no_qr"] == 2
    assert any(isinstance(s, NoQrState) for s in shown)
    # Each is a person of their own, rebuilt after a restart from the spool's anonymous keys.
    with sqlite3.connect(settings.paths.spool_file) as db:
        tags = [row[0] for row in db.execute("SELECT presence FROM events ORDER BY seq")]
    assert len(set(tags)) == 2 and all(t.startswith(ANONYMOUS) for t in tags)
    with assemble(settings, frames=[]) as again:
        assert again.parts.policy.occupancy == 2
        # The kiosk's own figures (state topic, inspection screen) count them as entries and refusals.
        assert again.parts.spool.counts_today() == {"in": 2, "out": 0, "pass": 0, "fail": 2}
        week = inspection_figures(again.parts.spool, READINGS, now=datetime.now(UTC)).today
        assert (week.entries, week.failed) == (2, 2)


def test_a_no_qr_exit_takes_out_the_first_anonymous_person_inside(tmp_path: Path) -> None:
    entry = lane(tmp_path / "in", "in")
    run_pressing(entry, 2)
    first, second = (e.ts for e in spooled_events(entry))
    with sqlite3.connect(entry.paths.spool_file) as db:
        keys_in = [row[0] for row in db.execute("SELECT presence FROM events ORDER BY seq")]
    exit_lane = lane(tmp_path / "out", "out")
    with assemble(exit_lane, frames=[]) as kiosk:
        policy = kiosk.parts.policy
        entries = [Sighting(datetime.fromtimestamp(ts / 1000, UTC), "in", (k,))
                   for ts, k in zip((first, second), keys_in, strict=True)]  # fmt: skip
        policy.merge(entries, now=datetime.now(UTC))
        assert policy.occupancy == 2
        decision = policy.no_qr(now=datetime.now(UTC))
    assert (decision.direction, decision.effects.move, decision.effects.presence_keys) == (
        "out", "out", (keys_in[0],)
    )  # fmt: skip


def policy_at(direction: str, **destination: Any) -> Policy:
    place = DestinationConfig(id="shop-v", direction=direction, share_presence=True, **destination)
    return Policy(PolicyConfig(), place)


def test_anonymous_people_count_against_the_capacity_and_leave_first_in_first_out() -> None:
    entrance, exit_lane = policy_at("in", capacity=2), policy_at("out", capacity=2)
    moves = []
    for minute in (0, 1):
        decision = entrance.no_qr(now=NOW + timedelta(minutes=minute))
        entrance.commit(decision)
        moves.append(Sighting(decision.at, "in", decision.effects.presence_keys))
    assert entrance.occupancy == 2
    card = parse_card(cardmaker.national_payload().encode(), trust=None, now=NOW)
    assert entrance.evaluate(card, now=NOW + timedelta(minutes=1)).reason == Reason.CAPACITY_FULL
    exit_lane.merge(moves, now=NOW + timedelta(minutes=2))
    leaving = exit_lane.no_qr(now=NOW + timedelta(minutes=3))
    assert leaving.effects.presence_keys == moves[0].keys
    exit_lane.commit(leaving)
    assert exit_lane.occupancy == 1
    # Nobody anonymous left inside: the exit is recorded, and changes no count.
    exit_lane.commit(exit_lane.no_qr(now=NOW + timedelta(minutes=4)))
    nobody = exit_lane.no_qr(now=NOW + timedelta(minutes=5))
    assert (nobody.direction, nobody.effects.move, nobody.effects.presence_keys) == ("out", None, ())
    assert exit_lane.occupancy == 0


def test_an_auto_lane_records_an_entry() -> None:
    decision = policy_at("auto").no_qr(now=NOW)
    assert (decision.verdict, decision.reason, decision.direction) == ("fail", "no_qr", "in")


def _venue_no_qr(**changes: Any) -> dict[str, Any]:
    return {"v": 2, "id": "0b8f7d1e-3c55-4a4e-9d0a-6c1f2e3d4b5a", "kind": "scan", "device": "lane-in",
            "destination": "shop-v", "epoch": 1, "seq": 1, "ts": 1, "clock_synced": True,
            "direction": "in", "verdict": "fail", "reason": "no_qr", "format": "unknown",
            "identities": [], "sw": "0.1.0", "decode_ms": 0.0, **changes}  # fmt: skip


@pytest.mark.parametrize("direction", ["in", "out"])
def test_the_event_rule_of_a_venue_no_qr_record(direction: str) -> None:
    assert ScanEvent.model_validate_json(json.dumps(_venue_no_qr(direction=direction))).direction == direction


@pytest.mark.parametrize(
    "changes",
    [{"direction": None}, {"verdict": "pass"}, {"format": "national"},
     {"identities": ["plain:001093029317"]}],
)  # fmt: skip
def test_a_venue_no_qr_record_is_a_directed_fail_without_identity(changes: dict[str, Any]) -> None:
    with pytest.raises(ValidationError, match="reason no_qr"):
        ScanEvent.model_validate_json(json.dumps(_venue_no_qr(**changes)))
    v1 = {**_venue_no_qr(**changes), "v": 1, "identity": (changes.get("identities") or [None])[0]}
    del v1["identities"]
    with pytest.raises(ValidationError, match="reason no_qr"):
        ScanEventV1.model_validate_json(json.dumps(v1))


def test_central_counts_a_venues_no_qr_people_for_the_venue_not_the_street(tmp_path: Path) -> None:
    settings = lane(tmp_path / "kiosk", "in")
    run_pressing(settings, 3)
    public = keys.load_private_key(settings.paths.key_file).public_key()
    registration = {"device": "lane-in", "destination": "shop-v", "public_key": keys.public_pem(public),
                    "jwk": keys.public_jwk(public), "fingerprint": keys.thumbprint(public),
                    "software": "0.1.0", "created": "2026-11-01T00:00:00Z", "mode": "kiosk"}  # fmt: skip
    with sqlite3.connect(settings.paths.spool_file) as db:
        tokens = [row[0] for row in db.execute("SELECT token FROM events ORDER BY seq")]
    with open_store(f"sqlite://{tmp_path / 'central.sqlite3'}") as store:
        registry = Registry(store)
        registry.add(parse_registration(json.dumps(registration)))
        processor = Processor(store=store, registry=registry, authority_key=Ed25519PrivateKey.generate(),
                              identities=central_support.OPENER)  # fmt: skip
        for token in tokens:
            processor.handle("kiosk/v1/shop-v/lane-in/event", token)
        processor.flush()
        assert (processor.stats.stored, processor.stats.rejected) == (3, {})
        day = datetime.fromtimestamp(spooled_events(settings)[0].ts / 1000, ReportSettings().zone).date()
        report = build_report(store, day=day, settings=ReportSettings(), now_ms=at(23, day=day))
    [venue] = report.destinations
    assert (venue.destination, venue.scans, venue.no_qr, venue.people) == ("shop-v", 3, 3, 0)
    assert venue.directions == {"in": 3, "out": 0, "none": 0}
    assert venue.verdicts == {"pass": {}, "fail": {"no_qr": 3}}
    assert (report.street, report.street_total.no_qr) == ([], 0), "not a street figure"
    assert ["shop-v", "summary", "no_qr", "3"] in [row[1:] for row in csv.reader(io.StringIO(as_csv(report)))]
    assert "no QR 3" in as_table(report)


def test_a_press_that_cannot_be_recorded_is_told_and_the_next_one_is_recorded(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = lane(tmp_path, "in")
    with assemble(settings, frames=EMPTY) as kiosk:
        spool, record = kiosk.parts.spool, kiosk.parts.spool.record

        def full(_draft: object) -> None:
            spool.record = record  # type: ignore[method-assign]
            raise SpoolError("cannot write the spool: database or disk is full")

        spool.record = full  # type: ignore[method-assign]
        button = kiosk.parts.feedback.signals.pin_factory.pin(NO_QR_BUTTON)  # type: ignore[union-attr]
        for _ in range(2):
            button.drive_low()
            button.drive_high()
            kiosk.turn()
        assert kiosk.parts.policy.occupancy == 1, "the refused press counts nobody"
    assert [e.reason for e in spooled_events(settings)] == ["no_qr"]
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == [
        "a person without a QR could not be recorded: cannot write the spool: database or disk is full"
    ]
