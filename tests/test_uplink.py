"""The uplink against a real mosquitto: delivery, acks, state, and every fault we can cause.

`FakeCentral` is a real paho subscriber with a persistent session that plays
central: it verifies every event, de-duplicates by (device, epoch, seq) and
publishes signed acks (with resend ranges for gaps) like the real one.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from kiosk import jws
from kiosk.backoff import FullJitterBackoff
from kiosk.config import UplinkConfig
from kiosk.errors import SignatureError, StateError
from kiosk.events import Ack, EventDraft, ScanEvent, sign_ack, verify_event
from kiosk.health import Health
from kiosk.keys import thumbprint
from kiosk.spool import Spool
from kiosk.state import verify_state
from kiosk.uplink import Uplink
from tests.support import broker as broker_support
from tests.support.broker import BrokerFactory, Mosquitto
from tests.support.central import SEALER

mosquitto = broker_support.mosquitto  # fixtures are found by module attribute name
mosquitto_factory = broker_support.mosquitto_factory

pytestmark = pytest.mark.broker

DEVICE_KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
AUTHORITY = Ed25519PrivateKey.from_private_bytes(bytes(range(1, 33)))
AUTHORITY_KEYS = {thumbprint(AUTHORITY.public_key()): AUTHORITY.public_key()}
IDENTITY_KEY = bytes(32)
PREFIX = "kiosk/v1"


def state_of(token: bytes) -> dict[str, object]:
    """The fields of a state the kiosk signed with DEVICE_KEY; empty when it is not one."""
    try:
        return dict(json.loads(verify_state(token, DEVICE_KEY.public_key()).payload))
    except (SignatureError, StateError):
        return {}


def wait_until(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    """Poll `condition` until true; fail the test naming `what` after the timeout."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout_s}s waiting for {what}")
        time.sleep(0.02)


