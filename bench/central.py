"""Benchmark: central at a province's scale.

(a) The real path: simulated devices publish signed events (QoS 1) to a local mosquitto, and
`kiosk-central ingest` processes (the command itself, one shared subscription) verify, store and
ack them into PostgreSQL (or SQLite). Measured: events per second until every event is committed,
"live" (the publisher runs at the same time) and "backlog" (the events were queued by the broker
while the ingests were away, as after an outage). Baseline in the same run: bare paho subscribers,
as many, on the same shared subscription, that only count and PUBACK messages; the ratio says what
verification, storage and acks cost on top of moving the messages.

(b) A province-day: a day of events (default 7 million over 10,000 venues, with an hourly profile)
loaded straight into PostgreSQL through Store.insert_events in batches (the ingest's insert and
aggregate code, without MQTT or signatures), then history: days of aggregates (the counts of the
loaded day, each venue scaled at random) and, for the most recent days, full events (the loaded
day's rows moved in time, in SQL). Measured: the load's events/s, bytes stored per event
(pg_total_relation_size of the partitions / rows), and the report's time for the province-day
(page 1 of the venues, build and render) at 1, 7 and 30 days of history.

Both parts start their own PostgreSQL and mosquitto (tests/support) and remove them after.

Run: .venv/bin/python bench/central.py [--part ingest|province|both]
       [--ingest-events 200000] [--devices 1000] [--db postgresql|sqlite] [--processes 2]
       [--events 7000000] [--venues 10000] [--history-days 30] [--full-days 2] [--batch 10000]
Quick: .venv/bin/python bench/central.py --ingest-events 20000 --events 200000 --venues 1000
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import dataclasses
import hashlib
import hmac
import json
import multiprocessing as mp
import os
import platform
import queue
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from multiprocessing.sharedctypes import Synchronized
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import psycopg
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from paho.mqtt.enums import CallbackAPIVersion

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kiosk import keys
from kiosk.central import mqtt
from kiosk.central.ingest import Topics
from kiosk.central.registry import Registry, parse_registration
from kiosk.central.render import render
from kiosk.central.reports import ReportSettings, Selection, build_report
from kiosk.central.store import DeviceRow, EventRow, Store, VenueRow, daily_from_hourly, open_store
from tests.support.broker import Mosquitto
from tests.support.central import TestDevice
from tests.support.postgres import PostgresServer

ROOT = Path(__file__).resolve().parents[1]
WINDOW = 50_000  # publishes in flight at once (paho's message ids wrap at 65,535)
START_TS = int(time.time() * 1000) - 3_600_000  # today: the ingest makes its partition


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
    infos = []
    for n, (topic, payload) in enumerate(messages):
        if n >= WINDOW:  # message ids are 16 bits: never more than this many unacknowledged
            infos[n - WINDOW].wait_for_publish(timeout=120)
        infos.append(client.publish(topic, payload, qos=1))
    for info in infos[-WINDOW:]:
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
        if pub.exitcode not in (None, 0) or time.perf_counter() - t0 > 900:
            raise RuntimeError("the publisher failed, or messages were lost (see the broker's queue limits)")
        time.sleep(0.2)  # counting committed rows costs the database: not too often


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


class CliIngests:
    """`kiosk-central ingest` processes (the real command) on one shared subscription, started together."""

    def __init__(self, url: str, db: str, client_ids: list[str], folder: Path) -> None:
        self.url, self.db, self.client_ids, self.folder = url, db, client_ids, folder
        self.key = folder / "authority.key"
        if not self.key.exists():
            keys.generate_device_key(self.key)
        self.connect_at = _Value(0.0)
        self._procs: list[tuple[subprocess.Popen[bytes], Path]] = []

    def __enter__(self) -> CliIngests:
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        self.connect_at.value = time.time()
        for client_id in self.client_ids:
            log = self.folder / f"{client_id}.log"
            argv = [sys.executable, "-m", "kiosk.central.cli", "--db", self.db, "ingest",
                    "--broker", self.url, "--key", str(self.key), "--client-id", client_id,
                    "--share-group", client_id.rsplit("-", 1)[0]]  # fmt: skip
            with log.open("ab") as out:
                proc = subprocess.Popen(argv, stdout=out, stderr=out, env=env, cwd=ROOT)
            self._procs.append((proc, log))
        deadline = time.monotonic() + 60
        for proc, log in self._procs:
            while "ingesting" not in log.read_text(errors="replace"):  # logged once subscribed
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"kiosk-central ingest did not start:\n{log.read_text()[-2000:]}")
                time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        for proc, _ in self._procs:
            proc.send_signal(signal.SIGTERM)
        for proc, _ in self._procs:
            proc.wait(60)
        self._procs = []


class _Value:
    def __init__(self, value: float) -> None:
        self.value = value


def ingest(
    url: str, db: str, processes: int, messages: list[tuple[str, bytes]], folder: Path, *, backlog: bool
) -> float:
    """Events/s through `processes` `kiosk-central ingest` processes, until all are committed."""
    tag = f"bench-ingest-{processes}-{'backlog' if backlog else 'live'}-{time.time_ns()}"
    client_ids = [f"{tag}-{n}" for n in range(processes)]
    with open_store(db) as reader:

        def done() -> bool:
            reader.rollback()  # a fresh snapshot each time (PostgreSQL holds one per transaction)
            return reader.count_events() >= len(messages)

        return measure(url, messages, lambda: CliIngests(url, db, client_ids, folder), done, backlog=backlog)


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


# (b) A province: days of events loaded straight into PostgreSQL, then the report timed on them.

DAY_MS = 86_400_000
HOUR_MS = 3_600_000
ZONE_OFFSET_MS = 7 * HOUR_MS  # Asia/Ho_Chi_Minh, the reports' default zone
# Share of a day's scans in each local hour: quiet nights, a morning rise, lunch and evening peaks
# (markets open at dawn, offices at 8, shops and restaurants in the evening); weights, not percent.
HOURLY_PROFILE = (0.2, 0.1, 0.1, 0.1, 0.3, 1.2, 3.5, 6.0, 7.0, 6.5, 6.0, 7.5,
                  7.0, 5.0, 4.5, 5.0, 6.0, 7.5, 8.5, 7.0, 4.5, 2.2, 0.8, 0.5)  # fmt: skip
FORMATS = (("national", 0.55), ("cccd", 0.35), ("dcc", 0.10))
FAILS = (("national_invalid", 0.4), ("status_blocked", 0.2), ("old_venue_qr", 0.2), ("unrecognised", 0.2))
FAIL_SHARE = 0.03
PEOPLE = 1_100_000
HEADER = "eyJhbGciOiJFZERTQSIsImtpZCI6"  # base64url of '{"alg":"EdDSA","kid":' (then the device id)


@dataclass(frozen=True)
class Province:
    """The simulated province: venues with their districts, wards and sizes, one kiosk each."""

    venues: list[VenueRow]
    weights: list[float]  # share of the province's scans at each venue (a few big markets, many shops)

    @staticmethod
    def make(count: int, seed: int = 16) -> Province:
        """`count` venues in 9 districts of about 12 wards each, sizes lognormal."""
        rnd = random.Random(seed)
        venues = []
        for n in range(count):
            district = f"Huyện {n % 9 + 1}"
            ward = f"Xã {n % 9 + 1}-{n // 9 % 12 + 1}"
            group = rnd.choice(("market", "shop", "office", "school", "restaurant"))
            venues.append(VenueRow(f"venue-{n:05d}", f"Venue {n}", district, ward, group, "06:00-22:00"))
        sizes = [rnd.lognormvariate(0, 1) for _ in venues]
        total = sum(sizes)
        return Province(venues, [s / total for s in sizes])

    def register(self, store: Store) -> None:
        """The venue registry, one active kiosk per venue, each online since long before."""
        key = keys.public_pem(Ed25519PrivateKey.generate().public_key())
        store.put_venues(self.venues)
        for v in self.venues:
            device = v.destination.replace("venue", "kiosk")
            store.put_device(DeviceRow(device, v.destination, key, "bench", "0.1.0", "2026-01-01T00:00:00Z"))
            store.log_state(device, 0, "online")
        store.commit()


def _pick(rnd: random.Random, table: tuple[tuple[str, float], ...]) -> str:
    x = rnd.random()
    for value, share in table:
        x -= share
        if x < 0:
            return value
    return table[-1][0]


def day_events(province: Province, local_day: int, events: int, seed: int) -> Iterator[list[EventRow]]:
    """One local day of events, hour by hour, each hour's in key order (as the ingest stores them)."""
    rnd = random.Random(seed)
    identity_key = hashlib.sha256(b"bench identity key").digest()
    seqs = dict.fromkeys((v.destination for v in province.venues), 0)
    start = local_day * DAY_MS - ZONE_OFFSET_MS
    for hour, share in enumerate(HOURLY_PROFILE):
        n = round(events * share / sum(HOURLY_PROFILE))
        venues = rnd.choices(province.venues, weights=province.weights, k=n)
        stamps = sorted(start + hour * HOUR_MS + rnd.randrange(HOUR_MS) for _ in range(n))
        rows = []
        for venue, ts in zip(venues, stamps, strict=True):
            seqs[venue.destination] += 1
            rows.append(_event(rnd, identity_key, venue.destination, seqs[venue.destination], ts))
        rows.sort(key=lambda r: (r.device, r.epoch, r.seq))
        yield rows


