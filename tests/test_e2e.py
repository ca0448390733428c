"""End to end: `kiosk run` as a process, a replay camera, a real mosquitto, an independent verifier."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path

import cv2
import paho.mqtt.client as mqtt
import pytest

from kiosk import cardmaker, keys, scenes
from tests.support import broker as broker_support
from tests.support.broker import Mosquitto
from tests.support.central import write_kiosk_keys

mosquitto = broker_support.mosquitto
mosquitto_factory = broker_support.mosquitto_factory

CARDS = [
    (cardmaker.national_payload(), ("pass", "ok", "national", "in")),
    (cardmaker.cccd_payload(), ("pass", "ok", "cccd", "in")),
    ("https://checkin.example.vn/venue/12345", ("fail", "old_venue_qr", "poster", None)),
    ("not a card at all", ("fail", "unrecognised", "unknown", None)),
    (cardmaker.national_payload(), ("pass", "ok", "national", "out")),
]


class Subscriber:
    """A plain paho client that collects every event and state token, as central would."""

    def __init__(self, broker: Mosquitto) -> None:
        self.events: list[bytes] = []
        self.states: list[bytes] = []
        self.subscribed = threading.Event()
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id="e2e-subscriber", protocol=mqtt.MQTTv5
        )
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *_: self.subscribed.set()
        self.client.connect(broker.host, broker.port)
        self.client.subscribe([("kiosk/v1/+/+/event", 1), ("kiosk/v1/+/+/state", 1)])
        self.client.loop_start()
        assert self.subscribed.wait(5)

    def _on_message(self, _client: mqtt.Client, _userdata: object, message: mqtt.MQTTMessage) -> None:
        if message.topic.endswith("/event"):
            self.events.append(message.payload)
        else:
            self.states.append(message.payload)

    def wait_for(self, count: int, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while len(self.events) < count and time.monotonic() < deadline:
            time.sleep(0.05)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def write_scene(folder: Path) -> None:
    """The cards of CARDS held up one after another, as PNG files a replay camera plays."""
    folder.mkdir()
    frames = scenes.demo_frames([payload for payload, _ in CARDS])
    # The fifth card is the first person leaving: pad so it comes after the repeat window.
    frames[-15:-15] = [scenes.empty_frame(scenes.Scene(seed=99 + i)) for i in range(60)]
    for number, frame in enumerate(frames):
        cv2.imwrite(str(folder / f"{number:05d}.png"), frame)


def write_config(tmp_path: Path, broker: Mosquitto, frames: Path) -> Path:
    state = tmp_path / "state"
    keys.generate_device_key(state / "device.key")
    write_kiosk_keys(state)
    config = tmp_path / "kiosk.toml"
    config.write_text(
        f"""
[device]
id = "kiosk-e2e"
[destination]
id = "cho-ben-thanh"
direction = "auto"
[camera]
source = "{frames}"
fps = 60
[policy]
repeat_window_s = 1
[feedback]
screen = "offscreen"
[uplink]
broker = "{broker.url}"
[paths]
state_dir = "{state}"
"""
    )
    return config


def verify_independently(token: bytes, public_jwk: dict) -> dict:
    """Verify with joserfc, a JOSE library that shares no code with ours."""
    from joserfc import jws
    from joserfc.jwk import OKPKey

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # joserfc flags alg EdDSA as superseded by RFC 9864
        verified = jws.deserialize_compact(
            token.decode(), OKPKey.import_key(public_jwk), algorithms=["EdDSA"]
        )
    return json.loads(verified.payload)


@pytest.mark.broker
@pytest.mark.slow
def test_kiosk_run_end_to_end(tmp_path: Path, mosquitto: Mosquitto) -> None:
    write_scene(tmp_path / "frames")
    config = write_config(tmp_path, mosquitto, tmp_path / "frames")
    subscriber = Subscriber(mosquitto)
    env = {**os.environ, "SDL_VIDEODRIVER": "dummy", "SDL_AUDIODRIVER": "dummy"}
    log_file = tmp_path / "kiosk.log"
    with log_file.open("w") as log_out:
        process = subprocess.Popen(
            [sys.executable, "-m", "kiosk", "run", "--config", str(config)], env=env, stderr=log_out
        )
    try:
        subscriber.wait_for(len(CARDS), timeout_s=60)
        process.send_signal(signal.SIGTERM)
        started = time.monotonic()
        code = process.wait(timeout=10)
        stopped_within = time.monotonic() - started
    finally:
        if process.poll() is None:
            process.kill()
        subscriber.close()
    log = log_file.read_text()
    assert code == 0, log
    assert stopped_within < 5, log
    public = keys.public_jwk(keys.load_private_key(tmp_path / "state" / "device.key").public_key())
    events = [verify_independently(token, public) for token in subscriber.events]
    unique = {(e["device"], e["epoch"], e["seq"]): e for e in events}
    ordered = [unique[key] for key in sorted(unique)]
    assert [e["seq"] for e in ordered] == list(range(1, len(CARDS) + 1)), "no seq missing"
    assert [(e["verdict"], e["reason"], e["format"], e["direction"]) for e in ordered] == [
        c for _, c in CARDS
    ]
    assert all(e["device"] == "kiosk-e2e" and e["destination"] == "cho-ben-thanh" for e in ordered)
    # The states are signed by the device key too, and verify with a library that shares no code.
    states = [verify_independently(token, public) for token in subscriber.states]
    assert states[-1]["status"] == "stopped", states
    assert any(s["status"] == "online" for s in states)
    assert all(s["device"] == "kiosk-e2e" for s in states)
    # The journal holds no name by default (log.decision_name = "none").
    assert "decision verdict=pass" in log and "NGUYEN" not in log and "name=" not in log