class FakeCentral:
    """Central's subscriber: verifies, de-duplicates, acks (retained, signed) with resend ranges."""

    def __init__(
        self,
        broker: Mosquitto,
        *,
        ack: bool = True,
        ack_interval_s: float = 0.2,
        devices: tuple[str, ...] = ("kiosk-1",),
    ) -> None:
        self.broker = broker
        self.devices = devices
        self.ack_enabled = ack
        self.ack_interval_s = ack_interval_s
        self.events: dict[tuple[str, int, int], ScanEvent] = {}
        self.arrivals: list[tuple[str, int, int]] = []
        self.duplicates = 0
        self.invalid = 0
        self.retained: dict[str, bytes] = {}
        self.states: list[str] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._connected = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="central", protocol=mqtt.MQTTv5)
        self.client.reconnect_delay_set(0.05, 0.3)
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.on_disconnect = lambda *_: self._connected.clear()
        self._acker = threading.Thread(target=self._ack_loop, name="test-central-acks")

    def start(self) -> FakeCentral:
        """Connect with a persistent session (messages queue at the broker while we are away)."""
        properties = Properties(PacketTypes.CONNECT)
        properties.SessionExpiryInterval = 3600
        self.client.connect_async(
            self.broker.host, self.broker.port, clean_start=False, properties=properties
        )
        self.client.loop_start()
        self._acker.start()
        wait_until(self._connected.is_set, 10, "central to connect")
        return self

    def _on_connect(self, client: mqtt.Client, *_: object) -> None:
        client.subscribe([(f"{PREFIX}/+/+/event", 1), (f"{PREFIX}/+/+/state", 1)])
        self._connected.set()

    def _on_message(self, _c: object, _u: object, msg: mqtt.MQTTMessage) -> None:
        if msg.topic.endswith("/state"):
            with self._lock:
                self.retained[msg.topic] = msg.payload
                self.states.append(state_of(msg.payload).get("status", "invalid"))
            return
        try:
            event = verify_event(msg.payload, lambda kid: DEVICE_KEY.public_key())
        except Exception:
            self.invalid += 1
            return
        assert msg.topic == f"{PREFIX}/{event.destination}/{event.device}/event"
        with self._lock:
            if event.key in self.events:
                self.duplicates += 1
            else:
                self.events[event.key] = event
                self.arrivals.append(event.key)

    def _ack_loop(self) -> None:
        rounds = 0
        while not self._stop.wait(self.ack_interval_s):
            if self.ack_enabled and self._connected.is_set():
                rounds += 1
                # Ask for gaps only now and then: a resend takes a moment to arrive.
                for device, ack in self.acks(with_resend=rounds % 5 == 0).items():
                    self.client.publish(f"{PREFIX}/venue-1/{device}/ack", sign_ack(ack, AUTHORITY), 1, True)

    def acks(self, *, with_resend: bool = True) -> dict[str, Ack]:
        """Per device: the highest contiguous seq of each epoch, and the gaps below the highest seen."""
        with self._lock:
            keys = sorted(self.events)
        per_epoch: dict[tuple[str, int], list[int]] = {}
        for device, epoch, seq in keys:
            per_epoch.setdefault((device, epoch), []).append(seq)
        now = int(time.time() * 1000)
        acks: dict[str, Ack] = {device: Ack(device=device, epochs={}, ts=now) for device in self.devices}
        for (device, epoch), seqs in per_epoch.items():
            contiguous, gaps = _contiguous_and_gaps(seqs)
            old = acks.get(device) or Ack(device=device, epochs={}, ts=now)
            resend = old.resend + [(epoch, a, b) for a, b in gaps if with_resend]
            acks[device] = Ack(
                device=device, epochs=old.epochs | {str(epoch): contiguous}, resend=resend[:100], ts=old.ts
            )
        return acks

    def seqs(self, device: str = "kiosk-1") -> list[tuple[int, int]]:
        """The (epoch, seq) received from `device`, sorted, without duplicates."""
        with self._lock:
            return sorted((e, s) for d, e, s in self.events if d == device)

    def count(self) -> int:
        """How many distinct events arrived."""
        with self._lock:
            return len(self.events)

    def close(self) -> None:
        """Stop acking, disconnect, join the threads."""
        self._stop.set()
        if self._acker.is_alive():
            self._acker.join(5)
        self.client.disconnect()
        self.client.loop_stop()


def _contiguous_and_gaps(seqs: list[int]) -> tuple[int, list[tuple[int, int]]]:
    contiguous, gaps, expected = 0, [], 1
    for seq in seqs:
        if seq > expected:
            gaps.append((expected, seq - 1))
        elif not gaps:
            contiguous = seq
        expected = seq + 1
    if gaps:
        contiguous = gaps[0][0] - 1
    return contiguous, gaps


def test_contiguous_and_gaps() -> None:
    assert _contiguous_and_gaps([1, 2, 3]) == (3, [])
    assert _contiguous_and_gaps([1, 2, 5, 7]) == (2, [(3, 4), (6, 6)])
    assert _contiguous_and_gaps([3]) == (0, [(1, 2)])


@pytest.fixture
def central_factory() -> Iterator[Callable[..., FakeCentral]]:
    made: list[FakeCentral] = []

    def make(broker: Mosquitto, **options: object) -> FakeCentral:
        central = FakeCentral(broker, **options)  # type: ignore[arg-type]
        made.append(central)
        return central.start()

    yield make
    for central in made:
        central.close()


def uplink_settings(broker: Mosquitto, **changes: object) -> UplinkConfig:
    """Fast reconnects and resends, so faults heal within a test's time."""
    fields: dict[str, object] = {
        "broker": broker.url,
        "backoff_min_s": 0.05,
        "backoff_max_s": 0.5,
        "resend_unacked_s": 1.0,
        "keepalive_s": 5,
        "state_interval_s": 5,
    }
    return UplinkConfig(**(fields | changes))  # type: ignore[arg-type]


