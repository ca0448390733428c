"""Ingest through a real mosquitto: a shared subscription split over two instances, retained acks."""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import paho.mqtt.client as paho
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from paho.mqtt.enums import CallbackAPIVersion

from kiosk import jws
from kiosk.central.ingest import Backoff, Ingest, IngestOptions, Processor
from kiosk.central.mqtt import BrokerSettings
from kiosk.central.registry import Registry, parse_registration
from kiosk.central.store import open_store
from kiosk.errors import UplinkError
from tests.support import broker as broker_support
from tests.support import central as central_support
from tests.support import postgres as postgres_support
from tests.support.broker import BrokerFactory, Mosquitto
from tests.support.central import TestDevice

pytestmark = pytest.mark.broker

mosquitto = broker_support.mosquitto
mosquitto_factory = broker_support.mosquitto_factory
postgres_server = postgres_support.postgres_server
postgres_url = postgres_support.postgres_url
store_url = central_support.store_url

AUTHORITY = Ed25519PrivateKey.generate()
DEVICES = [TestDevice(f"kiosk-{n}", f"shop-{n % 2}") for n in range(3)]


def _register(url: str) -> None:
    with open_store(url) as store:
        registry = Registry(store)
        for device in DEVICES:
            registry.add(parse_registration(json.dumps(device.registration())))
        store.commit()


class Instance:
    """One ingest running in a thread with its own database connection."""

    def __init__(self, broker: BrokerSettings, db: str) -> None:
        self.stop, self.ready = threading.Event(), threading.Event()
        self.processor: Processor | None = None
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(broker, db), name="test-ingest")
        self._thread.start()

    def _run(self, broker: BrokerSettings, db: str) -> None:
        try:
            with open_store(db) as store:
                options = IngestOptions(resend_after_s=0.5)
                self.processor = Processor(
                    store=store, registry=Registry(store), authority_key=AUTHORITY, options=options
                )
                backoff = Backoff(0.1, 0.3)
                ingest = Ingest(processor=self.processor, broker=broker, wait_s=0.02, backoff=backoff)
                ingest.run(self.stop, ready=self.ready)
        except BaseException as e:
            self.error = e
            self.ready.set()

    def close(self) -> None:
        self.stop.set()
        self._thread.join(timeout=20)
        assert not self._thread.is_alive()


@pytest.fixture
def instances() -> Iterator[Callable[[BrokerSettings, str], Instance]]:
    made: list[Instance] = []

    def start(broker: BrokerSettings, db: str) -> Instance:
        made.append(Instance(broker, db))
        assert made[-1].ready.wait(15)
        return made[-1]

    yield start
    for instance in made:
        instance.close()


def _publisher(broker: Mosquitto) -> paho.Client:
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id="test-publisher", protocol=paho.MQTTv5)
    client.max_queued_messages_set(0)
    client.max_inflight_messages_set(100)
    client.connect(broker.host, broker.port)
    client.loop_start()
    return client


def _publish_all(broker: Mosquitto, messages: list[tuple[str, bytes]]) -> None:
    client = _publisher(broker)
    try:
        infos = [client.publish(topic, payload, qos=1) for topic, payload in messages]
        for info in infos:
            info.wait_for_publish(timeout=30)
    finally:
        client.disconnect()
        client.loop_stop()


def _retained_acks(broker: Mosquitto) -> dict[str, dict[str, object]]:
    got: dict[str, dict[str, object]] = {}
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id="test-ack-reader", protocol=paho.MQTTv5)

    def on_message(_c: paho.Client, _u: object, message: paho.MQTTMessage) -> None:
        body = json.loads(jws.verify(bytes(message.payload), AUTHORITY.public_key()).payload)
        got[body["device"]] = body

    client.on_message = on_message
    client.connect(broker.host, broker.port)
    client.subscribe("kiosk/v1/+/+/ack", qos=1)
    client.loop_start()
    time.sleep(0.5)
    client.disconnect()
    client.loop_stop()
    return got


