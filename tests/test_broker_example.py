"""The authority's example broker (provisioning/) against devices that try to act as another.

A real mosquitto runs provisioning/mosquitto.conf and acl.example (the fixture lives in
test_install_sh); names reserved for central are refused by every tool that names devices.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from kiosk.central.ingest import Ingest, Processor, Topics
from kiosk.central.mqtt import BrokerSettings
from kiosk.central.registry import Registry, parse_registration
from kiosk.central.store import open_store
from kiosk.errors import ProvisionError, RegistryError
from kiosk.names import RESERVED_NAMES_FILE, reserved_pattern, reserved_patterns
from kiosk.provision import ProvisionRequest, check_request
from tests.support.broker import HOST
from tests.support.central import TestDevice
from tests.test_install_sh import PROVISIONING, example_broker, sh

__all__ = ["example_broker"]  # the fixture, found by name

PASSWORDS = {"kiosk-0001": "pw1", "central": "pwc"}
# Central's share group is a secret of the authority's (mosquitto 2.0 grants any subscription).
SECRET_GROUP = "central-5f0c1e9a7d3b"


class Client:
    """A connected MQTT 5 client that records its messages and whether it was disconnected."""

    def __init__(self, broker: dict[str, object], client_id: str, *, user: str | None = None,
                 cert: str | None = None, listener: str = "8883") -> None:  # fmt: skip
        ports, ca = broker["ports"], broker["ca"]
        assert isinstance(ports, dict) and isinstance(ca, Path)
        self.messages: list[mqtt.MQTTMessage] = []
        self.disconnected = threading.Event()
        connected = threading.Event()
        self.mqtt = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
        if user:
            self.mqtt.username_pw_set(user, PASSWORDS[user])
        if listener != "1883":
            certs = {"certfile": str(ca / f"{cert}.crt"), "keyfile": str(ca / f"{cert}.key")} if cert else {}
            self.mqtt.tls_set(ca_certs=str(ca / "ca.crt"), **certs)
        self.mqtt.on_connect = lambda _c, _u, _f, rc, _p: connected.set() if not rc.is_failure else None
        self.mqtt.on_disconnect = lambda *_: self.disconnected.set()
        self.mqtt.on_message = lambda _c, _u, message: self.messages.append(message)
        self.mqtt.reconnect_delay_set(60, 60)  # a kicked client stays kicked for the test to see
        self.mqtt.connect(HOST, ports[listener])
        self.mqtt.loop_start()
        assert connected.wait(10), f"{client_id} did not connect"

    def subscribe(self, topic: str) -> None:
        """Subscribe and wait for the SUBACK."""
        done = threading.Event()
        self.mqtt.on_subscribe = lambda *_: done.set()
        self.mqtt.subscribe(topic, qos=1)
        assert done.wait(10)

    def close(self) -> None:
        """Disconnect and stop the network thread."""
        self.mqtt.disconnect()
        self.mqtt.loop_stop()


@pytest.fixture
def clients() -> Iterator[Callable[..., Client]]:
    made: list[Client] = []

    def make(*args: object, **kwargs: object) -> Client:
        made.append(Client(*args, **kwargs))  # type: ignore[arg-type]
        return made[-1]

    yield make
    for client in made:
        client.close()


# --- the client id is the authenticated name --------------------------------------------------


@pytest.mark.broker
def test_a_device_cannot_kick_another_device(example_broker: dict[str, object], clients) -> None:
    victim = clients(example_broker, "kiosk-0002", cert="kiosk-0002", listener="8884")
    clients(example_broker, "kiosk-0002", user="kiosk-0001")  # the victim's client id, another login
    time.sleep(1)
    assert not victim.disconnected.is_set()
    # The same certificate, whatever client id it asks for, is the same client: it takes over.
    clients(example_broker, "something-else", cert="kiosk-0002", listener="8884")
    assert victim.disconnected.wait(5)


@pytest.mark.broker
def test_a_device_cannot_kick_centrals_ingest(example_broker: dict[str, object], clients) -> None:
    central = clients(example_broker, "central-1", user="central", listener="1883")
    clients(example_broker, "central-1", user="kiosk-0001")
    clients(example_broker, "central-1", cert="kiosk-0002", listener="8884")
    time.sleep(1)
    assert not central.disconnected.is_set()


# --- no device reads events, shared subscriptions included ------------------------------------


@pytest.fixture
def ingest(example_broker: dict[str, object], tmp_path: Path) -> Iterator[str]:
    """Central's ingest on the loopback listener, with a secret share group, storing to SQLite."""
    ports = example_broker["ports"]
    assert isinstance(ports, dict)
    password = tmp_path / "central.password"
    password.write_text(PASSWORDS["central"] + "\n")
    password.chmod(0o600)
    broker = BrokerSettings(url=f"mqtt://{HOST}:{ports['1883']}", username="central", password_file=password)
    url = f"sqlite://{tmp_path}/central.sqlite3"
    with open_store(url) as store:
        Registry(store).add(parse_registration(json.dumps(SENDER.registration())))
        store.commit()
    stop, ready = threading.Event(), threading.Event()
    thread = threading.Thread(target=_run_ingest, args=(url, broker, stop, ready), name="test-ingest")
    thread.start()
    assert ready.wait(15)
    yield url
    stop.set()
    thread.join(20)


