"""The uplink against a locked-down mosquitto: passwords, ACLs per device, TLS with client certificates."""

from __future__ import annotations

import datetime as dt
import ipaddress
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from kiosk.config import TlsConfig, UplinkConfig
from kiosk.errors import UplinkError
from kiosk.keys import write_secret
from kiosk.spool import Spool
from kiosk.uplink import Uplink
from tests.support import broker as broker_support
from tests.support.broker import BrokerFactory, Mosquitto, TlsListener
from tests.test_uplink import AUTHORITY_KEYS, draft, open_spool, uplink_settings, wait_until

mosquitto_factory = broker_support.mosquitto_factory  # fixtures are found by module attribute name

pytestmark = pytest.mark.broker

ACL = """\
pattern write kiosk/v1/+/%u/event
pattern write kiosk/v1/+/%u/state
pattern read kiosk/v1/+/%u/ack
pattern read kiosk/v1/statuslist

user central
topic readwrite kiosk/v1/#
"""
USERS = {"kiosk-1": "pw-kiosk-1", "kiosk-2": "pw-kiosk-2", "central": "pw-central"}


def client_as(broker: Mosquitto, user: str, *, port: int | None = None) -> mqtt.Client:
    """A connected, looping MQTT 5 client logged in as `user`."""
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"test-{user}", protocol=mqtt.MQTTv5)
    client.username_pw_set(user, USERS[user])
    connected = threading.Event()
    client.on_connect = lambda *_: connected.set()
    client.connect(broker.host, port or broker.port)
    client.loop_start()
    assert connected.wait(10), "test client did not connect"
    return client


def close_client(client: mqtt.Client) -> None:
    client.disconnect()
    client.loop_stop()


class Inbox:
    """A subscriber that records every message it receives."""

    def __init__(self, client: mqtt.Client, topic: str) -> None:
        self.messages: list[mqtt.MQTTMessage] = []
        self.suback: list[object] = []
        subscribed = threading.Event()
        client.on_message = lambda _c, _u, msg: self.messages.append(msg)
        client.on_subscribe = lambda _c, _u, _m, codes, _p: (self.suback.extend(codes), subscribed.set())
        client.subscribe(topic, qos=1)
        assert subscribed.wait(10)


@pytest.fixture
def locked_broker(mosquitto_factory: BrokerFactory) -> Mosquitto:
    return mosquitto_factory(users=USERS, acl=ACL)


@pytest.fixture
def clients() -> Iterator[Callable[..., mqtt.Client]]:
    made: list[mqtt.Client] = []

    def make(broker: Mosquitto, user: str) -> mqtt.Client:
        made.append(client_as(broker, user))
        return made[-1]

    yield make
    for client in made:
        close_client(client)


@pytest.fixture
def closing() -> Iterator[list[Uplink | Spool]]:
    things: list[Uplink | Spool] = []
    yield things
    for thing in things:
        thing.close()


def password_file(tmp_path: Path, user: str) -> Path:
    path = tmp_path / f"{user}.password"
    write_secret(path, USERS[user].encode() + b"\n")
    return path


def test_a_device_cannot_publish_as_another(locked_broker: Mosquitto, clients) -> None:
    watcher = Inbox(clients(locked_broker, "central"), "kiosk/v1/#")
    kiosk = clients(locked_broker, "kiosk-1")
    codes: dict[int, object] = {}
    kiosk.on_publish = lambda _c, _u, mid, rc, _p: codes.__setitem__(mid, rc)
    own = kiosk.publish("kiosk/v1/venue-1/kiosk-1/event", b"mine", qos=1)
    forged = kiosk.publish("kiosk/v1/venue-1/kiosk-2/event", b"forged", qos=1)
    wait_until(lambda: len(codes) == 2, 10, "two PUBACKs")
    assert not codes[own.mid].is_failure  # type: ignore[attr-defined]
    assert codes[forged.mid] == 135  # "Not authorized"
    time.sleep(0.3)
    assert [m.payload for m in watcher.messages] == [b"mine"]


def test_a_device_cannot_read_another_devices_ack(locked_broker: Mosquitto, clients) -> None:
    central = clients(locked_broker, "central")
    central.publish("kiosk/v1/venue-1/kiosk-2/ack", b"for kiosk-2", qos=1, retain=True).wait_for_publish(10)
    nosy = Inbox(clients(locked_broker, "kiosk-1"), "kiosk/v1/venue-1/kiosk-2/ack")
    central.publish("kiosk/v1/venue-1/kiosk-2/ack", b"again", qos=1).wait_for_publish(10)
    time.sleep(0.5)
    # mosquitto 2.0 grants the subscription (newer versions answer 0x87) but never delivers.
    assert nosy.messages == []
    assert nosy.suback[0] in (1, 0x87)


