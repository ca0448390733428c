"""How every paho client of the project reaches a broker: address, credentials, TLS, connect-and-wait.

The kiosk's uplink, `kiosk selftest` and central's ingest and publisher all connect
through here, so a broker URL, a password file or a certificate means the same thing
everywhere and a failure is explained in the same words. The rule for client
certificates: `cert_file` and `key_file` go together (both or neither), and the
certificate is presented only over TLS (`mqtts://`).
"""

from __future__ import annotations

import socket
import ssl
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal
from urllib.parse import urlsplit

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from kiosk.errors import DeviceKeyError, UplinkError
from kiosk.keys import read_secret

if TYPE_CHECKING:
    from kiosk.config import UplinkConfig

CONNECT_TIMEOUT_S = 10.0
HANDSHAKE_SLICE_S = 0.2  # how often a TLS handshake in progress looks at its stop event


@dataclass(frozen=True)
class BrokerAddress:
    """Where a broker listens, parsed from `mqtt://HOST[:PORT]` or `mqtts://HOST[:PORT]`."""

    host: str
    port: int
    tls: bool

    @classmethod
    def parse(cls, url: str) -> BrokerAddress:
        """The address of a broker URL; UplinkError naming the URL when it is not one."""
        parts = urlsplit(url)
        if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
            raise UplinkError(f"broker URL {url!r} must look like mqtt://HOST[:PORT] or mqtts://HOST[:PORT]")
        tls = parts.scheme == "mqtts"
        try:
            return cls(parts.hostname, parts.port or (8883 if tls else 1883), tls)
        except ValueError as e:
            raise UplinkError(f"broker URL {url!r} has a bad port") from e

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass(frozen=True)
class SettingNames:
    """What the operator calls each setting, so error messages name the right knob."""

    credentials: str = "--username and --password-file"
    ca_file: str = "--ca"
    cert_file: str = "--cert and --cert-key"


DEVICE_NAMES = SettingNames(
    credentials="uplink.username and uplink.password_file",
    ca_file="uplink.tls.ca_file",
    cert_file="uplink.tls.cert_file and uplink.tls.key_file",
)


@dataclass(frozen=True)
class BrokerSettings:
    """A broker and how to log in to it: URL, user, password file, TLS files."""

    url: str = "mqtt://127.0.0.1:1883"
    username: str | None = None
    password_file: Path | None = None
    ca_file: Path | None = None  # none: the system's CA certificates
    cert_file: Path | None = None  # a client certificate, with its key_file
    key_file: Path | None = None
    keepalive_s: int = 30
    names: SettingNames = field(default=SettingNames(), compare=False)

    @classmethod
    def for_device(cls, uplink: UplinkConfig, device_id: str) -> BrokerSettings:
        """A kiosk's broker settings; with a password file the username defaults to the device id."""
        username = uplink.username or (device_id if uplink.password_file is not None else None)
        return cls(
            url=uplink.broker,
            username=username,
            password_file=uplink.password_file,
            ca_file=uplink.tls.ca_file,
            cert_file=uplink.tls.cert_file,
            key_file=uplink.tls.key_file,
            keepalive_s=uplink.keepalive_s,
            names=DEVICE_NAMES,
        )

    @property
    def address(self) -> BrokerAddress:
        """Host, port and whether TLS is used (UplinkError for a bad URL)."""
        return BrokerAddress.parse(self.url)

    def password(self) -> str | None:
        """The password from `password_file` (which must be readable only by its owner), or None."""
        if self.password_file is None:
            return None
        if not self.username:
            raise UplinkError(f"a broker password file needs a username: set {self.names.credentials}")
        try:
            return read_secret(self.password_file).decode().strip()
        except DeviceKeyError as e:
            raise UplinkError(f"broker password: {e}") from e