def _wait_for(condition: Callable[[], bool], timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def test_two_instances_on_a_shared_subscription_store_every_event_once(
    mosquitto: Mosquitto, store_url: str, instances: Callable[[BrokerSettings, str], Instance]
) -> None:
    _register(store_url)
    settings = BrokerSettings(url=mosquitto.url)
    first, second = instances(settings, store_url), instances(settings, store_url)
    per_device = 200
    messages = [(d.topic(), d.token(seq)) for d in DEVICES for seq in range(1, per_device + 1)]
    random.Random(8).shuffle(messages)
    messages += messages[:50]  # at-least-once: some arrive twice
    _publish_all(mosquitto, messages)
    with open_store(store_url) as reader:
        _wait_for(lambda: reader.count_events() == len(DEVICES) * per_device)
        keys = {(e.device, e.epoch, e.seq) for e in reader.events(0, 2**62)}
    assert len(keys) == len(DEVICES) * per_device
    assert first.processor and second.processor
    assert first.processor.stats.received > 0 and second.processor.stats.received > 0  # the load was split
    assert first.processor.stats.received + second.processor.stats.received == len(messages)

    def all_acked() -> bool:
        got = _retained_acks(mosquitto)
        return all(got.get(d.device, {}).get("epochs") == {str(d.epoch): per_device} for d in DEVICES)

    _wait_for(all_acked)


def test_states_are_tracked_from_retained_topics(
    mosquitto: Mosquitto, tmp_path: Path, instances: Callable[[BrokerSettings, str], Instance]
) -> None:
    db = f"sqlite://{tmp_path}/c.sqlite3"
    _register(db)
    device = DEVICES[0]
    client = _publisher(mosquitto)
    client.publish(device.topic("state"), device.state(ts=77), qos=1, retain=True).wait_for_publish(10)
    client.disconnect()
    client.loop_stop()
    instances(BrokerSettings(url=mosquitto.url), db)  # subscribes after: gets the retained state
    with open_store(db) as reader:
        _wait_for(lambda: [s.status for s in reader.states()] == ["online"])


def test_a_refused_login_is_an_error(mosquitto_factory: BrokerFactory, tmp_path: Path) -> None:
    broker = mosquitto_factory(users={"central": "right"})
    password = tmp_path / "password"
    password.write_text("wrong")
    password.chmod(0o600)
    settings = BrokerSettings(url=broker.url, username="central", password_file=password)
    instance = Instance(settings, f"sqlite://{tmp_path}/c.sqlite3")
    assert instance.ready.wait(15)  # set on the error too
    instance.close()
    assert isinstance(instance.error, UplinkError)
    assert "refused" in str(instance.error)


def test_an_absent_broker_is_waited_for(mosquitto_factory: BrokerFactory, tmp_path: Path) -> None:
    broker = mosquitto_factory(start=False)
    db = f"sqlite://{tmp_path}/c.sqlite3"
    _register(db)
    instance = Instance(BrokerSettings(url=broker.url), db)
    try:
        assert not instance.ready.wait(1.5)  # still trying, not failed
        assert instance.error is None
        broker.start()
        assert instance.ready.wait(10) and instance.error is None
        _publish_all(broker, [(DEVICES[0].topic(), DEVICES[0].token(1))])
        with open_store(db) as reader:
            _wait_for(lambda: reader.count_events() == 1)
    finally:
        instance.close()  # and a stop while waiting would return at once too


def test_a_stop_while_waiting_for_the_broker_returns(tmp_path: Path) -> None:
    from tests.support.broker import free_port

    instance = Instance(
        BrokerSettings(url=f"mqtt://127.0.0.1:{free_port()}"), f"sqlite://{tmp_path}/c.sqlite3"
    )
    time.sleep(0.5)
    started = time.monotonic()
    instance.close()
    assert instance.error is None and time.monotonic() - started < 3
