"""Fault test with real processes: the broker loses the kiosks' last events while central is down.

Two kiosk processes (the real spool and uplink), a real mosquitto and a real
`kiosk-central ingest`. After the kiosks' last scans, while central is down, the
broker is killed (kill -9, no persistence: what it had accepted is gone). Then the
broker and central come back. No kiosk scans again and central's periodic ack of
every device (every 120 s) does not come within the test, so only the kiosks' own
timer can bring the lost events back: they must all reach central, once each, in
bounded time. Intervals are shortened here; docs/events.md states the defaults.
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

import pytest

from kiosk import keys
from kiosk.central.registry import Registry, parse_registration
from kiosk.central.store import open_store
from tests.support import broker as broker_support
from tests.support.broker import BrokerFactory, Mosquitto
from tests.support.central import TestDevice

pytestmark = [pytest.mark.broker, pytest.mark.slow]

mosquitto_factory = broker_support.mosquitto_factory

ROOT = Path(__file__).resolve().parents[1]
RESEND_AFTER_S = 2.0  # uplink.resend_unacked_s (default 120 s)
RESEND_MAX_S = 4.0  # uplink.resend_unacked_max_s (default 1800 s)
FIRST, LAST = 20, 30  # scans per kiosk while central is up, then while it is down
HEAL_WITHIN_S = 25.0  # reconnect (backoff ≤ 0.5 s) + the longest timer wait + delivery, with room

# A kiosk: the real spool and uplink in their own process; scans come as lines on stdin
# ("scan N"), and it says "sent" once the broker has accepted all it recorded.
KIOSK = """
import logging, sys, time
from pathlib import Path
from kiosk import keys
from kiosk.config import UplinkConfig
from kiosk.events import EventDraft
from kiosk.sealing import Sealer
from kiosk.spool import Spool
from kiosk.uplink import Uplink
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

spool_path, device, key_file, authority_file, url, after, most = sys.argv[1:8]
logging.basicConfig(level=logging.INFO)
authority = keys.load_public_keys(Path(authority_file))
SEALER = Sealer(X25519PrivateKey.generate().public_key(), destination_key=bytes(32))
spool = Spool.open(Path(spool_path), device_id=device, destination_id="cho-ben-thanh",
                   signing_key=keys.load_private_key(Path(key_file)), sealer=SEALER)
settings = UplinkConfig(broker=url, backoff_min_s=0.05, backoff_max_s=0.5, keepalive_s=5,
                        resend_unacked_s=float(after), resend_unacked_max_s=float(most))
with Uplink(settings, spool=spool, authority_keys=authority) as uplink:
    for line in sys.stdin:
        for _ in range(int(line.split()[1])):
            spool.record(EventDraft(verdict="pass", reason="ok", direction="in", ts=int(time.time() * 1000)))
            uplink.wake()
        while spool.unsent_count():
            time.sleep(0.05)
        print("sent", spool.last_seq(), flush=True)
"""


class KioskProcess:
    """One kiosk process; its log goes to a file."""

    def __init__(self, device: TestDevice, folder: Path, broker: Mosquitto, authority_pem: Path) -> None:
        key_file = folder / f"{device.device}.key"
        self.log = folder / f"{device.device}.log"
        spool = folder / f"{device.device}.spool"
        argv = [sys.executable, "-c", KIOSK, str(spool), device.device, str(key_file), str(authority_pem),
                broker.url, str(RESEND_AFTER_S), str(RESEND_MAX_S)]  # fmt: skip
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(
                argv, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, text=True
            )

    def scan(self, count: int) -> int:
        """Record `count` scans; returns the last seq once the broker has accepted them all."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(f"scan {count}\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        assert line.startswith("sent"), self.log.read_text()
        return int(line.split()[1])

    def close(self) -> None:
        """SIGTERM, then SIGKILL if it lingers."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None:
                stream.close()


class CentralProcess:
    """`kiosk-central ingest` with a fixed client id (a persistent session at the broker)."""

    def __init__(self, db: str, broker: Mosquitto, key: Path, folder: Path) -> None:
        self.log = folder / "central.log"
        self._argv = [sys.executable, "-m", "kiosk.central.cli", "--db", db, "ingest", "--broker", broker.url,
                      "--key", str(key), "--client-id", "central-1", "--resend-after", "0.5"]  # fmt: skip
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> None:
        """Start and wait until it has subscribed."""
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(self._argv, cwd=ROOT, stderr=log)
        self.starts += 1
        wait_for(lambda: self.log.read_text().count("ingesting") == self.starts, 20, "central subscribed")

    def kill(self) -> None:
        """kill -9: no clean disconnect."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)


def wait_for(condition: Callable[[], bool], timeout_s: float, what: str) -> float:
    """Wait until `condition` holds; returns how long it took."""
    start = time.monotonic()
    while not condition():
        assert time.monotonic() - start < timeout_s, f"timed out waiting for {what}"
        time.sleep(0.1)
    return time.monotonic() - start


def stored(db: str) -> dict[str, list[int]]:
    """The seqs central stored, per device."""
    with open_store(db) as store:
        rows = store.events(0, 2**53 - 1)
    seqs: dict[str, list[int]] = {}
    for row in rows:
        seqs.setdefault(row.device, []).append(row.seq)
    return {device: sorted(found) for device, found in seqs.items()}


@pytest.fixture
def processes() -> Iterator[list[KioskProcess | CentralProcess]]:
    made: list[KioskProcess | CentralProcess] = []
    yield made
    for process in made:
        if isinstance(process, CentralProcess):
            process.kill()
        else:
            process.close()


def test_events_the_broker_lost_while_central_was_down_arrive_without_a_new_scan(
    tmp_path: Path, mosquitto_factory: BrokerFactory, processes: list[KioskProcess | CentralProcess]
) -> None:
    broker = mosquitto_factory(persistence=False)
    devices = [
        TestDevice(f"kiosk-{n}", "cho-ben-thanh", key=keys.generate_device_key(tmp_path / f"kiosk-{n}.key"))
        for n in (1, 2)
    ]
    db = f"sqlite://{tmp_path / 'central.sqlite3'}"
    with open_store(db) as store:
        for device in devices:
            Registry(store).add(parse_registration(json.dumps(device.registration())))
        store.commit()
    authority_key = tmp_path / "authority.key"
    keys.generate_device_key(authority_key)
    authority_pem = tmp_path / "authority.pem"
    authority_pem.write_text(keys.public_pem(keys.load_private_key(authority_key).public_key()))
    central = CentralProcess(db, broker, authority_key, tmp_path)
    processes.append(central)
    central.start()
    kiosks = [KioskProcess(device, tmp_path, broker, authority_pem) for device in devices]
    processes.extend(kiosks)

    for kiosk in kiosks:
        kiosk.scan(FIRST)
    wait_for(lambda: sum(map(len, stored(db).values())) == 2 * FIRST, 20, "the first scans at central")
    central.kill()
    for kiosk in kiosks:
        assert kiosk.scan(LAST) == FIRST + LAST  # the last scans: the broker accepted them all
    broker.kill()  # and loses them: no persistence
    broker.start()
    central.start()

    wait_for(
        lambda: stored(db) == {d.device: list(range(1, FIRST + LAST + 1)) for d in devices},
        HEAL_WITHIN_S,
        "every event at central, once, with no new scan",
    )
    for kiosk in kiosks:
        assert "central has not acknowledged" in kiosk.log.read_text(), kiosk.log.read_text()
