"""The daily report against figures computed by hand on a generated day of scans."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from kiosk.cards import Rejection
from kiosk.cards.inspector import make_inspector_payload, parse_inspector_card
from kiosk.central.ingest import Processor
from kiosk.central.registry import Registry, parse_registration
from kiosk.central.render import as_csv, as_html, as_json, as_table
from kiosk.central.reports import (
    DestinationReport,
    Report,
    ReportSettings,
    StreetCounts,
    Visit,
    build_report,
    load_report_settings,
)
from kiosk.central.store import DeviceRow, EventRow, Store, open_store
from kiosk.errors import ConfigError
from kiosk.events import EventDraft, build_event, sign_event
from kiosk.reasons import Reason
from kiosk.street_check import street_finding
from kiosk.venue_check import inspector_draft
from tests.support import central as central_support
from tests.support import postgres as postgres_support
from tests.support.central import SEALER, TestDevice

postgres_server = postgres_support.postgres_server
postgres_url = postgres_support.postgres_url
store_url = central_support.store_url

ZONE = ZoneInfo("Asia/Ho_Chi_Minh")
DAY = date(2026, 11, 20)
EPOCH = 1


def at(hour: int, minute: int = 0, day: date = DAY) -> int:
    """UTC ms of a local time."""
    return (
        int(datetime(day.year, day.month, day.day, tzinfo=ZONE).timestamp() * 1000)
        + (hour * 60 + minute) * 60_000
    )


class Day:
    """Builds the scenario's events with per-device seqs."""

    def __init__(self) -> None:
        self.rows: list[EventRow] = []
        self.seqs: dict[str, int] = {}

    def scan(self, device: str, dest: str, ts: int, identity: str | None, **kw: str | None) -> None:
        seq = self.seqs[device] = self.seqs.get(device, 0) + 1 + (1 if kw.pop("skip", None) else 0)
        values = {"direction": "in", "verdict": "pass", "reason": "ok", "format": "national", **kw}
        self.rows.append(
            EventRow(
                device=device, epoch=EPOCH, seq=seq, id=f"{device}-{seq}", destination=dest, kind="scan",
                ts=ts, clock_synced=True, identity=identity, sw="0.1.0", decode_ms=3.0, received_ms=ts,
                token="-", **values,  # type: ignore[arg-type]
            )
        )  # fmt: skip


def _scenario(store: Store) -> None:
    for dev, dest, status in [
        ("ka1", "shop-a", "active"), ("ka2", "shop-a", "active"), ("kb1", "shop-b", "active"),
        ("kd1", "shop-b", "revoked"), ("kc1", "shop-c", "active"),
    ]:  # fmt: skip
        store.put_device(DeviceRow(dev, dest, "PEM", "fp", "0.1.0", "2026-11-01T00:00:00Z", status))
    day = Day()
    _shop_a(day)
    for i in range(200):  # shop-b: every 4 min from 07:00 (last 20:16), 50 people
        day.scan("kb1", "shop-b", at(7, 4 * i), f"plain:b{i % 50}")
    for i in range(20):  # shop-c: every 30 min from 07:00 (last 16:30)
        day.scan("kc1", "shop-c", at(7, 30 * i), f"plain:c{i}")
    store.insert_events(day.rows)
    store.advance_progress("ka2", EPOCH, 6)  # what the ingest recorded: 1-6 stored, 7 missing
    _states(store)
    store.commit()


def _shop_a(day: Day) -> None:
    for i in range(24):  # ka1: 08:00-11:50 every 10 min, p0..p23 enter
        day.scan("ka1", "shop-a", at(8, 10 * i), f"plain:p{i}")
    for i in range(10):  # ...and p0..p9 leave at 12:00-12:09
        day.scan("ka1", "shop-a", at(12, i), f"plain:p{i}", direction="out")
    for i in range(12):  # ka2: 14:00-15:50; two blocked, one old poster; seq 7 never arrives
        ts = at(14, 10 * i)
        if i in (0, 1):
            day.scan(
                "ka2",
                "shop-a",
                ts,
                f"plain:p{100 + i}",
                verdict="fail",
                reason="status_blocked",
                direction=None,
            )
        elif i == 2:
            day.scan(
                "ka2",
                "shop-a",
                ts,
                None,
                verdict="fail",
                reason="old_venue_qr",
                format="poster",
                direction=None,
            )
        else:
            day.scan("ka2", "shop-a", ts, f"plain:p{200 + i - 3}", skip="yes" if i == 6 else None)
    for back, count in ((1, 160), (2, 200), (3, 180)):  # shop-a's usual level: median 180
        for i in range(count):
            day.scan("ka1", "shop-a", at(10, 0, DAY - timedelta(days=back)) + i, f"plain:h{i}")


