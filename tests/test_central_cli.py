"""The `kiosk-central` command line: registry, report, trace, status list, and ingest as a process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import paho.mqtt.client as paho
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat
from paho.mqtt.enums import CallbackAPIVersion

from kiosk import cardmaker, keys
from kiosk import statuslist as sl
from kiosk.central.cli import main
from kiosk.central.store import open_store
from tests.support import broker as broker_support
from tests.support.broker import Mosquitto
from tests.support.central import HASH_KEY, OPENER, SEALING_KEY, TestDevice

mosquitto = broker_support.mosquitto
mosquitto_factory = broker_support.mosquitto_factory

K1 = TestDevice("kiosk-1", "shop-1")


@pytest.fixture
def db(tmp_path: Path) -> str:
    return f"sqlite://{tmp_path / 'central.sqlite3'}"


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_devices_add_list_revoke(db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    k2 = TestDevice("kiosk-2", "shop-2")
    code, out, _ = _run(capsys, "--db", db, "devices", "add", str(K1.write_registration(tmp_path)),
                        str(k2.write_registration(tmp_path)))  # fmt: skip
    assert code == 0 and "registered kiosk-1 for shop-1" in out
    assert _run(capsys, "--db", db, "devices", "revoke", "kiosk-2")[0] == 0
    code, out, _ = _run(capsys, "--db", db, "devices", "list", "--format", "json")
    listed = {row["device"]: row["status"] for row in json.loads(out)}
    assert listed == {"kiosk-1": "active", "kiosk-2": "revoked"}
    code, _, err = _run(capsys, "--db", db, "devices", "revoke", "nobody")
    assert code == 2 and "no device 'nobody'" in err


def test_the_registry_keeps_each_devices_mode(
    db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    handheld = TestDevice("hh-1", "team-1", mode="inspector")
    legacy = tmp_path / "legacy.json"  # a record printed before it carried the mode: a kiosk
    legacy.write_text(json.dumps({k: v for k, v in TestDevice("kiosk-0", "shop-0").registration().items()
                                  if k != "mode"}))  # fmt: skip
    files = (str(K1.write_registration(tmp_path)), str(handheld.write_registration(tmp_path)), str(legacy))
    assert _run(capsys, "--db", db, "devices", "add", *files)[0] == 0
    _, out, _ = _run(capsys, "--db", db, "devices", "list", "--format", "json")
    assert {r["device"]: r["mode"] for r in json.loads(out)} == {
        "hh-1": "inspector", "kiosk-0": "kiosk", "kiosk-1": "kiosk"}  # fmt: skip
    _, out, _ = _run(capsys, "--db", db, "devices", "list")
    assert [line.split()[:3] for line in out.splitlines()] == [
        ["hh-1", "team-1", "inspector"], ["kiosk-0", "shop-0", "kiosk"], ["kiosk-1", "shop-1", "kiosk"],
    ]  # fmt: skip
    odd = tmp_path / "odd.json"
    odd.write_text(json.dumps({**K1.registration(), "mode": "drone"}))
    code, _, err = _run(capsys, "--db", db, "devices", "add", str(odd))
    assert code == 2 and "mode" in err


def test_bad_registration_records_are_refused(
    db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    garbled = tmp_path / "garbled.json"
    garbled.write_text("{not json")
    edited = tmp_path / "edited.json"
    edited.write_text(json.dumps({**K1.registration(), "fingerprint": "x" * 43}))
    missing = tmp_path / "missing.json"
    for path, message in ((garbled, "not JSON"), (edited, "disagree"), (missing, "cannot read")):
        code, _, err = _run(capsys, "--db", db, "devices", "add", str(path))
        assert code == 2 and message in err
    with open_store(db) as store:
        assert store.devices() == []


def _day_of_scans(db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    main(["--db", db, "devices", "add", str(K1.write_registration(tmp_path))])
    capsys.readouterr()
    ts = int(datetime(2026, 11, 20, 3, 0, tzinfo=UTC).timestamp() * 1000)  # 10:00 in Vietnam
    from kiosk.central.ingest import Processor
    from kiosk.central.registry import Registry

    with open_store(db) as store:
        processor = Processor(
            store=store,
            registry=Registry(store),
            authority_key=Ed25519PrivateKey.generate(),
            identities=OPENER,
        )
        processor.handle(K1.topic(), K1.token(1, ts, card="001093029317"))
        processor.handle(K1.topic(), K1.token(2, ts + 60_000, card="079123456789", format="cccd"))
        processor.flush()


def test_report_command(db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _day_of_scans(db, tmp_path, capsys)
    code, out, _ = _run(capsys, "--db", db, "report", "--date", "2026-11-20", "--lang", "en")
    assert code == 0 and "scans 2 (in 2, out 0), people 2" in out
    html = tmp_path / "r.html"
    assert (
        _run(capsys, "--db", db, "report", "--date", "2026-11-20", "--format", "html", "-o", str(html))[0]
        == 0
    )
    assert html.read_text().startswith("<!DOCTYPE html>")
    code, _, err = _run(capsys, "--db", db, "report", "--date", "2026-11-20", "--destination", "nowhere")
    assert code == 2 and "unknown destination" in err
    with pytest.raises(SystemExit) as bad_date:
        main(["--db", db, "report", "--date", "20/11/2026"])
    assert bad_date.value.code == 2


def test_trace_command(db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _day_of_scans(db, tmp_path, capsys)
    key_file = tmp_path / "hash.key"
    keys.write_secret(key_file, HASH_KEY)
    argv = ["--db", db, "trace", "--identity", "079123456789", "--from", "2026-11-20", "--to", "2026-11-21"]
    code, out, _ = _run(capsys, *argv, "--hash-key", str(key_file), "--output-format", "json")
    assert code == 0
    result = json.loads(out)
    assert [v["destination"] for v in result["visits"]] == ["shop-1"]
    assert len(result["contacts"]) == 1  # the national-card holder, a minute earlier
    # Central's hash does not depend on the card's format (--format picks schema-v1 forms only).
    code, out, _ = _run(capsys, *argv, "--hash-key", str(key_file), "--format", "national")
    assert code == 0 and "Visits (1)" in out
    code, _, err = _run(capsys, *argv[:-4], "--from", "2026-11-21", "--to", "2026-11-20")
    assert code == 2 and "--to must be after --from" in err


def test_ingest_without_an_authority_key_says_how_to_make_one(
    db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = _run(capsys, "--db", db, "ingest", "--key", str(tmp_path / "none.key"))
    assert code == 2 and "kiosk statuslist keygen" in err


def _signed_list(key: Ed25519PrivateKey) -> bytes:
    entries = [sl.Entry("001093029317", sl.Status("F1"))]
    payload = sl.build_payload(entries, version=7, issued=datetime(2026, 11, 20, tzinfo=UTC))
    return sl.sign_payload(payload, key)


def _retained(broker: Mosquitto, topic: str) -> bytes | None:
    got: list[bytes] = []
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id="test-reader", protocol=paho.MQTTv5)
    client.on_message = lambda _c, _u, m: got.append(bytes(m.payload))
    client.connect(broker.host, broker.port)
    client.subscribe(topic)
    client.loop_start()
    time.sleep(0.5)
    client.disconnect()
    client.loop_stop()
    return got[0] if got else None


@pytest.mark.broker
def test_statuslist_publish(mosquitto: Mosquitto, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    authority = Ed25519PrivateKey.generate()
    pub = tmp_path / "authority.pem"
    pub.write_text(keys.public_pem(authority.public_key()))
    forged = tmp_path / "forged.jws"
    forged.write_bytes(_signed_list(Ed25519PrivateKey.generate()))
    code, _, err = _run(capsys, "statuslist", "publish", str(forged), "--broker", mosquitto.url,
                        "--authority-keys", str(pub))  # fmt: skip
    assert code == 2 and "refused" in err
    assert _retained(mosquitto, "kiosk/v1/statuslist") is None
    good = tmp_path / "list.jws"
    good.write_bytes(_signed_list(authority) + b"\n")
    code, out, _ = _run(capsys, "statuslist", "publish", str(good), "--broker", mosquitto.url,
                        "--authority-keys", str(pub))  # fmt: skip
    assert code == 0 and "version 7 with 1 entries" in out
    assert _retained(mosquitto, "kiosk/v1/statuslist") == good.read_bytes().strip()


@pytest.mark.broker
def test_trustlist_publish(mosquitto: Mosquitto, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    authority = tmp_path / "authority.key"
    keys.generate_device_key(authority)
    pub = tmp_path / "authority.pem"
    pub.write_text(keys.public_pem(keys.load_private_key(authority).public_key()))
    now = datetime.now(UTC)
    signer = cardmaker.make_dcc_signer(not_before=now - timedelta(days=1), not_after=now + timedelta(days=9))
    cardmaker.save_signer(signer, tmp_path / "dsc.key", tmp_path / "dsc.pem")
    token = tmp_path / "trustlist.jws"
    assert _run(capsys, "trustlist", "sign", str(tmp_path / "dsc.pem"), "--version", "4",
                "--authority-key", str(authority), "-o", str(token))[0] == 0  # fmt: skip
    other = tmp_path / "other.pem"
    other.write_text(keys.public_pem(Ed25519PrivateKey.generate().public_key()))
    code, _, err = _run(capsys, "trustlist", "publish", str(token), "--broker", mosquitto.url,
                        "--authority-keys", str(other))  # fmt: skip
    assert code == 2 and "trust list" in err
    assert _retained(mosquitto, "kiosk/v1/trustlist") is None
    code, out, _ = _run(capsys, "trustlist", "publish", str(token), "--broker", mosquitto.url,
                        "--authority-keys", str(pub))  # fmt: skip
    assert code == 0 and "version 4 with 1 certificates" in out
    assert _retained(mosquitto, "kiosk/v1/trustlist") == token.read_bytes().strip()
    missing = str(tmp_path / "missing.jws")
    code, _, err = _run(capsys, "trustlist", "publish", missing, "--broker", mosquitto.url)
    assert code == 2 and "cannot read" in err


@pytest.mark.broker
def test_ingest_process_stores_and_stops_on_sigterm(mosquitto: Mosquitto, tmp_path: Path, db: str) -> None:
    main(["--db", db, "devices", "add", str(K1.write_registration(tmp_path))])
    key, seal, hashes = tmp_path / "authority.key", tmp_path / "seal.pem", tmp_path / "hash.key"
    keys.generate_device_key(key)
    keys.write_secret(seal, SEALING_KEY.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
    keys.write_secret(hashes, HASH_KEY)
    argv = [sys.executable, "-m", "kiosk.central.cli", "--db", db, "ingest", "--broker", mosquitto.url,
            "--key", str(key), "--sealing-key", str(seal), "--hash-key", str(hashes)]  # fmt: skip
    proc = subprocess.Popen(
        argv, stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONWARNINGS": "error"}
    )
    try:
        assert proc.stderr is not None
        assert "ingesting" in proc.stderr.readline()
        client = paho.Client(CallbackAPIVersion.VERSION2, client_id="test-kiosk", protocol=paho.MQTTv5)
        client.connect(mosquitto.host, mosquitto.port)
        client.loop_start()
        token = K1.token(1, card="079123456789", format="cccd")
        client.publish(K1.topic(), token, qos=1).wait_for_publish(10)
        client.publish(K1.topic(), b"forged", qos=1).wait_for_publish(10)
        client.disconnect()
        client.loop_stop()
        with open_store(db) as store:
            deadline = time.monotonic() + 20
            while store.count_events() < 1 and time.monotonic() < deadline:
                time.sleep(0.1)
            assert store.count_events() == 1
            assert [e.identity for e in store.events(0, 2**53)] == [OPENER.hash("079123456789")]
        time.sleep(0.3)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0
    assert "2 received, 1 stored, 0 duplicates, rejected {'bad_signature': 1}" in err


def test_report_command_with_inspections(db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    handheld = TestDevice("handheld-1", "team-1")
    main(["--db", db, "devices", "add", str(handheld.write_registration(tmp_path))])
    _day_of_scans(db, tmp_path, capsys)
    ts = int(datetime(2026, 11, 20, 3, 5, tzinfo=UTC).timestamp() * 1000)  # 10:05 in Vietnam
    from kiosk.central.ingest import Processor
    from kiosk.central.registry import Registry

    with open_store(db) as store:
        processor = Processor(
            store=store,
            registry=Registry(store),
            authority_key=Ed25519PrivateKey.generate(),
            identities=OPENER,
        )
        processor.handle(K1.topic(), K1.token(3, ts, kind="inspection", reason="inspector_card_ok",
                                              format="inspector", card="insp-1", direction=None))  # fmt: skip
        processor.handle(handheld.topic(), handheld.token(1, ts, kind="inspection", verdict="fail",
                                                          reason="status_blocked", card="001093029317",
                                                          direction=None))  # fmt: skip
        processor.handle(handheld.topic(), handheld.token(2, ts, kind="no_qr", verdict="fail", reason="no_qr",
                                                          format="unknown", direction=None))  # fmt: skip
        processor.flush()
    code, out, _ = _run(capsys, "--db", db, "report", "--date", "2026-11-20", "--lang", "en")
    assert code == 0 and "scans 2 (in 2, out 0), people 2" in out  # the inspector is no visitor
    assert "inspection 10:05 on kiosk-1 by hmac:" in out and ": 2 scans so far, 0 old posters" in out
    assert "handheld-1 (team-1, active): 1 checks, 0 passed, violations status_blocked 1" in out
    assert "team-1, open" not in out  # a handheld's team is not a venue
    code, out, _ = _run(capsys, "--db", db, "report", "--date", "2026-11-20", "--destination", "team-1",
                        "--format", "csv")  # fmt: skip
    assert code == 0 and "2026-11-20,team-1,street:handheld-1,no_qr,1" in out
    assert "2026-11-20,,street_total,checks,1" in out and ",shop-1," not in out