def open_spool(path: Path, device: str = "kiosk-1") -> Spool:
    return Spool.open(
        path, device_id=device, destination_id="venue-1", signing_key=DEVICE_KEY, sealer=SEALER
    )


def draft(n: int = 0) -> EventDraft:
    return EventDraft(
        verdict="pass",
        reason="ok",
        format="national",
        direction="in",
        card_identity=f"id-{n}",
        ts=int(time.time() * 1000),
    )


@pytest.fixture
def spool(tmp_path: Path) -> Iterator[Spool]:
    with open_spool(tmp_path / "spool.db") as s:
        yield s


@pytest.fixture
def uplinks() -> Iterator[Callable[..., Uplink]]:
    made: list[Uplink] = []

    def make(settings: UplinkConfig, spool: Spool, **options: object) -> Uplink:
        options.setdefault("authority_keys", AUTHORITY_KEYS)
        uplink = Uplink(settings, spool=spool, **options)  # type: ignore[arg-type]
        made.append(uplink)
        uplink.start()
        return uplink

    yield make
    for uplink in made:
        uplink.close(grace_s=0.5)


def test_happy_path_delivers_in_order_and_acks(
    mosquitto: Mosquitto, spool: Spool, central_factory, uplinks
) -> None:
    central = central_factory(mosquitto)
    for n in range(50):
        spool.record(draft(n))
    health = partial(Health.of_spool, spool, fps=29.5, clock_synced=True)
    uplink = uplinks(uplink_settings(mosquitto), spool, health=health)
    for n in range(50, 100):
        spool.record(draft(n))
        uplink.wake()
    wait_until(lambda: central.count() == 100, 20, "100 events at central")
    assert central.arrivals == sorted(central.arrivals)  # nothing lost, so in seq order on the wire
    assert central.seqs() == [(spool.epoch, s) for s in range(1, 101)]
    wait_until(lambda: spool.depth() == 0, 10, "central's ack to cover every event")
    stats = uplink.stats()
    assert stats.connected and stats.broker_acked == 100 and stats.rejected == {}
    assert stats.last_ack is not None, "the inspection screen shows when central last acked"
    state = state_of(central.retained[f"{PREFIX}/venue-1/kiosk-1/state"])
    assert state["status"] == "online" and state["fps"] == 29.5 and state["clock_synced"] is True
    assert set(state["counts_today"]) == {"in", "out", "pass", "fail"}
    uplink.close(grace_s=2)
    wait_until(
        lambda: state_of(central.retained[f"{PREFIX}/venue-1/kiosk-1/state"]).get("status") == "stopped",
        5,
        "stopped",
    )


def test_full_jitter_backoff_stays_under_a_doubling_ceiling() -> None:
    import random

    backoff = FullJitterBackoff(1.0, 8.0, rng=random.Random(7))
    delays = [backoff.next_delay() for _ in range(6)]
    assert all(0 <= d <= c for d, c in zip(delays, [1, 2, 4, 8, 8, 8], strict=True))
    assert len(set(delays)) == 6  # jittered, not in step
    backoff.reset()
    assert backoff.next_delay() <= 1.0


def publish(broker: Mosquitto, topic: str, payload: bytes, *, retain: bool = False) -> None:
    """Publish one message as an outsider with full rights (QoS 1, waits for the PUBACK)."""
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    client.connect(broker.host, broker.port)
    client.loop_start()
    try:
        client.publish(topic, payload, qos=1, retain=retain).wait_for_publish(10)
    finally:
        client.disconnect()
        client.loop_stop()


def record_in_background(spool: Spool, uplink: Uplink, n: int, pause_s: float) -> threading.Thread:
    """A capture loop stand-in: record `n` decisions, waking the uplink after each."""

    def run() -> None:
        for i in range(n):
            spool.record(draft(i))
            uplink.wake()
            time.sleep(pause_s)

    thread = threading.Thread(target=run, name="test-capture")
    thread.start()
    return thread