def test_uplink_with_password_file_and_acls(
    locked_broker: Mosquitto, tmp_path: Path, clients, closing: list[Uplink | Spool]
) -> None:
    watcher = Inbox(clients(locked_broker, "central"), "kiosk/v1/+/+/event")
    spool = open_spool(tmp_path / "spool.db")
    closing.append(spool)
    settings = uplink_settings(locked_broker, password_file=password_file(tmp_path, "kiosk-1"))
    uplink = Uplink(settings, spool=spool, authority_keys=AUTHORITY_KEYS)
    closing.insert(0, uplink)
    uplink.start()
    for n in range(10):
        spool.record(draft(n))
    uplink.wake()
    wait_until(lambda: len(watcher.messages) == 10, 10, "10 events through the ACL")
    assert uplink.stats().rejected == {}  # the ack and status-list subscriptions were allowed


def test_uplink_under_another_devices_id_is_refused(
    locked_broker: Mosquitto,
    tmp_path: Path,
    clients,
    closing: list[Uplink | Spool],
    caplog: pytest.LogCaptureFixture,
) -> None:
    watcher = Inbox(clients(locked_broker, "central"), "kiosk/v1/+/+/event")
    spool = open_spool(tmp_path / "spool.db", device="kiosk-2")
    closing.append(spool)
    settings = uplink_settings(
        locked_broker, username="kiosk-1", password_file=password_file(tmp_path, "kiosk-1")
    )
    uplink = Uplink(settings, spool=spool, authority_keys=AUTHORITY_KEYS)
    closing.insert(0, uplink)
    uplink.start()
    spool.record(draft())
    uplink.wake()
    wait_until(lambda: uplink.stats().broker_refused >= 1, 10, "the broker to refuse the event")
    assert "check that its ACL lets user 'kiosk-1' write" in caplog.text
    assert watcher.messages == [] and spool.unsent_count() == 1  # refused, and still kept


def test_wrong_password_is_a_clear_error(locked_broker: Mosquitto, tmp_path: Path, closing) -> None:
    (tmp_path / "bad").mkdir()
    path = tmp_path / "bad" / "kiosk-1.password"
    write_secret(path, b"not the password")
    spool = open_spool(tmp_path / "spool.db")
    closing.append(spool)
    uplink = Uplink(uplink_settings(locked_broker, password_file=path), spool=spool)
    closing.insert(0, uplink)
    uplink.start()
    wait_until(lambda: uplink.stats().connect_failures >= 1, 10, "a refused connection")
    error = uplink.stats().last_error or ""
    assert "refused the connection" in error and "password_file" in error
    assert not uplink.connected


