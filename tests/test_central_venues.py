"""The venue registry from CSV (hostile files refused by line), and reports paged, by area, in vi and en."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from kiosk.central.cli import main
from kiosk.central.ingest import Processor
from kiosk.central.registry import Registry, parse_registration
from kiosk.central.store import VenueRow, open_store
from kiosk.central.venues import parse_csv
from kiosk.errors import ConfigError
from tests.support.central import OPENER, TestDevice

GOOD = (
    "id,name,district,ward,group,opening_hours\n"
    "cho-ben-thanh,Chợ Bến Thành,Quận 1,Bến Thành,market,05:00-19:00\n"
    "\n"
    "vp-1,Văn phòng 1,Quận 3,Phường 6,,\n"
)


def test_a_good_file_is_read() -> None:
    rows = parse_csv(("\ufeff" + GOOD).encode())  # a spreadsheet's BOM is fine
    assert rows == [
        VenueRow("cho-ben-thanh", "Chợ Bến Thành", "Quận 1", "Bến Thành", "market", "05:00-19:00"),
        VenueRow("vp-1", "Văn phòng 1", "Quận 3", "Phường 6", "", None),
    ]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"id,name\nx,y\n", "missing column 'district'"),
        (b"id,name,district,ward,colour\n", "unknown column 'colour'"),
        ("id,name,district,ward\nx,Chợ,Q1,P1\n".encode("utf-16"), "not UTF-8"),
        (b"id,name,district,ward\nx,a,Q1\n", "line 2: 3 fields, the header has 4"),
        (b"id,name,district,ward\nbad id!,a,Q1,P1\n", "line 2: id: String should match pattern"),
        (b"id,name,district,ward\nx,a,Q1,P1\nx,b,Q1,P1\n", "line 3: id 'x' already on line 2"),
        (
            b"id,name,district,ward\nx,=HYPERLINK(1),Q1,P1\n",
            "line 2: name: control characters or a leading =",
        ),
        (b"id,name,district,ward\nx,a,Q1,P\x1b[31m\n", "line 2: ward: control characters"),
        (b"id,name,district,ward\nx,a,,P1\n", "line 2: district and ward must not be empty"),
        (b"id,name,district,ward,opening_hours\nx,a,Q1,P1,21:00-07:00\n", "closing time must be after"),
        (b'id,name,district,ward\nx,"a\0b",Q1,P1\n', "line 2: name: control characters"),
        (b'id,name,district,ward\nx,"unclosed,Q1,P1\n', "unexpected end of data"),
        (b"id,name,district,ward\nx," + b"a" * 200_000 + b",Q1,P1\n", "field larger than field limit"),
        (b"id,name,district,ward\nx," + b"a" * 2000 + b",Q1,P1\n", "longer than 1024"),
        ("id,name,district,ward\n١٢٣,a,Q1,P1\n".encode(), "line 2: id"),  # Arabic-Indic digits
    ],
)
def test_hostile_rows_are_refused_with_their_line(data: bytes, message: str) -> None:
    with pytest.raises(ConfigError) as refused:
        parse_csv(data)
    assert message in str(refused.value) + " ".join(refused.value.problems)


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=400))
def test_any_bytes_give_rows_or_a_clear_error(data: bytes) -> None:
    try:
        parse_csv(b"id,name,district,ward\n" + data)
    except ConfigError as e:
        assert str(e)


def test_every_bad_row_is_listed_and_nothing_imported(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = f"sqlite://{tmp_path / 'c.sqlite3'}"
    bad = tmp_path / "bad.csv"
    bad.write_text("id,name,district,ward\nok,a,Q1,P1\nx,a,Q1\n-y,a,Q1,P1\n")
    assert main(["--db", db, "destinations", "import", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "2 problem(s)" in err and "line 3:" in err and "line 4:" in err
    with open_store(db) as store:
        assert store.venues() == []
    good = tmp_path / "good.csv"
    good.write_text(GOOD)
    assert main(["--db", db, "destinations", "import", str(good)]) == 0
    assert "imported 2 venues in 2 districts" in capsys.readouterr().out
    assert main(["--db", db, "destinations", "import", str(tmp_path / "none.csv")]) == 2
    assert "cannot read" in capsys.readouterr().err


def _province(tmp_path: Path) -> str:
    """Five venues in two districts, a kiosk at each, one scan per venue and two at v-0."""
    db = f"sqlite://{tmp_path / 'c.sqlite3'}"
    lines = ["id,name,district,ward"] + [
        f"v-{n},Venue {n},{'Q1' if n < 3 else 'Q2'},P{n % 2}" for n in range(5)
    ]
    (tmp_path / "v.csv").write_text("\n".join(lines) + "\n")
    assert main(["--db", db, "destinations", "import", str(tmp_path / "v.csv")]) == 0
    ts = int(datetime(2026, 11, 20, 3, 0, tzinfo=UTC).timestamp() * 1000)
    with open_store(db) as store:
        registry = Registry(store)
        devices = [TestDevice(f"k-{n}", f"v-{n}") for n in range(5)]
        for device in devices:
            registry.add(parse_registration(json.dumps(device.registration())))
        store.commit()
        processor = Processor(
            store=store, registry=registry, authority_key=Ed25519PrivateKey.generate(), identities=OPENER
        )
        for n, device in enumerate(devices):
            processor.handle(device.topic(), device.token(1, ts + n, card=f"00109302931{n}"))
        processor.handle(devices[0].topic(), devices[0].token(2, ts + 9, card="001093029399"))
        processor.handle(devices[0].topic(), devices[0].token(2, ts + 9, card="001093029399"))  # redelivered
        processor.flush()
    return db


def _report(capsys: pytest.CaptureFixture[str], db: str, *extra: str) -> tuple[int, str, str]:
    code = main(["--db", db, "report", "--date", "2026-11-20", *extra])
    out, err = capsys.readouterr()
    return code, out, err


def test_reports_page_filter_and_speak_both_languages(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = _province(tmp_path)
    capsys.readouterr()
    code, out, _ = _report(capsys, db, "--per-page", "2", "--lang", "en")
    assert code == 0 and "page 1 of 3, 5 venues" in out
    assert "  Q1: 3 venues, 4 scans, 0 refused" in out and "  Q2: 2 venues, 2 scans, 0 refused" in out
    assert "v-0 (Venue 0, P0, Q1), open" in out and "v-1 (" in out and "v-2 (" not in out
    assert "scans 2 (in 2, out 0), people 2" in out  # the redelivered event counted once
    code, out, _ = _report(capsys, db, "--per-page", "2", "--page", "3", "--lang", "en")
    assert "page 3 of 3" in out and "v-4 (" in out and "v-0 (" not in out
    code, out, _ = _report(capsys, db, "--district", "Q1", "--ward", "P1")
    assert code == 0 and "trang 1/1, 1 địa điểm" in out and "v-1 (" in out
    assert "Lượt quét của khách theo phường/xã" in out and "P1: 1 địa điểm, 1 lượt quét" in out
    assert "lượt quét 1 (vào 1, ra 0), số người 1" in out and "Báo cáo ngày 2026-11-20" in out
    code, out, _ = _report(capsys, db, "--district", "Q2", "--format", "html", "--lang", "vi")
    assert '<html lang="vi">' in out and "Báo cáo quét mã ngày" in out and "v-3 (" in out
    code, out, _ = _report(capsys, db, "--format", "csv", "--per-page", "1")
    assert "2026-11-20,,area,Q1:scans,4" in out and ",v-0,summary,scans,2" in out and ",v-1," not in out
    code, _, err = _report(capsys, db, "--page", "9")
    assert code == 2 and "the report has 1 page(s) of 50 venues" in err
    with pytest.raises(SystemExit):
        main(["--db", db, "report", "--date", "2026-11-20", "--per-page", "0"])
    assert "out of range" in capsys.readouterr().err


def test_registry_venues_need_no_destinations_file(tmp_path: Path) -> None:
    db = _province(tmp_path)
    from kiosk.central.reports import ReportSettings, Selection, build_report

    with open_store(db) as store:
        report = build_report(store, day=date(2026, 11, 20), settings=ReportSettings(), now_ms=0,
                              selection=Selection(district="Q2"))  # fmt: skip
    assert [(d.destination, d.district, d.ward) for d in report.destinations] == [
        ("v-3", "Q2", "P1"),
        ("v-4", "Q2", "P0"),
    ]
