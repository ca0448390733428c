"""The test broker helper itself: start, kill, restart on the same port, users, persistence."""

from __future__ import annotations

import threading

import paho.mqtt.client as mqtt
import pytest

from tests.support import broker as broker_support
from tests.support.broker import BrokerFactory, Mosquitto, port_accepts

# Fixtures are found by module attribute name.
mosquitto = broker_support.mosquitto
mosquitto_factory = broker_support.mosquitto_factory

pytestmark = pytest.mark.broker


def _client(broker: Mosquitto, **kwargs: object) -> mqtt.Client:
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5, **kwargs)  # type: ignore[arg-type]
    return client


def _retained(broker: Mosquitto, topic: str, **auth: str) -> bytes | None:
    got: list[bytes] = []
    done = threading.Event()
    client = _client(broker)
    if auth:
        client.username_pw_set(auth["username"], auth["password"])
    client.on_connect = lambda c, *_: c.subscribe(topic, qos=1)
    client.on_message = lambda _c, _u, msg: (got.append(msg.payload), done.set())
    client.connect(broker.host, broker.port)
    client.loop_start()
    try:
        done.wait(3)
    finally:
        client.disconnect()
        client.loop_stop()
    return got[0] if got else None


def _publish_retained(broker: Mosquitto, topic: str, payload: bytes, **auth: str) -> mqtt.ReasonCode:
    client = _client(broker)
    if auth:
        client.username_pw_set(auth["username"], auth["password"])
    client.connect(broker.host, broker.port)
    client.loop_start()
    try:
        info = client.publish(topic, payload, qos=1, retain=True)
        info.wait_for_publish(3)
        return info.rc  # type: ignore[return-value]
    finally:
        client.disconnect()
        client.loop_stop()


def test_start_publish_kill_restart_same_port(mosquitto: Mosquitto) -> None:
    _publish_retained(mosquitto, "t/a", b"one")
    assert _retained(mosquitto, "t/a") == b"one"
    port = mosquitto.port
    mosquitto.kill()
    assert not mosquitto.running and not port_accepts(port)
    mosquitto.start()
    assert mosquitto.port == port and port_accepts(port)
    assert _retained(mosquitto, "t/a") is None  # no persistence: the retained message is gone


def test_persistence_survives_a_clean_stop(mosquitto_factory: BrokerFactory) -> None:
    broker = mosquitto_factory(persistence=True)
    _publish_retained(broker, "t/keep", b"kept")
    broker.restart()
    assert _retained(broker, "t/keep") == b"kept"


def test_users_and_acl(mosquitto_factory: BrokerFactory) -> None:
    broker = mosquitto_factory(users={"alice": "pw-a"}, acl="user alice\ntopic readwrite mine/#\n")
    _publish_retained(broker, "mine/x", b"ok", username="alice", password="pw-a")
    assert _retained(broker, "mine/x", username="alice", password="pw-a") == b"ok"
    client = _client(broker)
    client.username_pw_set("alice", "wrong")
    refused: list[object] = []
    client.on_connect = lambda _c, _u, _f, rc, _p: refused.append(rc)
    client.connect(broker.host, broker.port)
    client.loop_start()
    try:
        for _ in range(100):
            if refused:
                break
            threading.Event().wait(0.03)
    finally:
        client.disconnect()
        client.loop_stop()
    assert refused and refused[0].is_failure  # type: ignore[attr-defined]


def test_close_is_idempotent(tmp_path) -> None:
    with Mosquitto(tmp_path / "b") as broker:
        assert broker.running
    broker.close()
    assert not broker.running