def tls_context(settings: BrokerSettings, *, stop: threading.Event | None = None) -> ssl.SSLContext:
    """The TLS context for `settings`: its CA (or the system's), and the client certificate if any.

    A handshake through it closes its socket when it fails, and gives up once `stop` is set.
    """
    if (settings.cert_file is None) != (settings.key_file is None):
        raise UplinkError(f"a client certificate needs both files: set {settings.names.cert_file}")
    try:
        context = ssl.create_default_context(cafile=_str(settings.ca_file))
        if settings.cert_file is not None:
            context.load_cert_chain(str(settings.cert_file), _str(settings.key_file))
    except (OSError, ssl.SSLError, ValueError) as e:
        raise UplinkError(
            f"cannot load the TLS files (ca_file={settings.ca_file}, cert_file={settings.cert_file},"
            f" key_file={settings.key_file}): {e}; check they exist, are PEM, and the key fits the"
            " certificate"
        ) from e
    # A subclass per context, so a handshake in progress sees this client's stop event.
    context.sslsocket_class = type("_StoppableSSLSocket", (_ClosingSSLSocket,), {"stop": stop})
    return context


def new_client(
    settings: BrokerSettings,
    client_id: str,
    *,
    manual_ack: bool = False,
    stop: threading.Event | None = None,
) -> paho.Client:
    """An MQTT 5 paho client with the credentials and TLS of `settings`, not yet connected."""
    tls = settings.address.tls
    client = paho.Client(
        CallbackAPIVersion.VERSION2, client_id=client_id, protocol=paho.MQTTv5, manual_ack=manual_ack
    )
    client.connect_timeout = CONNECT_TIMEOUT_S
    if settings.username:
        client.username_pw_set(settings.username, settings.password())
    if tls:
        client.tls_set_context(tls_context(settings, stop=stop))
    return client


def connect(
    client: paho.Client,
    settings: BrokerSettings,
    *,
    subscriptions: Sequence[str] = (),
    properties: Properties | None = None,
    clean_start: bool | Literal[3] = paho.MQTT_CLEAN_START_FIRST_ONLY,
    timeout_s: float = CONNECT_TIMEOUT_S,
) -> None:
    """Connect, start the network thread and wait for the CONNACK (and SUBACK); UplinkError saying why not.

    The subscriptions are made again on every reconnect (paho reconnects by itself).
    """
    answer = _Answer(settings, subscriptions)
    client.on_connect, client.on_subscribe = answer.on_connect, answer.on_subscribe
    client.on_disconnect = answer.on_disconnect
    address = settings.address
    try:
        client.connect(
            address.host, address.port, settings.keepalive_s, clean_start=clean_start, properties=properties
        )
    except (OSError, ValueError) as e:
        raise UplinkError(explain(e, settings)) from e
    client.loop_start()
    if answer.ready.wait(timeout_s) and not answer.refused:
        return
    close(client)
    raise UplinkError(
        answer.refused[0] if answer.refused else f"{settings.url}: {no_answer(address, timeout_s)}"
    )


class _Answer:
    """The broker's answer to our CONNECT (and SUBSCRIBE), delivered on paho's network thread."""

    def __init__(self, settings: BrokerSettings, subscriptions: Sequence[str]) -> None:
        self.settings, self.subscriptions = settings, subscriptions
        self.ready = threading.Event()
        self.refused: list[str] = []

    def on_connect(self, client: paho.Client, _u: object, _f: object, reason: ReasonCode, _p: object) -> None:
        """CONNACK: refused, or subscribe (again, after a reconnect)."""
        if reason.is_failure:
            self._refuse(refusal(reason, self.settings))
        elif self.subscriptions:
            client.subscribe([(topic, 1) for topic in self.subscriptions])
        else:
            self.ready.set()

    def on_subscribe(
        self, _c: paho.Client, _u: object, _m: int, reasons: list[ReasonCode], _p: object
    ) -> None:
        """SUBACK: every refused filter is named."""
        for topic, reason in zip(self.subscriptions, reasons, strict=False):
            if reason.is_failure:
                self.refused.append(
                    f"{self.settings.url}: the broker refused the subscription to {topic} ({reason}):"
                    " check its ACL"
                )
        self.ready.set()

    def on_disconnect(self, _c: paho.Client, _u: object, _f: object, reason: ReasonCode, _p: object) -> None:
        """Closed before the CONNACK: e.g. a TLS listener that wants a certificate we did not show."""
        if not self.ready.is_set():
            self._refuse(
                f"the broker at {self.settings.url} closed the connection before accepting it ({reason});"
                f" {_hint(self.settings)}"
            )

    def _refuse(self, why: str) -> None:
        self.refused.append(why)
        self.ready.set()