def _run_ingest(url: str, broker: BrokerSettings, stop: threading.Event, ready: threading.Event) -> None:
    with open_store(url) as store:  # SQLite wants the thread that opened it
        authority = Ed25519PrivateKey.generate()
        processor = Processor(store=store, registry=Registry(store), authority_key=authority,
                              topics=Topics(share_group=SECRET_GROUP))  # fmt: skip
        Ingest(processor=processor, broker=broker, wait_s=0.02).run(stop, ready=ready)


SENDER = TestDevice("kiosk-0002", "cho-ben-thanh")


@pytest.mark.broker
def test_a_device_in_centrals_share_group_gets_nothing_and_central_stores_all(
    example_broker: dict[str, object], ingest: str, clients
) -> None:
    thief = clients(example_broker, "kiosk-0001", user="kiosk-0001")
    for topic in ("$share/central/kiosk/v1/+/+/event", "kiosk/v1/+/+/event", "$share/x/kiosk/v1/#"):
        thief.subscribe(topic)
    sender = clients(example_broker, "kiosk-0002", cert="kiosk-0002", listener="8884")
    for seq in range(1, 41):
        sender.mqtt.publish(SENDER.topic(), SENDER.token(seq), qos=1).wait_for_publish(10)
    deadline = time.monotonic() + 15
    while _stored(ingest) < 40 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _stored(ingest) == 40
    assert thief.messages == []


def _stored(url: str) -> int:
    with open_store(url) as store:
        return store.count_events()


# --- reserved names -----------------------------------------------------------------------------


RESERVED = ["central", "central-1", "central.backup", "kiosk-central", "kiosk-central-a", "authority", "root"]
FREE = ["kiosk-0001", "centralia-market", "kiosk-centralx", "authoritative", "cho-ben-thanh-1"]


def test_the_list_is_one_file_of_patterns() -> None:
    assert "central-*" in reserved_patterns()
    assert all(not p.startswith("#") for p in reserved_patterns())
    assert RESERVED_NAMES_FILE.is_file()


@pytest.mark.parametrize("name", RESERVED + FREE)
def test_python_and_the_test_ca_script_agree(name: str, tmp_path: Path) -> None:
    done = sh("bash", PROVISIONING / "make-test-ca.sh", "--out", tmp_path, name)
    if name in RESERVED:
        assert reserved_pattern(name) is not None
        assert done.returncode == 2 and "reserved for the authority's services" in done.stderr
        assert not (tmp_path / f"{name}.crt").exists()
    else:
        assert reserved_pattern(name) is None
        assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("flag", ["device_id", "username"])
def test_provision_refuses_a_reserved_name(flag: str, tmp_path: Path) -> None:
    names: dict = {flag: "Central"}
    request = ProvisionRequest(config_path=tmp_path / "kiosk.toml", destination="cho-ben-thanh",
                               venue_name="Chợ", broker="mqtt://127.0.0.1:1883", **names)  # fmt: skip
    with pytest.raises(ProvisionError, match="reserved for the authority's services"):
        check_request(request)


def test_centrals_registry_refuses_a_reserved_device() -> None:
    record = TestDevice("central-2", "cho-ben-thanh").registration()
    with pytest.raises(RegistryError, match="reserved"):
        parse_registration(json.dumps(record))
