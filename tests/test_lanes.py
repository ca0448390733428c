"""A venue with several lanes: `kiosk run` processes share who is inside through a real mosquitto
(with the per-destination ACL): an entry and an exit lane across a broker outage, and an entry, an
exit and an auto lane counting everyone against one capacity."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import cv2
import paho.mqtt.client as mqtt
import pytest

from kiosk import cardmaker, keys, scenes
from kiosk.central.lanes import peer_records, presence_acl
from kiosk.central.store import DeviceRow
from tests.support import broker as broker_support
from tests.support.broker import BrokerFactory, Mosquitto
from tests.support.central import write_kiosk_keys

mosquitto_factory = broker_support.mosquitto_factory

VENUE = "cho-ben-thanh"
LANES = {"lane-in": "in", "lane-out": "out"}
ELSEWHERE = ("lane-far", "another-venue")
BASE_ACL = (Path(__file__).parent.parent / "provisioning" / "acl.example").read_text()
PEOPLE = [
    cardmaker.national_payload(),
    cardmaker.national_payload(id_number="079201000123", qid="123456789012345678", name="TRAN THI B"),
    cardmaker.national_payload(id_number="079201000456", qid="223456789012345678", name="LE VAN C"),
]


class Observer:
    """Central's view: every event, state and presence message of the venue (reconnects by itself)."""

    def __init__(self, broker: Mosquitto, user: str = "central") -> None:
        self.messages: list[tuple[str, bytes]] = []
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=f"test-{user}", protocol=mqtt.MQTTv5
        )
        self.client.username_pw_set(user, "pw")
        self.client.on_connect = lambda c, *_: c.subscribe("kiosk/v1/#", qos=1)
        self.client.on_message = lambda _c, _u, m: self.messages.append((m.topic, m.payload))
        self.client.reconnect_delay_set(0.2, 1)
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()

    def events(self, device: str) -> list[dict]:
        found = {}
        for topic, payload in list(self.messages):
            if topic.endswith(f"/{device}/event"):
                event = json.loads(keys_b64(payload.split(b".")[1]))
                found[(event["epoch"], event["seq"])] = event
        return [found[k] for k in sorted(found)]

    def inside(self, device: str) -> int | None:
        states = [json.loads(keys_b64(p.split(b".")[1])) for t, p in list(self.messages)
                  if t.endswith(f"/{device}/state")]  # fmt: skip
        online = [s for s in states if s["status"] == "online"]
        return online[-1].get("inside") if online else None

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def keys_b64(segment: bytes) -> bytes:
    from kiosk.jws import b64url_decode

    return b64url_decode(segment)


def wait_until(what: str, check: Callable[[], bool], timeout_s: float, logs: Callable[[], str]) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}\n{logs()}")


class Lane:
    """One `kiosk run` process whose camera sees `view.png`, which the test swaps."""

    def __init__(
        self, tmp_path: Path, device: str, destination: str, direction: str, capacity: int | None = None
    ) -> None:
        self.device, self.destination = device, destination
        self.root = tmp_path / device
        self.state = self.root / "state"
        self.key = keys.generate_device_key(self.state / "device.key")
        write_kiosk_keys(self.state)  # the venue's destination key, shared by its lanes
        keys.write_secret(self.state / "broker.password", b"pw")
        self.view = self.root / "view" / "view.png"
        self.view.parent.mkdir(parents=True)
        self.show(None)
        self.direction = direction
        self.capacity = f"capacity = {capacity}" if capacity is not None else ""
        self.process: subprocess.Popen[bytes] | None = None
        self.log = self.root / "kiosk.log"

    def row(self) -> DeviceRow:
        public = self.key.public_key()
        return DeviceRow(
            self.device, self.destination, keys.public_pem(public), keys.thumbprint(public), "t", "t"
        )

    def show(self, payload: str | None) -> None:
        scene = scenes.Scene(seed=len(payload or ""))
        frame = scenes.render(payload, scene) if payload else scenes.empty_frame(scene)
        partial = self.view.with_suffix(".tmp.png")
        cv2.imwrite(str(partial), frame)
        os.replace(partial, self.view)  # the camera never reads half a file

    def start(self, broker: Mosquitto, peers: str) -> None:
        (self.state / "peers.json").write_text(peers)
        config = self.root / "kiosk.toml"
        config.write_text(f"""
[device]
id = "{self.device}"
[destination]
id = "{self.destination}"
direction = "{self.direction}"
share_presence = true
{self.capacity}
[camera]
source = "{self.view}"
fps = 10
replay_loop = true
[policy]
repeat_window_s = 1
[feedback]
screen = "offscreen"
[uplink]
broker = "{broker.url}"
password_file = "{self.state / "broker.password"}"
state_interval_s = 5
backoff_min_s = 0.2
backoff_max_s = 1.0
[paths]
state_dir = "{self.state}"
""")
        env = {**os.environ, "SDL_VIDEODRIVER": "dummy", "SDL_AUDIODRIVER": "dummy"}
        with self.log.open("w") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "kiosk", "run", "--config", str(config)], env=env, stderr=out
            )

    def decisions(self) -> int:
        return len(re.findall("decision verdict=", self.log.read_text()))

    def stop(self) -> int:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=10)
        finally:
            if self.process.poll() is None:
                self.process.kill()


