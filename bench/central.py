"""Benchmark: central ingest end to end (verify + store + commit + ack) through a local mosquitto.

Pre-signed events from many devices are published (QoS 1) by a separate paho
publisher process. Measured: events per second until every event is committed in
the database, with 1 and 2 ingest processes on one shared subscription, in two modes:
"live" (the publisher runs at the same time, from its first publish) and "backlog"
(the events were queued by the broker while the ingests were away, as after an
outage; from the moment they are back). Baseline in the same run: bare subscriber
processes on the same shared subscription that only count and PUBACK messages, so
the ratio says what verification, storage and acks cost on top of moving them.

Run: .venv/bin/python bench/central.py [--events N] [--devices N] [--db sqlite|postgresql]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing as mp
import os
import platform
import queue
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from multiprocessing.sharedctypes import Synchronized
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from paho.mqtt.enums import CallbackAPIVersion

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kiosk.central import mqtt
from kiosk.central.ingest import Ingest, Processor, Topics
from kiosk.central.registry import Registry, parse_registration
from kiosk.central.store import open_store
from tests.support.broker import Mosquitto
from tests.support.central import TestDevice
from tests.support.postgres import PostgresServer

START_TS = 1_780_000_000_000


def make_events(devices: int, events: int) -> tuple[list[TestDevice], list[tuple[str, bytes]]]:
    """Devices and their signed events, interleaved as many kiosks would send them."""
    fleet = [TestDevice(f"kiosk-{n:04d}", f"venue-{n % 20:03d}") for n in range(devices)]
    messages = []
    for i in range(events):
        device = fleet[i % devices]
        seq = i // devices + 1
        token = device.token(seq, START_TS + i, card=f"{i % 5000:012d}")
        messages.append((device.topic(), token))
    return fleet, messages


def publisher(url: str, messages: list[tuple[str, bytes]], started: Any) -> None:
    """Publish every message at QoS 1 as fast as the broker takes them."""
    address = mqtt.BrokerSettings(url=url).address
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id="bench-fleet", protocol=paho.MQTTv5)
    client.max_inflight_messages_set(1000)
    client.connect(address.host, address.port)
    client.loop_start()
    started.set()
    infos = [client.publish(topic, payload, qos=1) for topic, payload in messages]
    for info in infos:
        info.wait_for_publish(timeout=120)
    client.disconnect()
    client.loop_stop()


def counter(url: str, client_id: str, count: Synchronized, connect_at: Any, ready: Any, stop: Any) -> None:
    """The baseline: a shared-subscription member that only counts messages and PUBACKs them.

    Like the ingest, it acknowledges from its own thread, not from paho's callback.
    """
    acks: queue.SimpleQueue[tuple[int, int]] = queue.SimpleQueue()

    def on_message(_topic: str, _payload: bytes, mid: int, qos: int) -> None:
        count.value += 1
        acks.put((mid, qos))

    settings = mqtt.BrokerSettings(url=url, client_id=client_id)
    topics = Topics(share_group=client_id.rsplit("-", 1)[0])
    _note_start(connect_at)
    client = mqtt.connect(settings, on_message=on_message, subscriptions=[topics.events])
    ready.set()
    while not stop.is_set():
        try:
            client.ack(*acks.get(timeout=0.05))
        except queue.Empty:
            continue
    mqtt.close(client)


def _note_start(connect_at: Any) -> None:
    with connect_at.get_lock():
        if not connect_at.value or time.time() < connect_at.value:
            connect_at.value = time.time()


def _forward(stop: Any, stopping: threading.Event) -> None:
    stop.wait()
    stopping.set()


def ingester(url: str, client_id: str, db: str, connect_at: Any, ready: Any, stop: Any) -> None:
    """One ingest process."""
    with open_store(db) as store:
        key = Ed25519PrivateKey.generate()
        # Each run its own group: a persistent session of an earlier run stays in its group and would
        # take its share of the messages into a queue nobody reads.
        topics = Topics(share_group=client_id.rsplit("-", 1)[0])
        processor = Processor(store=store, registry=Registry(store), authority_key=key, topics=topics)
        stopping = threading.Event()
        threading.Thread(target=_forward, args=(stop, stopping), daemon=True).start()
        settings = mqtt.BrokerSettings(url=url, client_id=client_id)
        _note_start(connect_at)
        Ingest(processor=processor, broker=settings).run(stopping, ready=ready)


class Workers:
    """Subscriber processes (counters or ingests) with fixed client ids, started and stopped together."""

    def __init__(self, target: Any, argsets: list[tuple[Any, ...]]) -> None:
        ctx = mp.get_context("spawn")
        self.stop = ctx.Event()
        self.connect_at = ctx.Value("d", 0.0)  # when the first of them started to connect (time.time)
        self._readies = [ctx.Event() for _ in argsets]
        self._procs = [
            ctx.Process(target=target, args=(*args, self.connect_at, ready, self.stop))
            for args, ready in zip(argsets, self._readies, strict=True)
        ]

    def __enter__(self) -> Workers:
        for proc in self._procs:
            proc.start()
        for ready in self._readies:
            ready.wait(60)
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for proc in self._procs:
            proc.join()


def publish(url: str, messages: list[tuple[str, bytes]]) -> Any:
    """Start the publisher process; returns it once it has connected."""
    ctx = mp.get_context("spawn")
    started = ctx.Event()
    pub = ctx.Process(target=publisher, args=(url, messages, started), name="publisher")
    pub.start()
    started.wait(60)
    return pub


def _wait(done: Any, pub: Any) -> None:
    t0 = time.perf_counter()
    while not done():
        if pub.exitcode not in (None, 0) or time.perf_counter() - t0 > 120:
            raise RuntimeError("the publisher failed, or messages were lost (see the broker's queue limits)")
        time.sleep(0.02)


def measure(url: str, messages: list[tuple[str, bytes]], make: Any, done: Any, *, backlog: bool) -> float:
    """Events/s: live (publishing while they consume) or draining a backlog queued while they were away."""
    if backlog:
        with make():
            pass  # subscribe once; the broker keeps the sessions and queues for them
        publish(url, messages).join()
    with make() as workers:
        pub = publish(url, messages) if not backlog else None
        # Live: from the first publish. Backlog: from the first reconnection (queued messages
        # flow as soon as the session resumes, before the subscriptions are even renewed).
        t0 = time.time() if pub is not None else workers.connect_at.value
        _wait(done, pub or _Finished())
        elapsed = time.time() - t0
    if pub is not None:
        pub.join()
    return len(messages) / elapsed


class _Finished:
    exitcode = 0


def bare(url: str, processes: int, messages: list[tuple[str, bytes]], *, backlog: bool) -> float:
    """Events/s through `processes` counting subscribers."""
    ctx = mp.get_context("spawn")
    counts = [ctx.Value("q", 0, lock=False) for _ in range(processes)]
    tag = f"bench-count-{processes}-{'backlog' if backlog else 'live'}"
    argsets = [(url, f"{tag}-{n}", count) for n, count in enumerate(counts)]

    def make() -> Workers:
        for count in counts:
            count.value = 0
        return Workers(counter, argsets)

    return measure(
        url, messages, make, lambda: sum(c.value for c in counts) >= len(messages), backlog=backlog
    )


def ingest(url: str, db: str, processes: int, messages: list[tuple[str, bytes]], *, backlog: bool) -> float:
    """Events/s through `processes` ingest processes, until all are committed."""
    tag = f"bench-ingest-{processes}-{'backlog' if backlog else 'live'}"
    argsets = [(url, f"{tag}-{n}", db) for n in range(processes)]
    with open_store(db) as reader:

        def done() -> bool:
            reader.rollback()  # a fresh snapshot each time (PostgreSQL holds one per transaction)
            return reader.count_events() >= len(messages)

        return measure(url, messages, lambda: Workers(ingester, argsets), done, backlog=backlog)


def fresh_db(kind: str, folder: Path, n: int, fleet: list[TestDevice], pg: Any) -> str:
    """An empty database with the fleet registered."""
    url = f"sqlite://{folder / f'central-{n}.sqlite3'}" if kind == "sqlite" else pg.new_database()
    with open_store(url) as store:
        registry = Registry(store)
        for device in fleet:
            registry.add(parse_registration(json.dumps(device.registration())))
        store.commit()
    return url


def machine() -> str:
    """CPU model and core count."""
    model = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    name = next((line.split(":", 1)[1].strip() for line in model.splitlines() if "Model name" in line), "?")
    return f"{name}, {os.cpu_count()} cores, Python {platform.python_version()}"


def main() -> None:
    """Measure and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=30_000)
    parser.add_argument("--devices", type=int, default=200)
    parser.add_argument("--db", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--modes", nargs="+", choices=("live", "backlog"), default=["live", "backlog"])
    args = parser.parse_args()
    fleet, messages = make_events(args.devices, args.events)
    print(f"# {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {machine()}")
    print(f"# {args.events} events from {args.devices} devices, database {args.db}")
    print("| mode | processes | bare subscriber (events/s) | ingest (events/s) | ingest / bare |")
    print("|---|---|---|---|---|")
    with contextlib.ExitStack() as stack:
        tmp = stack.enter_context(tempfile.TemporaryDirectory())
        # mosquitto drops QoS 1 messages beyond 1000 queued per client by default; central's
        # subscribers must be allowed a deep queue (docs/central.md).
        queue_conf = "max_queued_messages 1000000\nmax_queued_bytes 0\n"
        broker = stack.enter_context(Mosquitto(Path(tmp) / "broker", extra_conf=queue_conf))
        pg = stack.enter_context(PostgresServer()) if args.db == "postgresql" else None
        runs = 0
        for mode in args.modes:
            for n in args.processes:
                runs += 1
                baseline = bare(broker.url, n, messages, backlog=mode == "backlog")
                db = fresh_db(args.db, Path(tmp), runs, fleet, pg)
                measured = ingest(broker.url, db, n, messages, backlog=mode == "backlog")
                ratio = measured / baseline
                print(f"| {mode} | {n} | {baseline:,.0f} | {measured:,.0f} | {ratio:.2f} |", flush=True)


if __name__ == "__main__":
    main()
