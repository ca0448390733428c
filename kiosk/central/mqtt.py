"""Central's MQTT connection: its client id and persistent session, over the shared `kiosk.broker`."""

from __future__ import annotations

import os
import secrets
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import paho.mqtt.client as paho
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from kiosk import broker

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
