"""Benchmark: spool + sign + publish + PUBACK against a local mosquitto, with same-run baselines.

Prints four tables:
0. sealing: one identity sealed to the authority (HPKE, `kiosk.sealing.seal`) against the keyed hash
   schema v1 made instead (HMAC-SHA256) and against the event's Ed25519 signature, in the same run;
   and per event, building a two-identity event (a national QR's QID and id number) sealed against
   the same build with plain identities;
1. spool commit latency (`Spool.record`: seq + build + sign + one fsynced commit) against a bare
   SQLite insert of the same token bytes with the same pragmas (WAL, synchronous=FULL);
2. sustained events/s through record() + the uplink until every event is PUBACKed, against a bare
   paho QoS 1 publish loop of the same tokens with the same in-flight window;
3. the drain rate of a pre-recorded backlog (default 100,000 events), against the same bare loop.

Run from the repository root: `.venv/bin/python bench/uplink.py [--events N] [--backlog N]`.
The spool lives in a temporary folder on the disk (not tmpfs), so fsync costs what it costs.
"""

from __future__ import annotations

import argparse
import shutil
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import paho.mqtt.client as mqtt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kiosk import jws, sealing
from kiosk.config import UplinkConfig
from kiosk.events import EventDraft, build_event, hash_identity
from kiosk.spool import Spool
from kiosk.uplink import Uplink
from tests.support.broker import Mosquitto
from tests.support.central import SEALER

KEY = Ed25519PrivateKey.generate()
IDENTITY_KEY = bytes(32)


def open_spool(path: Path) -> Spool:
    """A spool for one bench device."""
    return Spool.open(path, device_id="bench-1", destination_id="venue-1", signing_key=KEY, sealer=SEALER)


def draft(n: int, identities: int = 1) -> EventDraft:
    """A typical decision: a national QR's QID, and its id number too when `identities` is 2."""
    return EventDraft(
        verdict="pass",
        reason="ok",
        format="national",
        direction="in",
        card_identities=(f"16297938858617{n:04d}", f"0010930{n:05d}")[:identities],
        ts=int(time.time() * 1000),
        decode_ms=11.2,
    )


def per_call_us(call: Callable[[int], object], n: int) -> list[float]:
    """Each call's time in microseconds, n calls."""
    times = []
    for i in range(n):
        started = time.perf_counter()
        call(i)
        times.append((time.perf_counter() - started) * 1e6)
    return times


def bench_sealing(n: int) -> dict[str, list[float]]:
    """Per identity: HPKE seal, the v1 HMAC, an Ed25519 signature; per event: build sealed vs plain."""
    public, device = SEALER.authority, "bench-1"
    plain = replace(SEALER, plain=True)
    qid = [f"16297938858617{i:04d}" for i in range(n)]
    token_payload = b'{"v":2,"kind":"scan"}' * 20  # about an event's size

    def event(sealer: sealing.Sealer) -> Callable[[int], object]:
        draft_of = [draft(i, identities=2) for i in range(n)]
        return lambda i: build_event(
            draft_of[i], device=device, destination="venue-1", epoch=1, seq=i + 1, sealer=sealer
        )

    return {
        "seal": per_call_us(lambda i: sealing.seal(public, device, qid[i]), n),
        "hmac": per_call_us(lambda i: hash_identity(IDENTITY_KEY, "national", qid[i]), n),
        "sign": per_call_us(lambda i: jws.sign(token_payload, KEY, kid=device), n),
        "event_sealed": per_call_us(event(SEALER), n),
        "event_plain": per_call_us(event(plain), n),
    }


def report_sealing(n: int) -> None:
    """Print the sealing table: p50/p99 in µs and the ratio of p50 to its baseline."""
    t = bench_sealing(n)
    rows = (
        ("seal one identity (HPKE X25519, AES-128-GCM)", "seal", "hmac"),
        ("  baseline: v1's HMAC-SHA256 of it", "hmac", "hmac"),
        ("  baseline: Ed25519-sign an event (JWS)", "sign", "hmac"),
        ("build an event, 2 identities sealed", "event_sealed", "event_plain"),
        ("  baseline: the same event, identities plain", "event_plain", "event_plain"),
    )
    print(f"sealing, {n} calls each (µs)                    p50       p99   ratio p50")
    for name, key, base in rows:
        p50, p99 = percentile(t[key], 50), percentile(t[key], 99)
        print(f"  {name:<45} {p50:8.1f}  {p99:8.1f}  {p50 / percentile(t[base], 50):6.1f}x")
    added = percentile(t["event_sealed"], 50) - percentile(t["event_plain"], 50)
    print(f"  sealing's share of an event (sealed - plain, p50) {added:8.1f}")
    print(f"  sign / seal p50: {percentile(t['sign'], 50) / percentile(t['seal'], 50):.2f}\n")


