"""The one way every client reaches a broker (kiosk.broker): URL, credentials, TLS, connect-and-wait."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from kiosk import broker
from kiosk.broker import BrokerAddress, BrokerSettings
from kiosk.config import TlsConfig, UplinkConfig
from kiosk.errors import UplinkError
from kiosk.keys import write_secret
from tests.support import broker as broker_support
from tests.support.broker import BrokerFactory, Mosquitto, free_port
from tests.test_uplink_security import pki, tls_broker

mosquitto_factory = broker_support.mosquitto_factory  # fixtures are found by module attribute name
__all__ = ["pki", "tls_broker"]


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("mqtt://broker.example", BrokerAddress("broker.example", 1883, False)),
        ("mqtts://broker.example", BrokerAddress("broker.example", 8883, True)),
        ("mqtts://127.0.0.1:18883", BrokerAddress("127.0.0.1", 18883, True)),
    ],
)
def test_a_broker_url_gives_host_port_and_tls(url: str, expected: BrokerAddress) -> None:
    assert BrokerAddress.parse(url) == expected


@pytest.mark.parametrize(
    "url", ["http://broker", "mqtt://", "broker:1883", "mqtt://host:99999", "mqtt://h:x"]
)
def test_a_bad_broker_url_is_a_clear_error(url: str) -> None:
    with pytest.raises(UplinkError, match="broker URL"):
        BrokerAddress.parse(url)


def test_a_device_logs_in_as_itself_when_it_has_a_password(tmp_path: Path) -> None:
    with_password = UplinkConfig(password_file=tmp_path / "pw")
    assert BrokerSettings.for_device(with_password, "kiosk-1").username == "kiosk-1"
    assert BrokerSettings.for_device(UplinkConfig(), "kiosk-1").username is None
    named = UplinkConfig(password_file=tmp_path / "pw", username="gate-a")
    assert BrokerSettings.for_device(named, "kiosk-1").username == "gate-a"


def test_a_password_needs_a_username_and_a_private_file(tmp_path: Path) -> None:
    path = tmp_path / "pw"
    with pytest.raises(UplinkError, match="needs a username: set --username"):
        BrokerSettings(password_file=path).password()
    path.write_text("secret\n")
    path.chmod(0o644)
    with pytest.raises(UplinkError, match="broker password"):
        BrokerSettings(username="central", password_file=path).password()
    path.chmod(0o600)
    assert BrokerSettings(username="central", password_file=path).password() == "secret"


def test_a_client_certificate_needs_its_key(pki: dict[str, Path]) -> None:
    half = BrokerSettings(url="mqtts://127.0.0.1", ca_file=pki["ca"], cert_file=pki["kiosk-1.crt"])
    with pytest.raises(UplinkError, match="needs both files: set --cert and --cert-key"):
        broker.tls_context(half)
    device = BrokerSettings.for_device(UplinkConfig(broker="mqtts://127.0.0.1"), "kiosk-1")
    with pytest.raises(UplinkError, match=r"uplink\.tls\.cert_file and uplink\.tls\.key_file"):
        broker.tls_context(replace(device, key_file=pki["kiosk-1.key"]))


def test_tls_files_that_do_not_load(pki: dict[str, Path], tmp_path: Path) -> None:
    wrong_key = tmp_path / "other.key"
    write_secret(wrong_key, pki["broker.key"].read_bytes())
    mismatched = BrokerSettings(ca_file=pki["ca"], cert_file=pki["kiosk-1.crt"], key_file=wrong_key)
    with pytest.raises(UplinkError, match="the key fits the certificate"):
        broker.tls_context(mismatched)


def _try(settings: BrokerSettings) -> None:
    client = broker.new_client(settings, "test-client")
    broker.connect(client, settings, timeout_s=5)
    broker.close(client)


@pytest.mark.broker
def test_the_client_certificate_rule_against_mosquitto(tls_broker: Mosquitto, pki: dict[str, Path]) -> None:
    # The listener requires a certificate signed by the test CA: the same settings work for
    # a kiosk (from its uplink config) and for central (its command-line flags).
    tls = TlsConfig(ca_file=pki["ca"], cert_file=pki["kiosk-1.crt"], key_file=pki["kiosk-1.key"])
    device = BrokerSettings.for_device(UplinkConfig(broker=tls_broker.tls_url, tls=tls), "kiosk-1")
    _try(device)
    central = BrokerSettings(
        url=tls_broker.tls_url, ca_file=pki["ca"], cert_file=pki["kiosk-1.crt"], key_file=pki["kiosk-1.key"]
    )
    _try(central)
    without = replace(device, cert_file=None, key_file=None)
    with pytest.raises(UplinkError) as refused:
        _try(without)
    assert "closed the connection before accepting it" in str(refused.value)
    assert "the client certificate (uplink.tls.cert_file" in str(refused.value)
    # Over plain MQTT the TLS files are not used at all.
    _try(replace(central, url=tls_broker.url))


@pytest.mark.broker
def test_an_untrusted_broker_certificate_is_named(tls_broker: Mosquitto, pki: dict[str, Path]) -> None:
    settings = BrokerSettings(url=tls_broker.tls_url, ca_file=pki["other-ca"])
    with pytest.raises(UplinkError, match="certificate is not trusted") as untrusted:
        _try(settings)
    assert str(pki["other-ca"]) in str(untrusted.value) and "--ca" in str(untrusted.value)


def test_nothing_listening_is_a_clear_error() -> None:
    with pytest.raises(UplinkError, match=r"cannot reach .* is the broker running"):
        _try(BrokerSettings(url=f"mqtt://127.0.0.1:{free_port()}"))


@pytest.mark.broker
def test_a_refused_login_names_the_settings(mosquitto_factory: BrokerFactory, tmp_path: Path) -> None:
    server = mosquitto_factory(users={"central": "right"})
    path = tmp_path / "pw"
    write_secret(path, b"wrong")
    with pytest.raises(UplinkError, match=r"refused the connection: .*check --username and --password-file"):
        _try(BrokerSettings(url=server.url, username="central", password_file=path))