def _event(rnd: random.Random, identity_key: bytes, destination: str, seq: int, ts: int) -> EventRow:
    device = destination.replace("venue", "kiosk")
    card_format = _pick(rnd, FORMATS)
    person = rnd.randrange(PEOPLE)
    identity = "hmac:" + hmac.new(identity_key, f"{card_format}:{person:012d}".encode(), "sha256").hexdigest()
    kind, direction, verdict, reason = "scan", rnd.choice(("in", "out")), "pass", "ok"
    if rnd.random() < FAIL_SHARE:
        direction, verdict, reason = None, "fail", _pick(rnd, FAILS)
    payload = {
        "v": 1, "id": str(uuid.UUID(int=rnd.getrandbits(128), version=4)), "kind": kind, "device": device,
        "destination": destination, "epoch": 1_700_000_000_000, "seq": seq, "ts": ts, "clock_synced": True,
        "direction": direction, "verdict": verdict, "reason": reason, "format": card_format,
        "identity": identity, "sw": "0.1.0", "decode_ms": round(rnd.uniform(5, 40), 2),
    }  # fmt: skip
    # The token as a kiosk signs it: the same header and payload, a signature of the same length
    # (random bytes: this part measures storage and reports, not verification).
    body = base64.urlsafe_b64encode(json.dumps(payload, separators=(",", ":")).encode()).rstrip(b"=")
    kid = base64.urlsafe_b64encode(f'"{device}","typ":"kiosk-event"}}'.encode()).rstrip(b"=")
    signature = base64.urlsafe_b64encode(rnd.randbytes(64)).rstrip(b"=")
    token = f"{HEADER}{kid.decode()}.{body.decode()}.{signature.decode()}"
    return EventRow(
        device=device, epoch=payload["epoch"], seq=seq, id=payload["id"], destination=destination,
        kind=kind, ts=ts, clock_synced=True, direction=direction, verdict=verdict, reason=reason,
        format=card_format, identity=identity, sw="0.1.0", decode_ms=payload["decode_ms"],
        received_ms=ts + 300, token=token,
    )  # fmt: skip