def _states(store: Store) -> None:
    yesterday = DAY - timedelta(days=1)
    for dev, ts, status in [
        ("ka1", at(10, 0, yesterday), "online"), ("ka1", at(13), "offline"), ("ka1", at(13, 30), "online"),
        ("ka2", at(6), "online"), ("kb1", at(6), "online"), ("kb1", at(21, 30), "stopped"),
        ("kc1", at(5), "online"),
    ]:  # fmt: skip
        store.log_state(dev, ts, status)


SETTINGS_TOML = """
low_fraction = 0.3
[[destinations]]
id = "shop-a"
name = "Shop A"
group = "shop"
[[destinations]]
id = "shop-b"
group = "shop"
[[destinations]]
id = "shop-c"
group = "shop"
[[destinations]]
id = "market-x"
group = "market"
opening_hours = "05:00-12:00"
"""


@pytest.fixture
def settings(tmp_path: Path) -> ReportSettings:
    path = tmp_path / "destinations.toml"
    path.write_text(SETTINGS_TOML)
    return load_report_settings(path)


@pytest.fixture
def report(store_url: str, settings: ReportSettings) -> Iterator[Report]:
    with open_store(store_url) as store:
        _scenario(store)
        yield build_report(store, day=DAY, settings=settings, now_ms=at(23))


def _dest(report: Report, name: str) -> DestinationReport:
    [found] = [d for d in report.destinations if d.destination == name]
    return found


def test_destination_figures(report: Report) -> None:
    assert [d.destination for d in report.destinations] == ["market-x", "shop-a", "shop-b", "shop-c"]
    a = _dest(report, "shop-a")
    assert (a.scans, a.people, a.old_poster) == (46, 35, 1)
    assert a.directions == {"in": 33, "out": 10, "none": 3}
    assert a.verdicts == {"pass": {"ok": 43}, "fail": {"old_venue_qr": 1, "status_blocked": 2}}
    assert a.hourly == [0] * 8 + [6, 6, 6, 6, 10, 0, 6, 6] + [0] * 8
    assert (a.usual, a.peers) == (180, 110)  # peers: median of shop-b 200 and shop-c 20
    assert a.silences == [(at(15, 50), at(21))]
    b = _dest(report, "shop-b")
    assert (b.scans, b.people, b.hourly[7], b.hourly[20], b.silences) == (200, 50, 15, 5, [])


def test_devices_uptime_and_gaps(report: Report) -> None:
    ka1, ka2 = _dest(report, "shop-a").devices
    assert (ka1.events, ka1.offline_minutes, ka1.uptime) == (34, 30, pytest.approx(13.5 / 14))
    assert (ka2.events, ka2.uptime, ka2.missing_seqs, ka2.last_event_ms) == (12, 1.0, 1, at(15, 50))
    kb1, kd1 = _dest(report, "shop-b").devices
    assert (kb1.uptime, kd1.status, kd1.uptime) == (1.0, "revoked", 0.0)


def test_compliance_flags(report: Report) -> None:
    flags = {d.destination: [f.code for f in d.flags] for d in report.destinations}
    assert flags == {
        "shop-a": ["device_offline", "below_usual", "silent"],
        "shop-b": [],  # kd1 is revoked: its silence is not the venue's fault
        "shop-c": ["below_peers", "silent"],
        "market-x": ["no_device"],
    }
    assert _dest(report, "market-x").opening_hours == "05:00-12:00"