@contextmanager
def venue(
    tmp_path: Path, factory: BrokerFactory, directions: dict[str, str] = LANES, capacity: int | None = None
) -> Iterator[tuple[Mosquitto, dict[str, Lane], Observer]]:
    """The venue's lanes (device -> direction) running against a broker with the venue's ACL."""
    lanes = {
        device: Lane(tmp_path, device, VENUE, direction, capacity) for device, direction in directions.items()
    }
    far = Lane(tmp_path, *ELSEWHERE, "in")
    rows = [lane.row() for lane in (*lanes.values(), far)]
    users = {row.device: "pw" for row in rows} | {"central": "pw"}
    broker = factory(users=users, acl=BASE_ACL + "\n" + presence_acl(rows))
    observer = Observer(broker)
    for lane in lanes.values():
        lane.start(broker, peer_records(rows, VENUE))
    try:
        yield broker, lanes, observer
    finally:
        for lane in lanes.values():
            if lane.process is not None and lane.process.poll() is None:
                lane.process.kill()
        observer.close()


def hold_up(lane: Lane, payload: str, decisions: int, logs: Callable[[], str]) -> None:
    """Hold a card up to a lane until it has decided once more, then take it away.

    No test shows one person twice running to one lane: that would be a repeat within the window.
    """
    lane.show(payload)
    wait_until(f"a decision at {lane.device}", lambda: lane.decisions() > decisions, 20, logs)
    lane.show(None)


def all_logs(lanes: dict[str, Lane]) -> Callable[[], str]:
    """The tail of every lane's log, for a failure's message."""
    return lambda: "\n".join(f"--- {lane.device}\n{lane.log.read_text()[-3000:]}" for lane in lanes.values())


def wait_inside(observer: Observer, lanes: dict[str, Lane], count: int, logs: Callable[[], str]) -> None:
    """Until every lane's state says `count` people are inside."""
    wait_until(
        f"every lane counting {count} inside",
        lambda: all(observer.inside(device) == count for device in lanes),
        20,
        logs,
    )


@pytest.mark.broker
@pytest.mark.slow
def test_entry_and_exit_lanes_share_who_is_inside_across_a_broker_outage(
    tmp_path: Path, mosquitto_factory: BrokerFactory
) -> None:
    with venue(tmp_path, mosquitto_factory) as (broker, lanes, observer):
        entry, exit_ = lanes["lane-in"], lanes["lane-out"]
        logs = all_logs(lanes)

        wait_until(
            "both lanes online",
            lambda: None not in (observer.inside("lane-in"), observer.inside("lane-out")),
            20,
            logs,
        )
        hold_up(entry, PEOPLE[0], 0, logs)
        wait_until("the exit lane counting the entry", lambda: observer.inside("lane-out") == 1, 15, logs)

        broker.kill()
        hold_up(entry, PEOPLE[1], 1, logs)  # recorded and counted while the broker is away
        broker.start()
        wait_until("the exit lane catching up", lambda: observer.inside("lane-out") == 2, 20, logs)

        hold_up(exit_, PEOPLE[1], 0, logs)  # entered during the outage: a known exit
        hold_up(exit_, PEOPLE[2], 1, logs)  # never entered anywhere
        wait_until("the entry lane counting the exit", lambda: observer.inside("lane-in") == 1, 15, logs)
        wait_until("the exit events", lambda: len(observer.events("lane-out")) == 2, 15, logs)
        assert [(e["direction"], e["reason"]) for e in observer.events("lane-out")] == [
            ("out", "ok"), ("out", "exit_unseen")
        ]  # fmt: skip
        assert entry.decisions() == 2 and observer.events("lane-in")[0]["reason"] == "ok"
        assert all(lane.stop() == 0 for lane in lanes.values()), logs()
        assert "Traceback" not in logs()


