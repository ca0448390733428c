"""Central's MQTT connection (paho 2, MQTT 5): connect, authenticate, subscribe, or say why not."""

from __future__ import annotations

import os
import secrets
import socket
import ssl
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from kiosk.errors import UplinkError
from kiosk.keys import read_secret

OnMessage = Callable[[str, bytes, int, int], None]  # topic, payload, mid, qos


@dataclass(frozen=True)
class BrokerSettings:
    """Where central's broker is and how to log in."""

    url: str = "mqtt://127.0.0.1:1883"
    username: str | None = None
    password_file: Path | None = None
    ca_file: Path | None = None
    client_id: str | None = None  # a fixed id gets a persistent session (messages wait while down)
    keepalive_s: int = 30
    session_expiry_s: int = 86400

    @property
    def host_port(self) -> tuple[str, int, bool]:
        """(host, port, tls) from the URL."""
        parts = urlsplit(self.url)
        if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
            raise UplinkError(
                f"broker URL {self.url!r} must look like mqtt://HOST[:PORT] or mqtts://HOST[:PORT]"
            )
        tls = parts.scheme == "mqtts"
        try:
            return parts.hostname, parts.port or (8883 if tls else 1883), tls
        except ValueError as e:
            raise UplinkError(f"broker URL {self.url!r} has a bad port") from e


def _client(settings: BrokerSettings, *, manual_ack: bool) -> paho.Client:
    client_id = (
        settings.client_id or f"kiosk-central-{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"
    )
    client = paho.Client(
        CallbackAPIVersion.VERSION2, client_id=client_id, protocol=paho.MQTTv5, manual_ack=manual_ack
    )
    if settings.username:
        password = read_secret(settings.password_file).decode().strip() if settings.password_file else None
        client.username_pw_set(settings.username, password)
    if settings.host_port[2]:
        client.tls_set(ca_certs=str(settings.ca_file) if settings.ca_file else None)
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
    ready = threading.Event()
    refused: list[str] = []

    def on_connect(c: paho.Client, _u: object, _f: object, reason: paho.ReasonCode, _p: object) -> None:
        if reason.is_failure:
            refused.append(str(reason))
            ready.set()
        elif subscriptions:
            c.subscribe([(topic, 1) for topic in subscriptions])
        else:
            ready.set()

    def on_subscribe(
        _c: paho.Client, _u: object, _m: int, reasons: list[paho.ReasonCode], _p: object
    ) -> None:
        refused.extend(f"subscription refused: {r}" for r in reasons if r.is_failure)
        ready.set()

    client.on_connect, client.on_subscribe = on_connect, on_subscribe
    if on_message is not None:
        client.on_message = lambda _c, _u, m: on_message(m.topic, bytes(m.payload), m.mid, m.qos)
    _start(client, settings, receive_maximum)
    _wait_ready(client, settings, ready, refused, timeout_s)
    return client


def _wait_ready(
    client: paho.Client,
    settings: BrokerSettings,
    ready: threading.Event,
    refused: list[str],
    timeout_s: float,
) -> None:
    if ready.wait(timeout_s) and not refused:
        return
    close(client)
    why = refused[0] if refused else f"no answer within {timeout_s}s"
    raise UplinkError(f"broker {settings.url} refused central ({why}): check the URL, user, password and ACL")


def _start(client: paho.Client, settings: BrokerSettings, receive_maximum: int) -> None:
    host, port, _tls = settings.host_port
    try:
        client.connect(
            host,
            port,
            keepalive=settings.keepalive_s,
            clean_start=settings.client_id is None,
            properties=_connect_properties(settings, receive_maximum),
        )
    except (OSError, ssl.SSLError) as e:
        raise UplinkError(
            f"cannot reach broker {settings.url}: {e} (is it running? is the port right?)"
        ) from e
    client.loop_start()


def close(client: paho.Client) -> None:
    """Disconnect cleanly and stop the network thread."""
    client.disconnect()
    client.loop_stop()