def load_day(store: Store, province: Province, local_day: int, events: int, batch: int) -> tuple[int, float]:
    """Store one local day through Store.insert_events in batches; (events stored, seconds)."""
    t0 = time.perf_counter()
    stored = 0
    for rows in day_events(province, local_day, events, seed=local_day):
        for i in range(0, len(rows), batch):
            chunk = rows[i : i + batch]
            store.ensure_partitions([chunk[0].ts, chunk[-1].ts], now_ms=(local_day + 2) * DAY_MS)
            stored += store.insert_events(chunk)
            store.commit()
    return stored, time.perf_counter() - t0


def copy_aggregates(store: Store, source_day: int, target_day: int, seed: int, *, vary: bool) -> None:
    """A day of aggregates: the source day's counts, with `vary` each venue's scaled by a random
    factor in [0.7, 1.3] so that days differ (a day whose events are kept keeps its exact counts)."""
    shift_h = (source_day - target_day) * 24
    lo, hi = source_day * 24 - 7, (source_day + 1) * 24 - 7  # the local day's UTC hours
    _run(store, "SELECT setseed(%s)", (seed / 1e6,))
    _run(
        store,
        "INSERT INTO hourly (hour, destination, kind, format, verdict, reason, n, n_in, n_out)"
        " SELECT hour - %s, destination, kind, format, verdict, reason, GREATEST(1, n * f)::bigint,"
        " floor(n_in * f)::bigint, floor(n_out * f)::bigint FROM hourly JOIN"
        " (SELECT destination AS d, CASE WHEN %s THEN 0.7 + random() * 0.6 ELSE 1 END AS f FROM venues) s"
        " ON s.d = hourly.destination WHERE hour >= %s AND hour < %s ON CONFLICT DO NOTHING",
        (shift_h, vary, lo, hi),
    )
    hours = (target_day * 24 - 7, (target_day + 1) * 24 - 7)
    _run(store, daily_from_hourly("WHERE hour >= %s AND hour < %s"), hours)
    _run(
        store,
        "INSERT INTO device_days SELECT day - %s, device, kind, format FROM device_days"
        " WHERE day = %s ON CONFLICT DO NOTHING",
        (source_day - target_day, source_day),
    )
    store.commit()