def assert_complete(central: FakeCentral, epoch: int, n: int) -> None:
    assert central.seqs() == [(epoch, s) for s in range(1, n + 1)]


def test_broker_down_at_start(
    mosquitto_factory: BrokerFactory, spool: Spool, central_factory, uplinks
) -> None:
    broker = mosquitto_factory(start=False)
    uplink = uplinks(uplink_settings(broker), spool)
    for n in range(30):
        spool.record(draft(n))  # the kiosk keeps scanning without a broker
        uplink.wake()
    wait_until(lambda: uplink.stats().connect_failures >= 2, 10, "failed connection attempts")
    assert not uplink.connected and spool.unsent_count() == 30
    assert "is the broker running" in (uplink.stats().last_error or "")
    broker.start()
    central = central_factory(broker)
    wait_until(lambda: central.count() == 30, 20, "the backlog to reach central")
    assert_complete(central, spool.epoch, 30)
    wait_until(lambda: spool.depth() == 0, 10, "acks")


def test_broker_killed_and_restarted_mid_stream(
    mosquitto_factory: BrokerFactory, spool: Spool, central_factory, uplinks
) -> None:
    broker = mosquitto_factory(persistence=True)
    central = central_factory(broker)
    uplink = uplinks(uplink_settings(broker), spool)
    capture = record_in_background(spool, uplink, 300, 0.005)
    try:
        wait_until(lambda: central.count() >= 60, 20, "the first events")
        broker.kill()
        time.sleep(0.5)
        broker.start()
    finally:
        capture.join(30)
    wait_until(lambda: central.count() == 300, 30, "every event after the broker crash")
    assert_complete(central, spool.epoch, 300)
    wait_until(lambda: spool.depth() == 0, 10, "acks")
    assert uplink.stats().connect_attempts >= 2


def test_broker_gone_for_30_seconds(
    mosquitto_factory: BrokerFactory, spool: Spool, central_factory, uplinks
) -> None:
    broker = mosquitto_factory(persistence=True)
    central = central_factory(broker)
    uplink = uplinks(uplink_settings(broker, backoff_max_s=4.0), spool)
    for n in range(20):
        spool.record(draft(n))
    uplink.wake()
    wait_until(lambda: central.count() == 20, 10, "events before the outage")
    broker.stop()
    outage_end = time.monotonic() + 30
    n = 20
    while time.monotonic() < outage_end:
        spool.record(draft(n))
        uplink.wake()
        n += 1
        time.sleep(0.25)
    assert not uplink.connected
    broker.start()
    wait_until(lambda: central.count() == n, 30, "the events spooled during the outage")
    assert_complete(central, spool.epoch, n)


test_broker_gone_for_30_seconds = pytest.mark.slow(test_broker_gone_for_30_seconds)


PUBLISHER = """
import sys, time
from pathlib import Path
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from kiosk.config import UplinkConfig
from kiosk.events import EventDraft
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from kiosk.keys import thumbprint
from kiosk.sealing import Sealer
from kiosk.spool import Spool
from kiosk.uplink import Uplink

SEALER = Sealer(X25519PrivateKey.generate().public_key(), destination_key=bytes(32))
path, url, count = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
authority = Ed25519PrivateKey.from_private_bytes(bytes(range(1, 33))).public_key()
spool = Spool.open(path, device_id="kiosk-1", destination_id="venue-1",
                   signing_key=Ed25519PrivateKey.from_private_bytes(bytes(range(32))), sealer=SEALER)
uplink = Uplink(UplinkConfig(broker=url, backoff_min_s=0.05, backoff_max_s=0.5, resend_unacked_s=1.0),
                spool=spool, authority_keys={thumbprint(authority): authority})
uplink.start()
for i in range(count):
    s = spool.record(EventDraft(verdict="pass", reason="ok", direction="in", ts=int(time.time() * 1000)))
    uplink.wake()
    print(s.epoch, s.seq, flush=True)
    time.sleep(0.004)
while True:
    time.sleep(1)
"""


