"""Central's MQTT connection: its client id and persistent session, over the shared `kiosk.broker`."""

from __future__ import annotations

import argparse
import os
import secrets
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as paho
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from kiosk import broker
from kiosk.errors import ConfigError, UplinkError

OnMessage = Callable[[str, bytes, int, int], None]  # topic, payload, mid, qos


@dataclass(frozen=True)
class BrokerSettings(broker.BrokerSettings):
    """Where central's broker is, how to log in, and whether central keeps a session there."""

    client_id: str | None = None  # a fixed id gets a persistent session (messages wait while down)
    session_expiry_s: int = 86400


def _client(settings: BrokerSettings, *, manual_ack: bool) -> paho.Client:
    client_id = (
        settings.client_id or f"kiosk-central-{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"
    )
    client = broker.new_client(settings, client_id, manual_ack=manual_ack)
    client.reconnect_delay_set(1, 30)
    return client


def _connect_properties(settings: BrokerSettings, receive_maximum: int) -> Properties:
    props = Properties(PacketTypes.CONNECT)
    if settings.client_id:
        props.SessionExpiryInterval = settings.session_expiry_s
    # How many QoS 1 messages the broker may have in flight to us before our PUBACKs.
    props.ReceiveMaximum = receive_maximum
    return props


def connect(
    settings: BrokerSettings,
    *,
    on_message: OnMessage | None = None,
    subscriptions: Sequence[str] = (),
    receive_maximum: int = 5000,
    timeout_s: float = 10.0,
) -> paho.Client:
    """A connected client with its network thread running, subscribed (again on every reconnect)."""
    client = _client(settings, manual_ack=on_message is not None)
    if on_message is not None:
        client.on_message = lambda _c, _u, m: on_message(m.topic, bytes(m.payload), m.mid, m.qos)
    broker.connect(
        client,
        settings,
        subscriptions=subscriptions,
        properties=_connect_properties(settings, receive_maximum),
        clean_start=settings.client_id is None,
        timeout_s=timeout_s,
    )
    return client


close = broker.close


def add_broker_arguments(parser: argparse.ArgumentParser) -> None:
    """The options that say where central's broker is and how to log in."""
    parser.add_argument("--broker", default="mqtt://127.0.0.1:1883", help="mqtt://HOST[:PORT] or mqtts://...")
    parser.add_argument("--username", help="broker username")
    parser.add_argument("--password-file", type=Path, help="file holding the broker password (mode 0600)")
    parser.add_argument("--ca", type=Path, help="CA certificate of the broker (mqtts)")
    parser.add_argument("--cert", type=Path, help="client certificate (mqtts; with --cert-key)")
    parser.add_argument("--cert-key", type=Path, help="key of the client certificate (mode 0600)")
    parser.add_argument("--prefix", default="kiosk/v1", help="topic prefix (default: kiosk/v1)")


def settings_from(args: argparse.Namespace, client_id: str | None = None) -> BrokerSettings:
    """The broker settings named by `add_broker_arguments`' options."""
    return BrokerSettings(
        url=args.broker, username=args.username, password_file=args.password_file, ca_file=args.ca,
        cert_file=args.cert, key_file=args.cert_key, client_id=client_id,
    )  # fmt: skip


def read_token(path: Path) -> bytes:
    """A signed list from a file, or a ConfigError naming the file."""
    try:
        return path.read_bytes().strip()
    except OSError as e:
        raise ConfigError(f"cannot read {path}: {e.strerror}") from e


def publish_retained(settings: BrokerSettings, topic: str, token: bytes, *, what: str) -> None:
    """Publish `token` retained at QoS 1 and wait for the broker's PUBACK."""
    client = connect(settings)
    try:
        info = client.publish(topic, token, qos=1, retain=True)
        info.wait_for_publish(timeout=30)
        if not info.is_published():
            raise UplinkError(f"the broker did not confirm the {what} on {topic}; try again")
    finally:
        close(client)
    print(f"published {len(token)} bytes on {topic} (retained)")
