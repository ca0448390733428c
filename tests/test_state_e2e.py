"""The signed state end to end: a kiosk's uplink and central's ingest, through a broker with logins and ACLs.

Central stores the state the kiosk signed; a state forged with nothing more than the
device's own broker login (plain JSON, or signed by another key) is refused and
leaves the stored one as it was.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from kiosk import jws
from kiosk.central.mqtt import BrokerSettings
from kiosk.central.registry import Registry, parse_registration
from kiosk.central.store import StateRow, open_store
from kiosk.state import STATE_TYP
from kiosk.uplink import Uplink
from tests.support import broker as broker_support
from tests.support.broker import BrokerFactory, Mosquitto
from tests.support.central import TestDevice
from tests.test_central_broker import Instance
from tests.test_uplink import AUTHORITY_KEYS, DEVICE_KEY, open_spool, uplink_settings, wait_until
from tests.test_uplink_security import ACL, client_as, close_client, password_file

mosquitto_factory = broker_support.mosquitto_factory  # fixtures are found by module attribute name

pytestmark = [pytest.mark.broker, pytest.mark.slow]

KIOSK = TestDevice("kiosk-1", "venue-1", key=DEVICE_KEY)  # the key open_spool signs with
USERS = {"kiosk-1": "pw-kiosk-1", "kiosk-2": "pw-kiosk-2", "central": "pw-central"}


@pytest.fixture
def central(mosquitto_factory: BrokerFactory, tmp_path: Path) -> Iterator[tuple[Mosquitto, Instance, str]]:
    """A locked broker and one central ingest (logged in as `central`) with kiosk-1 registered."""
    broker = mosquitto_factory(users=USERS, acl=ACL)
    db = f"sqlite://{tmp_path}/central.sqlite3"
    with open_store(db) as store:
        Registry(store).add(parse_registration(json.dumps(KIOSK.registration())))
        store.commit()
    settings = BrokerSettings(
        url=broker.url, username="central", password_file=password_file(tmp_path, "central")
    )
    instance = Instance(settings, db)
    try:
        assert instance.ready.wait(15) and instance.error is None, instance.error
        yield broker, instance, db
    finally:
        instance.close()


def stored(db: str) -> dict[str, StateRow]:
    """Central's stored states, by device."""
    with open_store(db) as reader:
        return {row.device: row for row in reader.states()}


def rejected(instance: Instance) -> dict[str, int]:
    """What the ingest refused so far, by reason."""
    assert instance.processor is not None
    return dict(instance.processor.stats.rejected)


def publish_as_kiosk(broker: Mosquitto, payloads: list[bytes]) -> None:
    """Publish retained states on kiosk-1's own topic with kiosk-1's own broker login."""
    client = client_as(broker, "kiosk-1")
    try:
        for payload in payloads:
            info = client.publish(KIOSK.topic("state"), payload, qos=1, retain=True)
            info.wait_for_publish(10)
            assert info.rc == mqtt.MQTT_ERR_SUCCESS
    finally:
        close_client(client)


def run_kiosk(broker: Mosquitto, tmp_path: Path, db: str) -> StateRow:
    """Run kiosk-1's uplink until central stores its signed `online`, then close it (`stopped`)."""
    settings = uplink_settings(broker, password_file=password_file(tmp_path, "kiosk-1"))
    seen: list[StateRow] = []

    def online() -> bool:
        seen[:] = [row for row in stored(db).values() if row.status == "online"]
        return bool(seen)

    with (
        open_spool(tmp_path / "spool.db") as spool,
        Uplink(settings, spool=spool, authority_keys=AUTHORITY_KEYS) as uplink,
    ):
        uplink.start()
        wait_until(online, 20, "the kiosk's online state at central")
    return seen[0]


def test_a_signed_state_is_stored_and_one_forged_with_the_devices_login_is_refused(
    central: tuple[Mosquitto, Instance, str], tmp_path: Path
) -> None:
    broker, instance, db = central
    online = run_kiosk(broker, tmp_path, db)
    assert online.device == "kiosk-1" and {"spool_depth", "unsent", "counts_today"} <= set(online.health)
    wait_until(lambda: stored(db)["kiosk-1"].status == "stopped", 10, "the stopped state on a clean exit")
    switched_off = stored(db)["kiosk-1"]

    # Someone with kiosk-1's broker password (not its key) says the switched-off kiosk is online.
    later = int(time.time() * 1000) + 60_000
    plain = {"status": "online", "device": "kiosk-1", "destination": "venue-1", "ts": later}
    forged = jws.sign(json.dumps(plain).encode(), Ed25519PrivateKey.generate(), kid="kiosk-1", typ=STATE_TYP)
    publish_as_kiosk(broker, [json.dumps(plain).encode(), forged])
    wait_until(lambda: rejected(instance).get("bad_signature") == 2, 10, "both forgeries refused")
    assert stored(db)["kiosk-1"] == switched_off

    # The kiosk's own signed states still go through the same way.
    publish_as_kiosk(broker, [KIOSK.state("online", ts=later)])
    wait_until(lambda: stored(db)["kiosk-1"].status == "online", 10, "the genuine signed state")
    assert stored(db)["kiosk-1"].ts == later and rejected(instance) == {"bad_signature": 2}