def _run_publisher(path: Path, broker: Mosquitto, count: int) -> subprocess.Popen[str]:
    root = Path(__file__).resolve().parents[1]
    return subprocess.Popen(
        [sys.executable, "-c", PUBLISHER, str(path), broker.url, str(count)],
        cwd=root,
        stdout=subprocess.PIPE,
        text=True,
    )


def _kill(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)
    proc.wait(10)
    if proc.stdout:
        proc.stdout.close()


def test_publisher_killed_and_restarted(mosquitto: Mosquitto, tmp_path: Path, central_factory) -> None:
    central = central_factory(mosquitto)
    path = tmp_path / "spool.db"
    first = _run_publisher(path, mosquitto, 200)
    try:
        assert first.stdout is not None
        epoch = int(first.stdout.readline().split()[0])
        wait_until(lambda: central.count() >= 40, 20, "the first events")
    finally:
        _kill(first)  # kill -9 mid-stream: some recorded, some in flight, some never sent
    # The kernel closes the dead process's socket, so the broker publishes its will at once.
    wait_until(lambda: central.states[-1:] == ["offline"], 10, "the will (offline state)")
    will = state_of(central.retained[f"{PREFIX}/venue-1/kiosk-1/state"])
    assert will == {"status": "offline", "device": "kiosk-1", "destination": "venue-1"}  # signed, no ts
    with open_spool(path) as spool:
        assert spool.epoch == epoch  # the same spool and key: the same epoch, seq goes on
        recorded = spool.last_seq()
    second = _run_publisher(path, mosquitto, 50)
    try:
        wait_until(lambda: central.count() == recorded + 50, 30, f"all {recorded + 50} events")
    finally:
        _kill(second)
    assert_complete(central, epoch, recorded + 50)
    assert "online" in central.states[central.states.index("offline") :]


def test_bad_messages_are_ignored_logged_and_counted(
    mosquitto: Mosquitto, spool: Spool, central_factory, uplinks, caplog: pytest.LogCaptureFixture
) -> None:
    central = central_factory(mosquitto, ack=False)
    lists: list[bytes] = []

    def take_statuslist(payload: bytes) -> None:
        if not payload.startswith(b"ey"):
            raise ValueError("not a signed status list")
        lists.append(payload)

    uplink = uplinks(uplink_settings(mosquitto), spool, on_statuslist=take_statuslist)
    wait_until(lambda: uplink.connected, 10, "connection")
    ack_topic = f"{PREFIX}/venue-1/kiosk-1/ack"
    stranger = Ed25519PrivateKey.generate()
    good_ack = Ack(device="kiosk-1", epochs={str(spool.epoch): 10**9}, ts=1)
    bad_messages = [
        (ack_topic, b"\x00\xffgarbage"),
        (ack_topic, sign_ack(good_ack, stranger)),  # right shape, wrong key
        (ack_topic, sign_ack(Ack(device="kiosk-2", epochs={}, ts=1), AUTHORITY)),
        (ack_topic, jws.sign(b"[1,2]", AUTHORITY, kid=thumbprint(AUTHORITY.public_key()), typ="kiosk-ack")),
        (ack_topic, b"x" * (300 * 1024)),
        (f"{PREFIX}/statuslist", b"\x89PNG not a list"),
        (f"{PREFIX}/statuslist", b"ey" + b"A" * (8 * 1024 * 1024)),
    ]
    for topic, payload in bad_messages:
        publish(mosquitto, topic, payload)
    publish(mosquitto, f"{PREFIX}/statuslist", b"eyJ.signed.list")
    wait_until(lambda: sum(uplink.stats().rejected.values()) == 7, 10, "7 rejected messages")
    wait_until(lambda: lists != [], 10, "the good status list")
    assert uplink.stats().rejected == {
        "ack_invalid": 3,
        "ack_wrong_device": 1,
        "oversized": 2,
        "statuslist_refused": 1,
    }
    assert lists == [b"eyJ.signed.list"]
    assert "ignored a message from the broker" in caplog.text
    for n in range(5):
        spool.record(draft(n))
    uplink.wake()
    wait_until(lambda: central.count() == 5, 10, "events after the bad messages")
    assert spool.depth() == 5  # the forged "everything acked" changed nothing


