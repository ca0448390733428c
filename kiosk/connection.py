"""The uplink's connect supervisor: keeps one paho client connected, for the process lifetime.

It connects, runs the client's network loop until the connection drops, and
reconnects after a full-jitter exponential backoff (thousands of kiosks must not
reconnect in step after a broker restart). A refused connection (credentials,
TLS, ACL) is an error naming what to check; a broker that is merely away is a
warning, said once until the error changes. Every attempt and failure is counted.
"""

from __future__ import annotations

import logging
import ssl
import threading
import time
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from kiosk import broker
from kiosk.backoff import FullJitterBackoff
from kiosk.counters import UplinkCounters

log = logging.getLogger(__name__)

TICK_S = 0.2


class Connection:
    """Connect, loop, reconnect with backoff; `run()` is the body of the `uplink-mqtt` thread."""

    def __init__(
        self,
        client: mqtt.Client,
        settings: broker.BrokerSettings,
        *,
        keepalive_s: int,
        max_packet_bytes: int,
        backoff: FullJitterBackoff,
        counters: UplinkCounters,
        stop: threading.Event,
        quiet: threading.Event,
        on_up: Callable[[mqtt.Client], None],
    ) -> None:
        self._client = client
        self.settings = settings
        self._keepalive_s = keepalive_s
        self._max_packet_bytes = max_packet_bytes
        self._backoff = backoff
        self._counters = counters
        self._stop = stop
        self._quiet = quiet  # set while closing: a disconnect then is expected, not news
        self._on_up = on_up
        self._up = threading.Event()
        self.connected_at = 0.0
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect

    @property
    def connected(self) -> bool:
        """Whether the broker accepted our connection and it is up."""
        return self._up.is_set()

    def run(self) -> None:
        """Connect and reconnect until `stop` is set."""
        while not self._stop.is_set():
            if self._connect_once():
                self._run_network()
            if self._stop.is_set():
                break
            delay = self._backoff.next_delay()
            log.debug("reconnecting to %s in %.2fs", self.settings.address, delay)
            self._stop.wait(delay)

    def _connect_once(self) -> bool:
        self._counters.add("connect_attempts")
        properties = Properties(PacketTypes.CONNECT)
        properties.MaximumPacketSize = self._max_packet_bytes
        address = self.settings.address
        try:
            self._client.connect(address.host, address.port, self._keepalive_s, properties=properties)
            return True
        except (OSError, ValueError) as e:
            if not self._stop.is_set():  # an attempt cut short by close() is no failure to report
                transient = not isinstance(e, ssl.SSLError)
                message = broker.explain(e, self.settings) + (" (retrying)" if transient else "")
                self.failed(message, transient=transient)
            return False

    def _run_network(self) -> None:
        try:
            while not self._stop.is_set():
                if self._client.loop(timeout=TICK_S) != mqtt.MQTT_ERR_SUCCESS:
                    break
        except Exception:  # whatever the network does, this thread lives on and reconnects
            log.exception("uplink: the network loop failed; reconnecting")
        self._up.clear()

    def failed(self, message: str, *, transient: bool) -> None:
        """Count a failed connection; an error if it needs the operator, else a warning said once."""
        repeated = self._counters.connect_failed(message)
        if not transient:
            log.error("uplink: %s", message)
        elif not repeated:
            log.warning("uplink: %s", message)

    # paho callbacks, on the uplink-mqtt thread

    def _on_connect(self, client: mqtt.Client, _u: Any, _f: Any, reason: ReasonCode, _p: Any) -> None:
        if reason.is_failure:
            self.failed(broker.refusal(reason, self.settings), transient=False)
            return
        log.info("uplink: connected to %s", self.settings.address)
        self._backoff.reset()
        self.connected_at = time.monotonic()
        self._counters.connected()
        self._up.set()
        self._on_up(client)  # after: what it wakes must find the connection up

    def _on_disconnect(self, _c: Any, _u: Any, _f: Any, reason: ReasonCode, _p: Any) -> None:
        was_connected = self.connected
        self._up.clear()
        if was_connected and not self._quiet.is_set():
            log.warning("uplink: disconnected from %s (%s); will reconnect", self.settings.address, reason)
