"""The uplink's connect supervisor: reconnects with backoff, says each failure once, counts every attempt."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterator

import paho.mqtt.client as mqtt
import pytest

from kiosk import broker
from kiosk.backoff import FullJitterBackoff
from kiosk.config import UplinkConfig
from kiosk.connection import Connection
from kiosk.counters import UplinkCounters
from tests.support import broker as broker_support
from tests.support.broker import Mosquitto, free_port

mosquitto = broker_support.mosquitto  # fixtures are found by module attribute name
mosquitto_factory = broker_support.mosquitto_factory


def wait_until(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


class Running:
    """A Connection for `url` running in its own thread, with what it reported."""

    def __init__(self, url: str) -> None:
        self.settings = broker.BrokerSettings.for_device(UplinkConfig(broker=url), "kiosk-1")
        self.stop, self.quiet = threading.Event(), threading.Event()
        self.counters = UplinkCounters()
        self.ups: list[mqtt.Client] = []
        self.client = broker.new_client(self.settings, "kiosk-1", stop=self.stop)
        self.connection = Connection(
            self.client,
            self.settings,
            keepalive_s=5,
            max_packet_bytes=1 << 20,
            backoff=FullJitterBackoff(0.01, 0.05, rng=random.Random(1)),
            counters=self.counters,
            stop=self.stop,
            quiet=self.quiet,
            on_up=self.ups.append,
        )
        self.thread = threading.Thread(target=self.connection.run, name="test-connection")
        self.thread.start()

    def close(self) -> None:
        self.quiet.set()
        self.stop.set()
        self.client.disconnect()
        self.thread.join(10)
        assert not self.thread.is_alive()


@pytest.fixture
def running() -> Iterator[Callable[[str], Running]]:
    made: list[Running] = []

    def make(url: str) -> Running:
        made.append(Running(url))
        return made[-1]

    yield make
    for r in made:
        r.close()


def test_a_broker_that_is_away_is_retried_and_said_once(running, caplog: pytest.LogCaptureFixture) -> None:
    r = running(f"mqtt://127.0.0.1:{free_port()}")
    wait_until(lambda: r.counters.snapshot(connected=False).connect_failures >= 5, 10, "five failures")
    stats = r.counters.snapshot(connected=r.connection.connected)
    assert not stats.connected and stats.connect_attempts >= stats.connect_failures >= 5
    assert stats.last_error is not None and "(retrying)" in stats.last_error
    warnings = [
        rec for rec in caplog.records if rec.name == "kiosk.connection" and rec.levelname == "WARNING"
    ]
    assert len(warnings) == 1  # the same error again is no news
    assert r.ups == []


@pytest.mark.broker
def test_it_connects_reports_up_and_reconnects_after_a_restart(
    mosquitto: Mosquitto, running, caplog: pytest.LogCaptureFixture
) -> None:
    r = running(mosquitto.url)
    wait_until(lambda: r.connection.connected, 10, "connection")
    assert r.ups == [r.client]
    assert r.counters.snapshot(connected=True).last_error is None
    mosquitto.kill()
    wait_until(lambda: not r.connection.connected, 10, "the drop")
    assert "disconnected from" in caplog.text
    mosquitto.start()
    wait_until(lambda: len(r.ups) == 2 and r.connection.connected, 20, "the reconnection")
    assert r.counters.snapshot(connected=True).last_error is None  # the failures in between are history


@pytest.mark.broker
def test_a_refusal_is_an_error_naming_what_to_check(mosquitto_factory, running, caplog) -> None:
    locked = mosquitto_factory(users={"kiosk-1": "right"}, acl="user kiosk-1\ntopic readwrite #\n")
    r = running(locked.url)  # no password at all
    wait_until(lambda: r.counters.snapshot(connected=False).connect_failures >= 2, 10, "refusals")
    errors = [rec.getMessage() for rec in caplog.records if rec.levelname == "ERROR"]
    assert errors and all("refused" in message for message in errors)
    assert not r.connection.connected and r.ups == []