def test_from_settings_loads_the_authority_keys(tmp_path: Path, spool: Spool) -> None:
    from kiosk.config import parse_config
    from kiosk.keys import public_pem

    (tmp_path / "authority.pem").write_text(public_pem(AUTHORITY.public_key()))
    settings = parse_config({"policy": {"authority_keys": "authority.pem"}}, base_dir=tmp_path)
    uplink = Uplink.from_settings(settings, spool=spool)  # not started: no broker needed
    try:
        assert uplink._acks.authority is not None
        assert uplink._acks.authority(thumbprint(AUTHORITY.public_key())) == AUTHORITY.public_key()
    finally:
        uplink.close()


def test_disabled_uplink_only_spools(spool: Spool) -> None:
    uplink = Uplink(UplinkConfig(enabled=False, broker="mqtt://127.0.0.1:1"), spool=spool)
    uplink.start()
    uplink.wake()
    spool.record(draft())
    assert not uplink.connected and uplink.stats().connect_attempts == 0
    uplink.close()
    uplink.close()


def test_a_flood_from_the_broker_is_bounded(mosquitto: Mosquitto, spool: Spool, uplinks) -> None:
    entered, release = threading.Event(), threading.Event()

    def slow_store(_payload: bytes) -> None:
        entered.set()
        release.wait(10)

    uplink = uplinks(uplink_settings(mosquitto), spool, on_statuslist=slow_store)
    wait_until(lambda: uplink.connected, 10, "connection")
    publish(mosquitto, f"{PREFIX}/statuslist", b"ey.slow.list")
    wait_until(entered.is_set, 10, "the drain thread to be busy with the status list")
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    client.connect(mosquitto.host, mosquitto.port)
    client.loop_start()
    try:
        for i in range(100):
            client.publish(f"{PREFIX}/venue-1/kiosk-1/ack", f"junk {i}".encode(), qos=1).wait_for_publish(10)
        wait_until(lambda: uplink.stats().rejected.get("flood", 0) >= 100 - 64, 10, "the flood to be cut")
    finally:
        release.set()
        client.disconnect()
        client.loop_stop()
    wait_until(
        lambda: uplink.stats().rejected.get("ack_invalid", 0) == 64, 10, "the queued junk to be refused"
    )


def test_a_failing_spool_is_logged_not_fatal(
    mosquitto: Mosquitto, tmp_path: Path, uplinks, caplog: pytest.LogCaptureFixture
) -> None:
    spool = open_spool(tmp_path / "spool.db")
    uplink = uplinks(uplink_settings(mosquitto), spool)
    wait_until(lambda: uplink.connected, 10, "connection")
    spool.close()  # the wrong shutdown order: the drain thread finds the spool closed
    uplink.wake()
    wait_until(lambda: "is closed" in caplog.text, 10, "the error to be logged")
    uplink.close(grace_s=0.5)
    assert all(t.name not in ("uplink-mqtt", "uplink-drain") for t in threading.enumerate())


