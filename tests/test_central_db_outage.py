"""`kiosk-central ingest` outlives its PostgreSQL: stopped and started again, nothing is lost.

A real ingest process, a real mosquitto and a PostgreSQL of this test's own (the
session's shared one must not go away under other tests). While the database is
down, the ingest waits and reconnects with backoff; the batch it could not commit
is not acknowledged to the broker, which keeps it, and is written once it is back.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from kiosk import keys
from kiosk.central.registry import Registry, parse_registration
from kiosk.central.store import open_store
from tests.support import broker as broker_support
from tests.support.broker import Mosquitto
from tests.support.central import TestDevice
from tests.support.postgres import BIN, PostgresServer

pytestmark = [pytest.mark.broker, pytest.mark.slow]

mosquitto = broker_support.mosquitto
mosquitto_factory = broker_support.mosquitto_factory

ROOT = Path(__file__).resolve().parents[1]
DEVICE = TestDevice("kiosk-1", "shop-1")


@pytest.fixture
def postgres() -> Iterator[PostgresServer]:
    if not (BIN / "postgres").exists():
        pytest.skip(f"PostgreSQL 15 is not installed ({BIN}/postgres missing; `make test` installs it)")
    with PostgresServer() as server:
        yield server


def wait_for(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def publish(broker: Mosquitto, seqs: range) -> None:
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id="test-publisher", protocol=paho.MQTTv5)
    client.connect(broker.host, broker.port)
    client.loop_start()
    try:
        for info in [client.publish(DEVICE.topic(), DEVICE.token(seq), qos=1) for seq in seqs]:
            info.wait_for_publish(timeout=10)
    finally:
        client.disconnect()
        client.loop_stop()


def stored(db: str) -> int:
    try:
        with open_store(db) as store:
            return store.count_events()
    except Exception:  # the database is still starting
        return -1


def test_the_ingest_waits_for_its_database_and_loses_nothing(
    mosquitto: Mosquitto, postgres: PostgresServer, tmp_path: Path
) -> None:
    db = postgres.new_database()
    with open_store(db) as store:
        Registry(store).add(parse_registration(json.dumps(DEVICE.registration())))
        store.commit()
    key = tmp_path / "authority.key"
    keys.generate_device_key(key)
    log_file = tmp_path / "ingest.log"
    argv = [sys.executable, "-m", "kiosk.central.cli", "--db", db, "ingest", "--broker", mosquitto.url,
            "--key", str(key), "--client-id", "central-1"]  # fmt: skip
    with log_file.open("wb") as log:
        ingest = subprocess.Popen(argv, cwd=ROOT, stderr=log)
    try:
        wait_for(lambda: "ingesting" in log_file.read_text(), 20, "the ingest to subscribe")
        publish(mosquitto, range(1, 21))
        wait_for(lambda: stored(db) == 20, 20, "the first events")
        postgres.stop()
        publish(mosquitto, range(21, 41))  # a batch the ingest cannot commit
        wait_for(lambda: "database failed" in log_file.read_text(), 20, "the ingest to notice")
        time.sleep(2)  # some reconnection attempts fail
        assert ingest.poll() is None, log_file.read_text()
        postgres.start()
        wait_for(lambda: stored(db) == 40, 60, "the waiting batch, once the database is back")
        publish(mosquitto, range(41, 51))
        wait_for(lambda: stored(db) == 50, 20, "events after the outage")
        assert ingest.poll() is None, log_file.read_text()
    finally:
        if ingest.poll() is None:
            ingest.send_signal(signal.SIGTERM)
            try:
                code = ingest.wait(10)
            except subprocess.TimeoutExpired:
                os.kill(ingest.pid, signal.SIGKILL)
                raise
    assert code == 0, log_file.read_text()
    assert "database is back" in log_file.read_text()