def copy_events(store: Store, source_day: int, target_day: int) -> float:
    """A day of full events: the source day's rows moved in time (SQL, much faster than generating)."""
    t0 = time.perf_counter()
    shift = (source_day - target_day) * DAY_MS
    start = source_day * DAY_MS - ZONE_OFFSET_MS
    store.ensure_partitions([start - shift, start - shift + DAY_MS - 1], now_ms=(source_day + 2) * DAY_MS)
    store.commit()
    columns = ", ".join(f.name for f in dataclasses.fields(EventRow))
    moved = columns.replace(" ts,", " ts - %s,").replace("received_ms", "received_ms - %s")
    _run(
        store,
        f"INSERT INTO events ({columns}) SELECT {moved} FROM events WHERE ts >= %s AND ts < %s",
        (shift, shift, start, start + DAY_MS),
    )
    store.commit()
    return time.perf_counter() - t0


def _run(store: Store, sql: str, params: tuple[Any, ...] = ()) -> None:
    """A statement that returns no rows, committed (the bench writes what the store has no method for)."""
    store._conn.cursor().execute(sql, params)
    store.commit()


def time_report(store: Store, local_day: int, *, repeat: int = 5) -> dict[str, float]:
    """Seconds (median of `repeat`: the machine is shared) to build and render page 1 of the report."""
    day = date(1970, 1, 1) + timedelta(days=local_day)
    now = (local_day + 1) * DAY_MS
    settings = ReportSettings()
    timings: dict[str, float] = {}
    for label, selection, form in (
        ("province, page 1, html", Selection(), "html"),
        ("province, page 1, table", Selection(), "table"),
        ("one district, page 1, html", Selection(district="Huyện 3"), "html"),
    ):
        runs = []
        for _ in range(repeat):
            store.rollback()
            t0 = time.perf_counter()
            report = build_report(store, day=day, settings=settings, now_ms=now, selection=selection)
            text = render(report, form, lang="vi")
            runs.append(time.perf_counter() - t0)
        timings[label] = statistics.median(runs)
        timings[f"{label} bytes"] = len(text.encode())
    return timings


def stored_bytes(store: Store) -> tuple[int, int, int]:
    """(bytes of every events partition with indexes and TOAST, events, bytes of `hourly`)."""
    size = store.query(
        "SELECT COALESCE(SUM(pg_total_relation_size(i.inhrelid)), 0) FROM pg_inherits i"
        " JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = 'events'"
    )[0][0]
    hourly = store.query("SELECT pg_total_relation_size('hourly')")[0][0]
    return int(size), store.count_events(), int(hourly)