@pytest.mark.parametrize(
    ("mode", "venue_flags"), [("inspector", None), ("kiosk", ["device_offline", "silent"])]
)
def test_an_unused_handheld_is_not_a_silent_venue(
    store_url: str, settings: ReportSettings, mode: str, venue_flags: list[str] | None
) -> None:
    with open_store(store_url) as store:
        _scenario(store)
        store.put_device(DeviceRow("hh-idle", "team-9", "PEM", "fp", "0.1.0", "2026-11-01T00:00:00Z",
                                   mode=mode))  # fmt: skip
        store.commit()
        report = build_report(store, day=DAY, settings=settings, now_ms=at(23))
    flags = {d.destination: [f.code for f in d.flags] for d in report.destinations}
    assert flags.get("team-9") == venue_flags
    assert ("hh-idle" in [h.device for h in report.street]) == (mode == "inspector")


def test_one_destination_only(store_url: str, settings: ReportSettings) -> None:
    with open_store(store_url) as store:
        _scenario(store)
        report = build_report(store, day=DAY, settings=settings, now_ms=at(23), destination="shop-c")
    assert [d.destination for d in report.destinations] == ["shop-c"]


def test_renderings(report: Report) -> None:
    rows = list(csv.reader(io.StringIO(as_csv(report))))
    assert rows[0] == ["day", "destination", "section", "key", "value"]
    assert ["2026-11-20", "shop-a", "summary", "scans", "46"] in rows
    assert ["2026-11-20", "shop-a", "fail", "status_blocked", "2"] in rows
    assert ["2026-11-20", "shop-a", "silence", "15:50", "21:00"] in rows
    assert json.loads(as_json(report))["destinations"][1]["people"] == 35
    table = as_table(report)
    assert "FLAG no_device" in table and "shop-a (Shop A, group shop)" in table
    html = as_html(report)
    assert html.count("<svg") >= 4 + 5  # a chart per destination, an uptime bar per device
    assert "src=" not in html and "href=" not in html and "<script" not in html  # nothing from outside


def test_bad_destinations_file_lists_every_problem(tmp_path: Path) -> None:
    path = tmp_path / "d.toml"
    path.write_text('timezone = "Mars/Base"\nopening_hours = "21:00-07:00"\n[[destinations]]\nid = "A B"\n')
    with pytest.raises(ConfigError) as caught:
        load_report_settings(path)
    assert len(caught.value.problems) == 3


# A day with inspections: a venue visited twice, refused inspector cards, two street handhelds.

AUTHORITY = Ed25519PrivateKey.generate()
KV1 = TestDevice("kv1", "shop-v")
HH1, HH2 = TestDevice("hh1", "team-1"), TestDevice("hh2", "team-2")


class Signed:
    """Signs each device's events with real keys, in seq order, and ingests them like central does."""

    def __init__(self, store: Store) -> None:
        registry = Registry(store)
        for dev in (KV1, HH1, HH2):
            registry.add(parse_registration(json.dumps(dev.registration())))
        self.processor = Processor(
            store=store, registry=registry, authority_key=AUTHORITY, identities=central_support.OPENER
        )
        self.seqs: dict[str, int] = {}

    def _seq(self, dev: TestDevice) -> int:
        self.seqs[dev.device] = self.seqs.get(dev.device, 0) + 1
        return self.seqs[dev.device]

    def event(self, dev: TestDevice, ts: int, **draft: object) -> None:
        self.processor.handle(dev.topic(), dev.token(self._seq(dev), ts, **draft))

    def draft(self, dev: TestDevice, draft: EventDraft) -> None:
        event = build_event(draft, device=dev.device, destination=dev.destination, epoch=dev.epoch,
                            seq=self._seq(dev), sealer=SEALER)  # fmt: skip
        self.processor.handle(dev.topic(), sign_event(event, dev.key))


def _card_shown(
    signed: Signed, ts: int, key: Ed25519PrivateKey, inspector: str, days: int = 30, device: TestDevice = KV1
) -> None:
    """An inspector card (signed by `key`, valid from 10 days before `ts` for `days`) shown to a device."""
    moment = datetime.fromtimestamp(ts / 1000, UTC)
    payload = make_inspector_payload(key, inspector=inspector, valid_from=moment - timedelta(days=10),
                                     valid_until=moment + timedelta(days=days - 10))  # fmt: skip
    result = parse_inspector_card(payload.encode(), keys=AUTHORITY.public_key(), now=moment)
    signed.draft(device, inspector_draft(result, at=moment, clock_synced=True))