def close(client: paho.Client) -> None:
    """Disconnect cleanly and stop the network thread."""
    client.disconnect()
    client.loop_stop()


def refusal(reason: ReasonCode, settings: BrokerSettings) -> str:
    """Why a CONNACK refused us, and what the operator should check."""
    return f"the broker at {settings.url} refused the connection: {reason}; {_hint(settings)}"


def _hint(settings: BrokerSettings) -> str:
    hint = f"check {settings.names.credentials}, and the broker's password file and ACL"
    if settings.address.tls:
        hint += f", or the client certificate ({settings.names.cert_file})"
    return hint


def no_answer(address: BrokerAddress, timeout_s: float) -> str:
    """The message for a broker that did not answer in time."""
    return f"no answer from {address} within {timeout_s:g} s: check the network and the broker"


def explain(e: BaseException, settings: BrokerSettings) -> str:
    """A failed connect (socket or TLS) in words that name what to check."""
    where = settings.address
    ca = settings.ca_file or "the system's CA certificates"
    if isinstance(e, ssl.SSLCertVerificationError):
        return (
            f"TLS: the broker's certificate is not trusted at {where}: it does not verify against {ca}"
            f" ({e.verify_message}); check {settings.names.ca_file} (the CA that signed it) and that the"
            " URL names the host the certificate was issued for"
        )
    if isinstance(e, ssl.SSLError):
        return (
            f"TLS handshake with {where} failed ({e.reason or e}); check {settings.names.ca_file} ({ca}),"
            f" {settings.names.cert_file}, and that the broker's TLS listener accepts this client's"
            " certificate"
        )
    if isinstance(e, ConnectionRefusedError):
        return f"cannot reach {where}: nothing accepts connections: is the broker running? is the port right?"
    if isinstance(e, socket.timeout | TimeoutError):
        return no_answer(where, CONNECT_TIMEOUT_S)
    return f"cannot reach {where}: {e}: check the network, host and port"


class _ClosingSSLSocket(ssl.SSLSocket):
    """An SSL socket that closes itself when its handshake fails, and gives up when `stop` is set.

    paho drops the socket of a failed handshake without closing it; every
    reconnect to a broker with the wrong CA would leak a descriptor until GC.
    paho's handshake blocks for the whole connect timeout; a broker that accepts
    and never answers must not hold up a client's close() that long.
    """

    stop: threading.Event | None = None  # set on the per-context subclass

    def do_handshake(self, block: bool = False) -> None:
        """Handshake, closing the socket on failure."""
        try:
            self._handshake_in_slices(block)
        except BaseException:
            self.close()
            raise

    def _handshake_in_slices(self, block: bool) -> None:
        budget = self.gettimeout()
        if self.stop is None or budget is None or budget <= 0:
            super().do_handshake(block)
            return
        # OpenSSL keeps the handshake's state across a timeout, so it resumes slice by slice.
        deadline = time.monotonic() + budget
        while True:
            if self.stop.is_set():
                raise ConnectionAbortedError("the client is stopping")
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("_ssl.c: The handshake operation timed out")
            self.settimeout(min(HANDSHAKE_SLICE_S, left))
            try:
                super().do_handshake(block)
                break
            except TimeoutError:
                continue
        self.settimeout(budget)


def _str(path: object) -> str | None:
    return None if path is None else str(path)