class SilentListener:
    """A TCP server on loopback that accepts connections and never says a word (no TLS, no MQTT)."""

    def __init__(self) -> None:
        self._server = socket.create_server((broker_support.HOST, 0))
        self.port = self._server.getsockname()[1]
        self.accepted = threading.Event()
        self._clients: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, name="test-silent-listener", daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._server.accept()
            except OSError:
                return  # closed
            self._clients.append(client)
            self.accepted.set()

    def close(self) -> None:
        """Stop listening and drop every connection."""
        self._server.close()
        self._thread.join(5)
        for client in self._clients:
            client.close()


def test_close_is_bounded_when_the_broker_never_answers_tls(spool: Spool) -> None:
    listener = SilentListener()
    uplink = Uplink(
        UplinkConfig(broker=f"mqtts://{broker_support.HOST}:{listener.port}", backoff_min_s=0.05),
        spool=spool,
        authority_keys=AUTHORITY_KEYS,
    )
    try:
        uplink.start()
        assert listener.accepted.wait(10), "the uplink never connected to the listener"
        spool.record(draft())
        uplink.wake()
        time.sleep(0.3)  # well inside the TLS handshake, which would block for the connect timeout
        started = time.monotonic()
        uplink.close(grace_s=2.0)
        took = time.monotonic() - started
        assert took < 3.1, f"close(2.0) took {took:.1f}s"
        assert not any(t.is_alive() for t in uplink._threads)  # the handshake gave up at once
        assert uplink.stats().connect_failures == 0  # a handshake cut short by close() is no failure
        assert spool.unsent_count() == 1  # kept for next time
    finally:
        uplink.close()
        listener.close()


def test_close_with_a_backlog_still_says_stopped_in_time(
    mosquitto: Mosquitto, spool: Spool, central_factory
) -> None:
    central = central_factory(mosquitto, ack=False)
    for n in range(300):
        spool.record(draft(n))
    uplink = Uplink(uplink_settings(mosquitto, inflight=4), spool=spool, authority_keys=AUTHORITY_KEYS)
    uplink.start()
    wait_until(lambda: central.count() > 0, 10, "the drain to start")
    started = time.monotonic()
    uplink.close(grace_s=0.0)  # no time to flush: the stopped state must go out all the same
    took = time.monotonic() - started
    assert took < 1.1, f"close(0.0) took {took:.1f}s"
    wait_until(lambda: central.states[-1:] == ["stopped"], 5, "the stopped state")


def test_the_state_carries_the_daemons_health_or_the_spools(tmp_path: Path) -> None:
    from kiosk.spool import SpoolLimits

    spool = Spool.open(
        tmp_path / "spool.db",
        device_id="kiosk-1",
        destination_id="venue-1",
        signing_key=DEVICE_KEY,
        sealer=SEALER,
        limits=SpoolLimits(disk_budget_bytes=64 * 1024, alarm_fraction=0.1),
    )
    with spool:
        spool.record(draft())
        assert spool.alarms(), "the spool raises its budget alarm"

        def health() -> Health:  # like the daemon's: spool alarms included, one named twice
            return Health(7, 1, {}, fps=12.5, alarms=(*spool.alarms(), "fault: camera", *spool.alarms()))

        uplink = Uplink(UplinkConfig(broker="mqtt://127.0.0.1:1"), spool=spool, health=health)
        try:
            state = state_of(uplink._state("online"))
            assert state["spool_depth"] == 7 and state["fps"] == 12.5  # the daemon's figures
            assert state["alarms"] == [*spool.alarms(), "fault: camera"]  # each alarm once
            assert (state["status"], state["device"]) == ("online", "kiosk-1")

            def broken() -> Health:
                raise RuntimeError("a bug in the daemon's report")

            uplink._health = broken  # the state still goes out, with the spool's figures
            state = state_of(uplink._state("online"))
            assert state["spool_depth"] == 1 and state["unsent"] == 1 and state["alarms"] == spool.alarms()
            assert state["fps"] is None and state["clock_synced"] is None
            assert set(state_of(uplink._state("stopped"))) == {"status", "device", "destination", "ts"}
        finally:
            uplink.close()