def _venue_day(signed: Signed) -> None:
    for i in range(10):  # 08:00-12:30 every 30 min, five people twice
        signed.event(KV1, at(8, 30 * i), card=f"00109302931{i % 5}")
    signed.event(KV1, at(9, 15), verdict="fail", reason="old_venue_qr", format="poster", direction=None)
    _card_shown(signed, at(10, 3), Ed25519PrivateKey.generate(), "insp-7")  # forged: unknown key
    _card_shown(signed, at(10, 4), AUTHORITY, "insp-8", days=5)  # expired five days ago
    _card_shown(signed, at(10, 5), AUTHORITY, "insp-7")
    _card_shown(signed, at(14), AUTHORITY, "insp-9")


def _street_day(signed: Signed) -> None:
    def check(dev: TestDevice, ts: int, verdict: str, reason: str, card: str) -> None:
        signed.event(dev, ts, kind="inspection", verdict=verdict, reason=reason, card=card, direction=None)

    for i in range(3):
        check(HH1, at(9, i), "pass", "ok", f"07912345678{i}")
    for i in range(2):
        check(HH1, at(10, i), "fail", "status_blocked", f"07900000000{i}")
    for minute, refusal in (
        (20, Rejection(reason=Reason.UNRECOGNISED)),
        (21, Rejection(reason=Reason.OLD_VENUE_QR, format="poster")),
    ):
        moment = datetime.fromtimestamp(at(10, minute) / 1000, UTC)
        signed.draft(HH1, street_finding(refusal, status=None, now=moment).draft(clock_synced=True))
    for minute in (30, 31):
        signed.event(HH1, at(10, minute), kind="no_qr", verdict="fail", reason="no_qr", format="unknown",
                     direction=None)  # fmt: skip
    _card_shown(signed, at(8), AUTHORITY, "insp-7", device=HH1)  # trying the handheld: no venue visit
    check(HH2, at(15), "pass", "ok", "079111111111")
    check(HH2, at(15, 5), "fail", "status_blocked", "079222222222")
    signed.event(
        HH2, at(15, 10), kind="no_qr", verdict="fail", reason="no_qr", format="unknown", direction=None
    )


def _inspection_scenario(store: Store) -> None:
    signed = Signed(store)
    _venue_day(signed)
    _street_day(signed)
    signed.processor.flush()
    assert signed.processor.stats.stored == 15 + 10 + 3 and not signed.processor.stats.rejected
    for ts, status in ((at(6), "online"), (at(13), "offline"), (at(14, 30), "online")):
        store.log_state("kv1", ts, status)
    store.commit()


@pytest.fixture
def inspected(store_url: str) -> Iterator[Report]:
    with open_store(store_url) as store:
        _inspection_scenario(store)
        yield build_report(store, day=DAY, settings=ReportSettings(), now_ms=at(23))


def _inspector(name: str) -> str:
    return central_support.OPENER.hash(name)


def test_venue_figures_count_visitor_scans_only(inspected: Report) -> None:
    [v] = inspected.destinations  # team-1 and team-2 are handhelds' areas, not venues
    assert (v.destination, v.scans, v.people, v.old_poster) == ("shop-v", 11, 5, 1)
    assert v.verdicts == {"pass": {"ok": 10}, "fail": {"old_venue_qr": 1}}
    assert v.directions == {"in": 10, "out": 0, "none": 1}
    assert v.hourly == [0] * 8 + [2, 3, 2, 2, 2] + [0] * 11
    assert v.kinds == {"inspection": 2, "scan": 13}
    assert v.silences == [(at(12, 30), at(21))]  # the 14:00 visit is no visitor
    assert [f.code for f in v.flags] == ["device_offline", "silent"]
    assert v.devices[0].events == 15
    assert v.refused_inspector_cards == {"inspector_card_expired": 1, "inspector_card_unknown_key": 1}


def test_inspection_visits_with_their_findings(inspected: Report) -> None:
    first, second = inspected.destinations[0].visits
    assert first == Visit(ts=at(10, 5), device="kv1", inspector=_inspector("insp-7"), scans=6, old_poster=1,
                          states={"kv1": "online"}, flags=["device_offline", "silent"])  # fmt: skip
    assert (second.ts, second.inspector, second.scans, second.old_poster) == (
        at(14),
        _inspector("insp-9"),
        11,
        1,
    )
    assert second.states == {"kv1": "offline"}


