"""A made-up province in a central database: for the dashboard's screenshots, tests and benchmark.

Events are written straight into the store (no signing: the dashboard reads stored
events, which the ingest has verified). Everything comes from one seeded random
generator, so the same arguments give the same database. Some venues are made to
carry each compliance flag: silent today, no device, a kiosk offline, old posters.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from kiosk.central.reports import DestinationInfo, ReportSettings, day_range
from kiosk.central.store import DeviceRow, EventRow, StateRow, Store

DISTRICTS = {
    "Quận 1": ("Bến Nghé", "Bến Thành", "Đa Kao"),
    "Quận 3": ("Võ Thị Sáu", "Phường 9"),
    "Bình Thạnh": ("Phường 1", "Phường 2", "Phường 25"),
    "Thủ Đức": ("Linh Trung", "Hiệp Phú"),
}
KINDS_OF_VENUE = ("Chợ", "Siêu thị", "Nhà hàng", "Văn phòng", "Cửa hàng")
HANDHELD = "team-q1-01"
TEAM = "team-q1"


@dataclass(frozen=True)
class Province:
    """What the sample is: its settings (places) and its size."""

    settings: ReportSettings
    venues: int
    events: int


def build(store: Store, *, now_ms: int, venues: int = 40, days: int = 8, scans_per_day: int = 60,
          seed: int = 20) -> Province:  # fmt: skip
    """Fill `store` with `venues` venues over `days` local days up to now; the settings that name them."""
    rng = random.Random(seed)
    infos = [_info(i, rng) for i in range(venues)]
    settings = ReportSettings(province="TP. Hồ Chí Minh", destinations=infos)
    today = datetime.fromtimestamp(now_ms / 1000, settings.zone).date()
    written = 0
    for i, info in enumerate(infos):
        if i % 11 == 5:
            continue  # listed, but no kiosk installed: "no device"
        device = f"k-{info.id}"
        store.put_device(DeviceRow(device, info.id, "-", f"fp{i}", "0.1.0", "2026-01-01T00:00:00Z"))
        store.put_state(_state(device, info.id, i, now_ms))
        for back in range(days):
            day = today - timedelta(days=back)
            silent_today = back == 0 and i % 7 == 3
            batch = [] if silent_today else list(_day_events(rng, device, info.id, i, day, settings, now_ms,
                                                              scans_per_day))  # fmt: skip
            written += store.insert_events(batch)
        store.commit()
    written += _street(store, settings, today, now_ms)
    store.commit()
    return Province(settings, venues, written)


def _info(i: int, rng: random.Random) -> DestinationInfo:
    district = list(DISTRICTS)[i % len(DISTRICTS)]
    wards = DISTRICTS[district]
    ward = wards[(i // len(DISTRICTS)) % len(wards)]
    name = f"{KINDS_OF_VENUE[i % len(KINDS_OF_VENUE)]} {ward} {i + 1}"
    return DestinationInfo(id=f"venue-{i + 1:04d}", name=name, district=district, ward=ward,
                           group=KINDS_OF_VENUE[i % len(KINDS_OF_VENUE)])  # fmt: skip


def _state(device: str, destination: str, i: int, now_ms: int) -> StateRow:
    status = "offline" if i % 9 == 4 else "online"
    health = {"status": status, "device": device, "destination": destination, "ts": now_ms - 60_000,
              "version": "0.1.0", "spool_depth": 450 if i % 13 == 6 else i % 5,
              "unsent": 300 if i % 13 == 6 else 0,
              "counts_today": {}, "fps": 14.5 + i % 5, "clock_synced": i % 17 != 8,
              "alarms": ["camera_stalled"] if i % 19 == 10 else []}  # fmt: skip
    return StateRow(device, destination, status, now_ms - 60_000, now_ms - 60_000, json.dumps(health))


def _day_events(rng: random.Random, device: str, destination: str, i: int, day: date,
                settings: ReportSettings, now_ms: int, per_day: int) -> Iterator[EventRow]:  # fmt: skip
    start, _ = day_range(day, settings.zone)
    opens, closes = start + 7 * 3_600_000, start + 21 * 3_600_000
    count = max(1, int(per_day * (0.4 + (i % 6) / 5)))
    stamps = sorted(rng.randrange(opens, closes) for _ in range(count))
    for seq, ts in enumerate((t for t in stamps if t < now_ms), start=(start // 1000) * 10):
        poster = i % 6 == 2 and rng.random() < 0.08
        failed = poster or rng.random() < 0.04
        yield _row(device, destination, seq, ts, kind="scan", verdict="fail" if failed else "pass",
                   reason="old_venue_qr" if poster else ("status_blocked" if failed else "ok"),
                   direction="in" if seq % 3 else "out", identity=f"hmac:{rng.randrange(10**6):06d}",
                   card_format="unknown" if poster else "national")  # fmt: skip
    if i % 4 == 1 and rng.random() < 0.5:  # an inspector's visit on some days
        ts = opens + 3 * 3_600_000
        if ts < now_ms:
            yield _row(device, destination, (start // 1000) * 10 - 1, ts, kind="inspection", verdict="pass",
                       reason="inspector_card_ok", direction=None, identity="hmac:inspector-07",
                       card_format="inspector")  # fmt: skip


def _row(device: str, destination: str, seq: int, ts: int, *, kind: str, verdict: str, reason: str,
         direction: str | None, identity: str | None, card_format: str) -> EventRow:  # fmt: skip
    return EventRow(device=device, epoch=1, seq=seq, id=f"{device}-{seq}", destination=destination, kind=kind,
                    ts=ts, clock_synced=True, direction=direction, verdict=verdict, reason=reason,
                    format=card_format, identity=identity, sw="0.1.0", decode_ms=12.0, received_ms=ts + 500,
                    token="-")  # fmt: skip


def _street(store: Store, settings: ReportSettings, today: date, now_ms: int) -> int:
    """A street team's handheld with today's checks: passed, violations, invalid codes, no QR."""
    store.put_device(DeviceRow(HANDHELD, TEAM, "-", "fp-team", "0.1.0", "2026-01-01T00:00:00Z",
                               mode="inspector"))
    start, _ = day_range(today, settings.zone)
    outcomes = [("pass", "ok")] * 30 + [("fail", "status_blocked")] * 3 + [("fail", "unrecognised")] * 5
    rows = []
    for seq, (verdict, reason) in enumerate(outcomes, start=1):
        ts = min(start + 8 * 3_600_000 + seq * 300_000, now_ms - 1000)
        rows.append(_row(HANDHELD, TEAM, seq, ts, kind="inspection", verdict=verdict, reason=reason,
                         direction=None, identity=f"hmac:s{seq}", card_format="national"))  # fmt: skip
    for seq in range(len(outcomes) + 1, len(outcomes) + 5):
        rows.append(_row(HANDHELD, TEAM, seq, min(start + 9 * 3_600_000 + seq * 60_000, now_ms - 1000),
                         kind="no_qr", verdict="fail", reason="no_qr", direction=None, identity=None,
                         card_format="unknown"))  # fmt: skip
    return store.insert_events(rows)
