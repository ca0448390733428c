"""Three `kiosk-central ingest` processes on one shared subscription and one PostgreSQL, under load.

One of them is killed (SIGKILL) in the middle and started again with the same client id.
Every event must be stored exactly once, every state kept, no process may die of a conflict
with another (states reach every instance: each writes each one), and the retained acks must
end up covering everything.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from kiosk import jws, keys
from kiosk.central.registry import Registry, parse_registration
from kiosk.central.store import open_store
from tests.support import broker as broker_support
from tests.support import postgres as postgres_support
from tests.support.broker import Mosquitto
from tests.support.central import TestDevice

pytestmark = pytest.mark.broker

mosquitto = broker_support.mosquitto
mosquitto_factory = broker_support.mosquitto_factory
postgres_server = postgres_support.postgres_server
postgres_url = postgres_support.postgres_url

DEVICES = [TestDevice(f"kiosk-{n}", f"shop-{n % 3}") for n in range(6)]
PER_DEVICE = 400
STATES_PER_DEVICE = 20


class IngestProcess:
    """One `kiosk-central ingest` process; its log goes to a file (a full pipe would stall it)."""

    def __init__(self, name: str, db: str, broker: Mosquitto, key: Path, folder: Path) -> None:
        self.name, self.log = name, folder / f"{name}.log"
        self._argv = [
            sys.executable, "-m", "kiosk.central.cli", "--db", db, "ingest", "--broker", broker.url,
            "--key", str(key), "--client-id", name, "--resend-after", "0.5",
        ]  # fmt: skip
        self.proc: subprocess.Popen[bytes] | None = None
        self.started = 0
        self.start()

    def start(self) -> None:
        """Start (again) with the same client id: the broker keeps its session meanwhile."""
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                self._argv, stderr=log, env={**os.environ, "PYTHONWARNINGS": "error"}
            )
        self.started += 1
        _wait_for(lambda: self.text().count("ingesting") == self.started, 20)

    def text(self) -> str:
        """What it logged so far."""
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def alive(self) -> bool:
        """Whether the process is still running."""
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL: no clean disconnect, an uncommitted batch lost, PUBACKs not sent."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        """SIGTERM and wait."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def _wait_for(condition: Callable[[], bool], timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


@pytest.fixture
def cluster(mosquitto: Mosquitto, postgres_url: str, tmp_path: Path) -> Iterator[list[IngestProcess]]:
    with open_store(postgres_url) as store:
        for device in DEVICES:
            Registry(store).add(parse_registration(json.dumps(device.registration())))
        store.commit()
    key = tmp_path / "authority.key"
    keys.generate_device_key(key)
    made: list[IngestProcess] = []
    try:
        for n in range(3):
            made.append(IngestProcess(f"central-{n}", postgres_url, mosquitto, key, tmp_path))
        yield made
    finally:
        for process in made:
            process.stop()


def _messages() -> list[tuple[str, bytes, bool]]:
    """Every device's events (shuffled, a tenth twice) and retained states, interleaved."""
    events = [(d.topic(), d.token(seq), False) for d in DEVICES for seq in range(1, PER_DEVICE + 1)]
    rng = random.Random(16)
    events += rng.sample(events, len(events) // 10)  # at-least-once: some arrive twice
    states = [
        (d.topic("state"), d.state(ts=ts), True)
        for ts in range(1, STATES_PER_DEVICE + 1)
        for d in DEVICES
    ]
    rng.shuffle(events)
    step = len(events) // len(states)
    out: list[tuple[str, bytes, bool]] = []
    for n, state in enumerate(states):
        out += [*events[n * step : (n + 1) * step], state]
    return out + events[len(states) * step :]


def _publish(broker: Mosquitto, messages: list[tuple[str, bytes, bool]], done: threading.Event) -> None:
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id="test-kiosks", protocol=paho.MQTTv5)
    client.max_queued_messages_set(0)
    client.max_inflight_messages_set(50)
    client.connect(broker.host, broker.port)
    client.loop_start()
    try:
        infos = []
        for n, (topic, payload, retain) in enumerate(messages):
            infos.append(client.publish(topic, payload, qos=1, retain=retain))
            if n % 200 == 0:
                time.sleep(0.05)  # a steady stream, so that the kill lands in the middle of it
        for info in infos:
            info.wait_for_publish(timeout=30)
    finally:
        client.disconnect()
        client.loop_stop()
        done.set()


def _retained_acks(broker: Mosquitto, key: Path) -> dict[str, dict[str, object]]:
    public = keys.load_private_key(key).public_key()
    got: dict[str, dict[str, object]] = {}
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id="test-ack-reader", protocol=paho.MQTTv5)

    def on_message(_c: paho.Client, _u: object, message: paho.MQTTMessage) -> None:
        body = json.loads(jws.verify(bytes(message.payload), public).payload)
        got[body["device"]] = body

    client.on_message = on_message
    client.connect(broker.host, broker.port)
    client.subscribe("kiosk/v1/+/+/ack", qos=1)
    client.loop_start()
    time.sleep(0.5)
    client.disconnect()
    client.loop_stop()
    return got


def test_three_ingests_one_killed_store_everything_once(
    cluster: list[IngestProcess], mosquitto: Mosquitto, postgres_url: str, tmp_path: Path
) -> None:
    done = threading.Event()
    publisher = threading.Thread(target=_publish, args=(mosquitto, _messages(), done), name="test-kiosks")
    publisher.start()
    victim = cluster[1]
    with open_store(postgres_url) as reader:
        _wait_for(lambda: reader.count_events() > PER_DEVICE)  # well under way
        reader.rollback()  # end the read transaction (PostgreSQL: a snapshot per transaction)
        victim.kill()
        time.sleep(1.0)
        victim.start()
        publisher.join(60)
        assert done.is_set()

        def stored() -> int:
            reader.rollback()
            return reader.count_events()

        _wait_for(lambda: stored() == len(DEVICES) * PER_DEVICE, 40)
        time.sleep(1.0)  # anything doubled or late would show now
        assert stored() == len(DEVICES) * PER_DEVICE
        keys_stored = {(e.device, e.epoch, e.seq) for e in reader.events(0, 2**62)}
        assert keys_stored == {(d.device, d.epoch, seq) for d in DEVICES for seq in range(1, PER_DEVICE + 1)}
        states = {s.device: s.ts for s in reader.states()}
        assert states == {d.device: STATES_PER_DEVICE for d in DEVICES}
        for d in DEVICES:  # each change logged once, however many instances saw it
            assert reader.state_log(d.device, 0, 2**62) == [(1, "online")]
    for process in cluster:
        assert process.alive(), process.text()[-3000:]
        assert "Traceback" not in process.text(), process.text()[-3000:]

    def all_acked() -> bool:
        got = _retained_acks(mosquitto, tmp_path / "authority.key")
        return all(got.get(d.device, {}).get("epochs") == {str(d.epoch): PER_DEVICE} for d in DEVICES)

    _wait_for(all_acked, 20)