def percentile(values: list[float], p: float) -> float:
    """The p-th percentile (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


def bench_commit(folder: Path, n: int) -> tuple[list[float], list[float], list[bytes]]:
    """Latency of Spool.record and of a bare fsynced insert of the same bytes, in ms."""
    ours: list[float] = []
    with open_spool(folder / "commit.db") as spool:
        tokens = []
        for i in range(n):
            started = time.perf_counter()
            tokens.append(spool.record(draft(i)).token)
            ours.append((time.perf_counter() - started) * 1000)
    conn = sqlite3.connect(folder / "bare.db", isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("CREATE TABLE t (seq INTEGER PRIMARY KEY, token BLOB NOT NULL)")
    bare: list[float] = []
    for i, token in enumerate(tokens):
        started = time.perf_counter()
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT INTO t VALUES (?, ?)", (i, token))
        conn.execute("COMMIT")
        bare.append((time.perf_counter() - started) * 1000)
    conn.close()
    return ours, bare, tokens


def bare_publish(broker: Mosquitto, tokens: list[bytes], inflight: int) -> float:
    """Events/s of a plain paho QoS 1 loop: publish every token, wait for every PUBACK."""
    done = threading.Semaphore(0)
    window = threading.Semaphore(inflight)
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-bare", protocol=mqtt.MQTTv5)
    client.max_inflight_messages_set(inflight)
    client.on_publish = lambda *_: (window.release(), done.release())
    client.connect(broker.host, broker.port)
    client.loop_start()
    try:
        started = time.perf_counter()
        for token in tokens:
            window.acquire()
            client.publish("kiosk/v1/venue-1/bench-1/event", token, qos=1)
        for _ in tokens:
            done.acquire()
        return len(tokens) / (time.perf_counter() - started)
    finally:
        client.disconnect()
        client.loop_stop()


def run_uplink(broker: Mosquitto, spool: Spool, inflight: int, produce: int) -> float:
    """Events/s until the broker acknowledged everything; `produce` > 0 records while draining."""
    target = spool.unsent_count() + produce
    settings = UplinkConfig(broker=broker.url, inflight=inflight, state_interval_s=3600)
    uplink = Uplink(settings, spool=spool)
    uplink.start()
    while not uplink.connected:
        time.sleep(0.01)
    started = time.perf_counter()
    for i in range(produce):
        spool.record(draft(i))
        uplink.wake()
    while uplink.stats().broker_acked < target:
        time.sleep(0.005)
    elapsed = time.perf_counter() - started
    uplink.close(grace_s=0)
    return target / elapsed


def fill_backlog(folder: Path, n: int) -> Path:
    """Record `n` events on tmpfs (fast), then move the spool to the disk folder."""
    shm = Path(tempfile.mkdtemp(dir="/dev/shm")) if Path("/dev/shm").is_dir() else folder
    with open_spool(shm / "backlog.db") as spool:
        for i in range(n):
            spool.record(draft(i))
    target = folder / "backlog.db"
    for suffix in ("", "-wal", "-shm"):
        if (shm / f"backlog.db{suffix}").exists():
            shutil.move(shm / f"backlog.db{suffix}", folder / f"backlog.db{suffix}")
    if shm != folder:
        shutil.rmtree(shm)
    return target


def main() -> int:
    """Run the three measurements and print the tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=5000, help="events for commit and sustained rate")
    parser.add_argument("--backlog", type=int, default=100_000, help="events in the drained backlog")
    parser.add_argument("--inflight", type=int, default=32, help="in-flight window (uplink.inflight)")
    parser.add_argument("--sealing-only", action="store_true", help="print only the sealing table")
    args = parser.parse_args()
    report_sealing(args.events)
    if args.sealing_only:
        return 0
    folder = Path(tempfile.mkdtemp(prefix="kiosk-bench-", dir=Path.cwd()))
    try:
        with Mosquitto(folder / "broker") as broker:
            report(broker, folder, args)
    finally:
        shutil.rmtree(folder)
    return 0


def report(broker: Mosquitto, folder: Path, args: argparse.Namespace) -> None:
    """Measure and print."""
    ours, bare, tokens = bench_commit(folder, args.events)
    print(f"spool commit, {args.events} events (ms)   p50      p99      mean")
    print(
        f"  Spool.record (seq+sign+commit)   {percentile(ours, 50):7.3f}  {percentile(ours, 99):7.3f}"
        f"  {statistics.fmean(ours):7.3f}"
    )
    print(
        f"  bare fsynced INSERT (baseline)   {percentile(bare, 50):7.3f}  {percentile(bare, 99):7.3f}"
        f"  {statistics.fmean(bare):7.3f}"
    )
    print(f"  ratio p50 {percentile(ours, 50) / percentile(bare, 50):.2f}x")

    baseline = bare_publish(broker, tokens, args.inflight)
    with open_spool(folder / "sustained.db") as spool:
        sustained = run_uplink(broker, spool, args.inflight, args.events)
    shm = Path(tempfile.mkdtemp(dir="/dev/shm"))
    try:
        with open_spool(shm / "sustained.db") as spool:
            no_fsync = run_uplink(broker, spool, args.inflight, args.events)
    finally:
        shutil.rmtree(shm)
    print(f"\nsustained, {args.events} events, window {args.inflight}       events/s")
    print(f"  record + sign + publish + PUBACK  {sustained:9.0f}")
    print(f"  the same, spool on tmpfs (no fsync cost) {no_fsync:9.0f}")
    print(f"  bare paho publish loop (baseline) {baseline:9.0f}")
    print(f"  ratio {sustained / baseline:.2f}")

    path = fill_backlog(folder, args.backlog)
    backlog_tokens = (tokens * (args.backlog // len(tokens) + 1))[: args.backlog]
    baseline = bare_publish(broker, backlog_tokens, args.inflight)
    with open_spool(path) as spool:
        drained = run_uplink(broker, spool, args.inflight, 0)
    print(f"\nbacklog drain, {args.backlog} events, window {args.inflight}  events/s")
    print(f"  uplink drain                      {drained:9.0f}")
    print(f"  bare paho publish loop (baseline) {baseline:9.0f}")
    print(f"  ratio {drained / baseline:.2f}")


if __name__ == "__main__":
    sys.exit(main())