def province(args: argparse.Namespace) -> None:
    """Part (b): load the province's days, time the report at 1, 7 and 30 days of history."""
    print(f"\n## Province: {args.events:,} events/day, {args.venues:,} venues, {args.history_days} days of"
          f" aggregates, {args.full_days} of them with full events")  # fmt: skip
    report_day = (datetime(2026, 11, 20, tzinfo=UTC) - datetime(1970, 1, 1, tzinfo=UTC)).days
    shape = Province.make(args.venues)
    with PostgresServer() as pg, open_store(pg.new_database()) as store:
        with psycopg.connect(pg.url(), autocommit=True) as admin:
            admin.execute("ALTER SYSTEM SET max_wal_size = '8GB'")  # no checkpoint storm during the load
            admin.execute("SELECT pg_reload_conf()")
        shape.register(store)
        stored, seconds = load_day(store, shape, report_day, args.events, args.batch)
        print(f"loaded the report's day: {stored:,} events in {seconds:.0f} s through Store.insert_events"
              f" ({stored / seconds:,.0f} events/s, batches of {args.batch:,})")  # fmt: skip
        size, rows, hourly = stored_bytes(store)
        print(f"stored: {size / rows:,.0f} bytes/event ({size / 1e9:.2f} GB for {rows:,} events, indexes"
              f" and TOAST included); hourly aggregates {hourly / 1e6:.1f} MB/day")  # fmt: skip
        print("| days of history | report | seconds (median of 5) | output bytes |")
        print("|---|---|---|---|")
        history = 1
        _print_timings(history, time_report(store, report_day))
        for upto in (7, args.history_days):
            for back in range(history, upto):
                copy_aggregates(store, report_day, report_day - back, seed=back, vary=back >= args.full_days)
                if back < args.full_days:
                    copy_events(store, report_day, report_day - back)
            history = upto
            _run(store, "ANALYZE")
            _print_timings(history, time_report(store, report_day))
        size, rows, hourly = stored_bytes(store)
        print(f"at the end: {rows:,} events in {len(store.partition_days())} partitions, {size / 1e9:.2f} GB"
              f" ({size / rows:,.0f} bytes/event); hourly {hourly / 1e6:.0f} MB")  # fmt: skip


def _print_timings(history: int, timings: dict[str, float]) -> None:
    for label, seconds in timings.items():
        if not label.endswith("bytes"):
            print(f"| {history} | {label} | {seconds:.2f} | {timings[label + ' bytes']:,} |", flush=True)


def ingest_part(args: argparse.Namespace) -> None:
    """Part (a): bare subscribers, then `kiosk-central ingest` processes, on the same messages."""
    fleet, messages = make_events(args.devices, args.ingest_events)
    print(f"\n## Ingest: {args.ingest_events:,} signed events, {args.devices:,} devices, {args.db}")
    print("| mode | processes | bare subscriber (events/s) | kiosk-central ingest (events/s) | ratio |")
    print("|---|---|---|---|---|")
    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        # mosquitto drops QoS 1 messages beyond 1000 queued per client by default; central's
        # subscribers must be allowed a deep queue (docs/central.md).
        queue_conf = "max_queued_messages 1000000\nmax_queued_bytes 0\n"
        broker = stack.enter_context(Mosquitto(tmp / "broker", extra_conf=queue_conf))
        pg = stack.enter_context(PostgresServer()) if args.db == "postgresql" else None
        runs = 0
        for mode in args.modes:
            for n in args.processes:
                runs += 1
                baseline = bare(broker.url, n, messages, backlog=mode == "backlog")
                db = fresh_db(args.db, tmp, runs, fleet, pg)
                measured = ingest(broker.url, db, n, messages, tmp, backlog=mode == "backlog")
                ratio = measured / baseline
                print(f"| {mode} | {n} | {baseline:,.0f} | {measured:,.0f} | {ratio:.2f} |", flush=True)


def main() -> None:
    """Measure and print the tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=("ingest", "province", "both"), default="both")
    parser.add_argument("--ingest-events", type=int, default=200_000, help="events published in part (a)")
    parser.add_argument("--devices", type=int, default=1000, help="devices publishing in part (a)")
    parser.add_argument("--db", choices=("sqlite", "postgresql"), default="postgresql")
    parser.add_argument("--processes", type=int, nargs="+", default=[2])
    parser.add_argument("--modes", nargs="+", choices=("live", "backlog"), default=["live", "backlog"])
    parser.add_argument("--events", type=int, default=7_000_000, help="events in the province-day (b)")
    parser.add_argument("--venues", type=int, default=10_000)
    parser.add_argument("--history-days", type=int, default=30, help="days of aggregates (>= 7)")
    parser.add_argument("--full-days", type=int, default=2, help="of them, days with full events")
    parser.add_argument("--batch", type=int, default=10_000, help="events per Store.insert_events call")
    args = parser.parse_args()
    print(f"# {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {machine()}")
    if args.part in ("ingest", "both"):
        ingest_part(args)
    if args.part in ("province", "both"):
        province(args)


if __name__ == "__main__":
    main()