THREE_LANES = {"lane-in": "in", "lane-out": "out", "lane-auto": "auto"}


def decided(observer: Observer, device: str) -> list[tuple[str | None, str, str]]:
    """(direction, verdict, reason) of a lane's events, in order."""
    return [(e["direction"], e["verdict"], e["reason"]) for e in observer.events(device)]


@pytest.mark.broker
@pytest.mark.slow
def test_an_entry_an_exit_and_an_auto_lane_count_everyone_against_one_capacity(
    tmp_path: Path, mosquitto_factory: BrokerFactory
) -> None:
    with venue(tmp_path, mosquitto_factory, THREE_LANES, capacity=2) as (_broker, lanes, observer):
        entry, exit_, auto = lanes["lane-in"], lanes["lane-out"], lanes["lane-auto"]
        logs = all_logs(lanes)
        wait_inside(observer, lanes, 0, logs)
        hold_up(entry, PEOPLE[0], 0, logs)
        hold_up(auto, PEOPLE[1], 0, logs)  # not inside anywhere: the auto lane counts them in
        wait_inside(observer, lanes, 2, logs)
        hold_up(entry, PEOPLE[2], 1, logs)  # full: whichever lane the two used
        hold_up(auto, PEOPLE[0], 1, logs)  # entered at the entry lane: the auto lane lets them out
        wait_inside(observer, lanes, 1, logs)
        hold_up(exit_, PEOPLE[1], 0, logs)  # entered at the auto lane: a known exit
        wait_inside(observer, lanes, 0, logs)
        counts = {"lane-in": 2, "lane-auto": 2, "lane-out": 1}

        def every_event() -> bool:
            return all(len(observer.events(device)) == n for device, n in counts.items())

        wait_until("every event", every_event, 15, logs)
        assert decided(observer, "lane-in") == [("in", "pass", "ok"), ("in", "fail", "capacity_full")]
        assert decided(observer, "lane-auto") == [("in", "pass", "ok"), ("out", "pass", "ok")]
        assert decided(observer, "lane-out") == [("out", "pass", "ok")]
        assert all(lane.stop() == 0 for lane in lanes.values()), logs()
        assert "Traceback" not in logs()


@pytest.mark.broker
def test_a_kiosk_of_another_destination_can_neither_read_nor_write_the_venues_presence(
    tmp_path: Path, mosquitto_factory: BrokerFactory
) -> None:
    lanes = [Lane(tmp_path, device, VENUE, direction) for device, direction in LANES.items()]
    far = Lane(tmp_path, *ELSEWHERE, "in")
    rows = [lane.row() for lane in (*lanes, far)]
    broker = mosquitto_factory(
        users={row.device: "pw" for row in rows} | {"central": "pw"}, acl=BASE_ACL + presence_acl(rows)
    )
    central = Observer(broker)
    received: dict[str, list[str]] = {"lane-in": [], "lane-far": []}
    clients = []
    for device in received:
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=device, protocol=mqtt.MQTTv5)
        client.username_pw_set(device, "pw")
        client.on_message = lambda _c, userdata, m: userdata.append(m.topic)
        client.user_data_set(received[device])
        client.connect(broker.host, broker.port)
        client.loop_start()
        client.subscribe(f"kiosk/v1/{VENUE}/+/presence", qos=1)
        clients.append(client)
    try:
        time.sleep(0.5)
        for client, device in zip(clients, received, strict=True):
            client.publish(f"kiosk/v1/{VENUE}/{device}/presence", b"x", qos=1, retain=True).wait_for_publish(
                5
            )
        clients[1].publish(f"kiosk/v1/{VENUE}/lane-in/presence", b"forged", qos=1).wait_for_publish(5)
        time.sleep(1.0)
        topics = [t for t, _ in central.messages]
        assert f"kiosk/v1/{VENUE}/lane-in/presence" in topics, "the venue's lane may write its own"
        assert topics.count(f"kiosk/v1/{VENUE}/lane-in/presence") == 1, "nobody else may write it"
        assert f"kiosk/v1/{VENUE}/lane-far/presence" not in topics, "another venue's kiosk may not write here"
        assert received["lane-in"] == [f"kiosk/v1/{VENUE}/lane-in/presence"], "a lane reads its venue"
        assert received["lane-far"] == [], "another venue's kiosk reads nothing of it"
    finally:
        for client in clients:
            client.loop_stop()
            client.disconnect()
        central.close()