# -- TLS -----------------------------------------------------------------------------


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _cert(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: tuple[str, ec.EllipticCurvePrivateKey] | None,
    *,
    ca: bool,
) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    issuer_name, issuer_key = issuer if issuer else (subject, key)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(_name(issuer_name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ca:
        usage = x509.KeyUsage(False, False, False, False, False, True, True, False, False)
        builder = builder.add_extension(usage, critical=True)
        builder = builder.add_extension(
            x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False
        )
    else:
        san = x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])
        builder = builder.add_extension(san, critical=False)
    if issuer:
        aki = x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key())
        builder = builder.add_extension(aki, critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def _write(
    folder: Path, name: str, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey
) -> tuple[Path, Path]:
    cert_path, key_path = folder / f"{name}.crt", folder / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    write_secret(key_path, pem)
    return cert_path, key_path


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A test CA with a broker and a device certificate, and an unrelated CA."""
    folder = tmp_path_factory.mktemp("pki")
    files: dict[str, Path] = {}
    for ca_name in ("ca", "other-ca"):
        key = ec.generate_private_key(ec.SECP256R1())
        files[ca_name], _ = _write(folder, ca_name, _cert(f"test {ca_name}", key, None, ca=True), key)
        if ca_name == "ca":
            ca = (f"test {ca_name}", key)
    for leaf in ("broker", "kiosk-1"):
        key = ec.generate_private_key(ec.SECP256R1())
        files[f"{leaf}.crt"], files[f"{leaf}.key"] = _write(folder, leaf, _cert(leaf, key, ca, ca=False), key)
    return files


@pytest.fixture
def tls_broker(mosquitto_factory: BrokerFactory, pki: dict[str, Path]) -> Mosquitto:
    listener = TlsListener(ca_file=pki["ca"], cert_file=pki["broker.crt"], key_file=pki["broker.key"])
    return mosquitto_factory(tls=listener)


def _tls_uplink(broker: Mosquitto, spool: Spool, tls: TlsConfig) -> Uplink:
    settings = UplinkConfig(broker=broker.tls_url, tls=tls, backoff_min_s=0.05, backoff_max_s=0.5)
    return Uplink(settings, spool=spool, authority_keys=AUTHORITY_KEYS)


def test_tls_with_a_client_certificate(
    tls_broker: Mosquitto, pki: dict[str, Path], tmp_path: Path, closing, mosquitto_factory: BrokerFactory
) -> None:
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    client.connect(tls_broker.host, tls_broker.port)  # central reads on the plain listener
    client.loop_start()
    try:
        watcher = Inbox(client, "kiosk/v1/+/+/event")
        spool = open_spool(tmp_path / "spool.db")
        closing.append(spool)
        tls = TlsConfig(ca_file=pki["ca"], cert_file=pki["kiosk-1.crt"], key_file=pki["kiosk-1.key"])
        uplink = _tls_uplink(tls_broker, spool, tls)
        closing.insert(0, uplink)
        uplink.start()
        spool.record(draft())
        uplink.wake()
        wait_until(lambda: len(watcher.messages) == 1, 10, "an event over TLS")
    finally:
        close_client(client)


def test_tls_with_the_wrong_ca_is_a_clear_error(
    tls_broker: Mosquitto, pki: dict[str, Path], tmp_path: Path, closing, caplog: pytest.LogCaptureFixture
) -> None:
    spool = open_spool(tmp_path / "spool.db")
    closing.append(spool)
    tls = TlsConfig(ca_file=pki["other-ca"], cert_file=pki["kiosk-1.crt"], key_file=pki["kiosk-1.key"])
    uplink = _tls_uplink(tls_broker, spool, tls)
    closing.insert(0, uplink)
    uplink.start()
    wait_until(lambda: uplink.stats().connect_failures >= 1, 15, "a failed TLS handshake")
    error = uplink.stats().last_error or ""
    assert "does not verify" in error and str(pki["other-ca"]) in error and "uplink.tls.ca_file" in error
    assert "ERROR" in caplog.text and not uplink.connected
    started = time.monotonic()
    uplink.close(grace_s=1)
    assert time.monotonic() - started < 5  # no hang


def test_tls_files_that_do_not_exist(tmp_path: Path, closing) -> None:
    spool = open_spool(tmp_path / "spool.db")
    closing.append(spool)
    tls = TlsConfig(ca_file=tmp_path / "missing-ca.crt")
    settings = UplinkConfig(broker="mqtts://127.0.0.1:1", tls=tls)
    with pytest.raises(UplinkError, match="cannot load the TLS files"):
        Uplink(settings, spool=spool)


def test_a_new_device_id_is_not_held_up_by_the_old_ids_events(
    locked_broker: Mosquitto, tmp_path: Path, clients, closing: list[Uplink | Spool]
) -> None:
    # `kiosk provision --force` gives a new key and with it a new device id; the spool
    # still holds the old id's unsent events, which the broker's ACL would refuse.
    with open_spool(tmp_path / "spool.db", device="kiosk-2") as old:
        for n in range(4):
            old.record(draft(n))
    watcher = Inbox(clients(locked_broker, "central"), "kiosk/v1/+/+/event")
    spool = open_spool(tmp_path / "spool.db", device="kiosk-1")
    closing.append(spool)
    settings = uplink_settings(locked_broker, password_file=password_file(tmp_path, "kiosk-1"))
    uplink = Uplink(settings, spool=spool, authority_keys=AUTHORITY_KEYS)
    closing.insert(0, uplink)
    uplink.start()
    for n in range(5):
        spool.record(draft(n))
    uplink.wake()
    wait_until(lambda: len(watcher.messages) == 5, 10, "the new id's 5 events")
    assert {m.topic for m in watcher.messages} == {"kiosk/v1/venue-1/kiosk-1/event"}
    wait_until(lambda: spool.unsent_count() == 0, 10, "the PUBACKs to be marked")
    assert uplink.stats().broker_refused == 0  # the old id's events were never offered
    assert spool.stranded() == {"kiosk-2": 4}  # kept, not dropped
    assert any("4 events of a previous device id 'kiosk-2'" in alarm for alarm in spool.alarms())