def test_street_inspections_by_outcome(inspected: Report) -> None:
    hh1, hh2 = inspected.street
    assert (hh1.device, hh1.destination, hh1.status) == ("hh1", "team-1", "active")
    assert hh1.counts == StreetCounts(
        checks=7, passed=3, violations={"status_blocked": 2},
        invalid={"old_venue_qr": 1, "unrecognised": 1}, no_qr=2,
    )  # fmt: skip
    assert hh2.counts == StreetCounts(checks=2, passed=1, violations={"status_blocked": 1}, no_qr=1)
    assert inspected.street_total == StreetCounts(
        checks=9, passed=4, violations={"status_blocked": 3},
        invalid={"old_venue_qr": 1, "unrecognised": 1}, no_qr=3,
    )  # fmt: skip


def test_one_team_only(store_url: str) -> None:
    with open_store(store_url) as store:
        _inspection_scenario(store)
        report = build_report(store, day=DAY, settings=ReportSettings(), now_ms=at(23), destination="team-2")
    assert report.destinations == []
    assert [h.device for h in report.street] == ["hh2"]
    assert report.street_total.checks == 2


def test_inspections_in_every_format(inspected: Report) -> None:
    rows = list(csv.reader(io.StringIO(as_csv(inspected))))
    for row in (
        ["shop-v", "visit:1", "time", "10:05"], ["shop-v", "visit:1", "inspector", _inspector("insp-7")],
        ["shop-v", "visit:1", "scans", "6"], ["shop-v", "visit:2", "state:kv1", "offline"],
        ["shop-v", "visit:2", "flags", "device_offline silent"],
        ["shop-v", "refused_inspector_card", "inspector_card_unknown_key", "1"],
        ["team-1", "street:hh1", "violation:status_blocked", "2"],
        ["team-1", "street:hh1", "invalid:unrecognised", "1"],
        ["team-2", "street:hh2", "no_qr", "1"], ["", "street_total", "checks", "9"],
        ["", "street_total", "passed", "4"], ["", "street_total", "no_qr", "3"],
    ):  # fmt: skip
        assert ["2026-11-20", *row] in rows
    data = json.loads(as_json(inspected))
    assert data["street_total"]["violations"] == {"status_blocked": 3}
    assert data["destinations"][0]["visits"][1]["scans"] == 11
    table = as_table(inspected)
    assert f"inspection 10:05 on kv1 by {_inspector('insp-7')}: 6 scans so far, 1 old posters" in table
    assert "refused inspector cards: inspector_card_expired 1, inspector_card_unknown_key 1" in table
    assert (
        "total: 9 checks, 4 passed, violations status_blocked 3,"
        " not valid old_venue_qr 1, unrecognised 1, no QR 3" in table
    )
    assert "hh1 (team-1, active): 7 checks, 3 passed" in table
    html = as_html(inspected)
    assert "<h2>Street inspections</h2>" in html and _inspector("insp-9") in html
    assert "<td>total</td><td></td><td>9</td><td>4</td>" in html
    assert "src=" not in html and "href=" not in html and "<script" not in html


def test_a_person_showing_a_national_qr_and_a_cccd_counts_once(store_url: str) -> None:
    citizen = "001093029317"
    with open_store(store_url) as store:
        signed = Signed(store)
        signed.event(KV1, at(8), card_identities=("QID-0001", citizen))  # the national QR: both
        signed.event(KV1, at(9), format="cccd", card_identities=(citizen,))  # the CCCD: the number alone
        signed.event(KV1, at(10), format="cccd", card_identities=("079111111111",))  # someone else
        signed.event(KV1, at(11), card_identities=("QID-0002", "079111111111"))  # ...then their QR
        signed.event(KV1, at(12), card_identities=("QID-0003", "001111111111"))  # a third person
        signed.processor.flush()
        report = build_report(store, day=DAY, settings=ReportSettings(), now_ms=at(23))
    [venue] = [d for d in report.destinations if d.destination == KV1.destination]
    assert (venue.scans, venue.people) == (5, 3)
