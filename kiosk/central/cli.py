"""`kiosk-central`: the authority's command line (devices, ingest, report, trace, statuslist, serve)."""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from kiosk import __version__, keys, sealing
from kiosk import statuslist as sl
from kiosk.central import bundle, lanes, mqtt, render, retention, trace, trustlist, venues
from kiosk.central.identities import IdentityOpener
from kiosk.central.ingest import Ingest, IngestOptions, Processor, Topics, now_ms
from kiosk.central.registry import Registry, parse_registration
from kiosk.central.reports import Selection, build_report, load_report_settings
from kiosk.central.store import Store, open_store
from kiosk.central.web import cli as web_cli
from kiosk.errors import ConfigError, DeviceKeyError, KioskError, RegistryError
from kiosk.notify import Notifier, watchdog_interval_s
from kiosk.topics import DEFAULT_PREFIX, statuslist_topic

log = logging.getLogger("kiosk.central")

ENV_DB = "KIOSK_CENTRAL_DB"
DEFAULT_DB = "central.sqlite3"
VIETNAM = "Asia/Ho_Chi_Minh"


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every command."""
    parser = argparse.ArgumentParser(prog="kiosk-central", description="The authority's side of kiosk.")
    parser.add_argument("--version", action="version", version=f"kiosk-central {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    parser.add_argument(
        "--db",
        default=os.environ.get(ENV_DB, DEFAULT_DB),
        help=f"database: a SQLite file (sqlite:///PATH or PATH) or postgresql://... (default: ${ENV_DB}, else"
        f" {DEFAULT_DB})",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    registers = (_devices, _destinations, _lanes, _ingest, _identity_keys, _expire, _report, _trace,
                 _statuslist, bundle.register, trustlist.register, web_cli.register)  # fmt: skip
    for register in registers:
        register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; errors become a message on stderr and exit status 2."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        return int(args.func(args))
    except KioskError as e:
        print(f"kiosk-central: {e}", file=sys.stderr)
        problems = e.problems if isinstance(e, ConfigError) and len(e.problems) > 1 else []
        for problem in problems:
            print(f"  {problem}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


@contextmanager
def _store(args: argparse.Namespace) -> Iterator[Store]:
    with open_store(args.db) as store:
        yield store


# devices


def _devices(commands: argparse._SubParsersAction) -> None:
    group = commands.add_parser("devices", help="the device registry")
    actions = group.add_subparsers(dest="action", metavar="ACTION", required=True)
    add = actions.add_parser("add", help="register devices from the records `kiosk provision` printed")
    add.add_argument("records", nargs="+", type=Path, help="registration record files (JSON), - for stdin")
    add.set_defaults(func=devices_add)
    listing = actions.add_parser("list", help="registered devices with their last known state")
    listing.add_argument("--format", choices=("table", "json"), default="table")
    listing.set_defaults(func=devices_list)
    revoke = actions.add_parser("revoke", help="stop trusting a device (its new events are refused)")
    revoke.add_argument("device", help="device id")
    revoke.set_defaults(func=devices_revoke)


def _lanes(commands: argparse._SubParsersAction) -> None:
    acl = commands.add_parser("acl", help="the broker's ACL lines for the lanes' presence topics, per device")
    acl.add_argument("--prefix", default=DEFAULT_PREFIX, help="topic prefix (default: %(default)s)")
    acl.set_defaults(func=acl_command)
    peers = commands.add_parser("peers", help="a destination's kiosks' records, for their peers_file")
    peers.add_argument("destination", help="destination id")
    peers.set_defaults(func=peers_command)


def acl_command(args: argparse.Namespace) -> int:
    """Print the per-device presence ACL lines of every active device (append to the broker's ACL)."""
    with _store(args) as store:
        print(lanes.presence_acl(Registry(store).devices(), args.prefix), end="")
    return 0


def peers_command(args: argparse.Namespace) -> int:
    """Print the registration records of a destination's kiosks (each kiosk's paths.peers_file)."""
    with _store(args) as store:
        print(lanes.peer_records(Registry(store).devices(), args.destination), end="")
    return 0


def _read_record(path: Path) -> str:
    if str(path) == "-":
        return sys.stdin.read()
    try:
        return path.read_text()
    except OSError as e:
        raise RegistryError(f"cannot read registration record {path}: {e.strerror}") from e


def devices_add(args: argparse.Namespace) -> int:
    """Validate every record first, then register them all in one transaction."""
    records = [parse_registration(_read_record(path)) for path in args.records]
    with _store(args) as store:
        registry = Registry(store)
        for record in records:
            registry.add(record)
        store.commit()
    for record in records:
        print(f"registered {record.device} for {record.destination} ({record.fingerprint})")
    return 0


def devices_list(args: argparse.Namespace) -> int:
    """Print the registry joined with each device's last state."""
    with _store(args) as store:
        states = {s.device: s for s in store.states()}
        rows = []
        for d in store.devices():
            state = states.get(d.device)
            health = state.health if state else {}
            rows.append({
                "device": d.device, "destination": d.destination, "mode": d.mode, "status": d.status,
                "fingerprint": d.fingerprint, "state": state.status if state else "unknown",
                "last_seen_ms": state.received_ms if state else None, "unsent": health.get("unsent"),
                "spool_depth": health.get("spool_depth"), "alarms": health.get("alarms", []),
            })  # fmt: skip
    if args.format == "json":
        print(json.dumps(rows, indent=2))
        return 0
    for r in rows:
        seen = _local(r["last_seen_ms"]) if r["last_seen_ms"] else "never"
        print(f"{r['device']:<24} {r['destination']:<24} {r['mode']:<9} {r['status']:<8} {r['state']:<8}"
              f" seen {seen}"
              f" unsent {r['unsent'] if r['unsent'] is not None else '-'}")  # fmt: skip
    return 0


def _local(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, ZoneInfo(VIETNAM)).strftime("%Y-%m-%d %H:%M")


def devices_revoke(args: argparse.Namespace) -> int:
    """Mark a device revoked."""
    with _store(args) as store:
        Registry(store).revoke(args.device)
        store.commit()
    print(f"revoked {args.device}: running ingests refuse its events within a few seconds")
    return 0


# destinations (the venue registry)


def _destinations(commands: argparse._SubParsersAction) -> None:
    group = commands.add_parser("destinations", help="the venue registry (name, district, ward)")
    actions = group.add_subparsers(dest="action", metavar="ACTION", required=True)
    load = actions.add_parser("import", help="add or update venues from a CSV file (see docs/central.md)")
    load.add_argument("file", type=Path, help="CSV with columns id,name,district,ward[,group,opening_hours]")
    load.set_defaults(func=destinations_import)


def destinations_import(args: argparse.Namespace) -> int:
    """Check every row first, then store them all in one transaction."""
    try:
        data = args.file.read_bytes()
    except OSError as e:
        raise ConfigError(f"cannot read {args.file}: {e.strerror}") from e
    rows = venues.parse_csv(data, source=str(args.file))
    with _store(args) as store:
        store.put_venues(rows)
        store.commit()
    districts = len({r.district for r in rows})
    print(f"imported {len(rows)} venues in {districts} districts from {args.file}")
    return 0


# ingest


def _ingest(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("ingest", help="verify, store and ack events from the broker until stopped")
    mqtt.add_broker_arguments(parser)
    parser.add_argument("--key", type=Path, required=True, help="authority private key that signs acks")
    parser.add_argument(
        "--client-id", help="fixed MQTT client id: a persistent session, events wait while this one is down"
    )
    parser.add_argument(
        "--share-group", default="central", help="shared-subscription group (default: central)"
    )
    parser.add_argument("--batch", type=int, default=2000, help="most events per commit (default: 2000)")
    parser.add_argument("--resend-after", type=float, default=10.0, help="seconds before a gap is asked for")
    parser.add_argument(
        "--sealing-key", type=Path, help="X25519 private key that opens sealed identities (0600)"
    )
    parser.add_argument("--hash-key", type=Path, help="central's own identity hash key (32 bytes, 0600)")
    parser.add_argument(
        "--plain-destination", action="append", default=[], metavar="DESTINATION",
        help="a destination whose rules demand plain identities (repeatable); others' are refused",
    )  # fmt: skip
    parser.set_defaults(func=ingest_command)


def _identity_opener(args: argparse.Namespace) -> IdentityOpener | None:
    if (args.sealing_key is None) != (args.hash_key is None):
        raise ConfigError("--sealing-key and --hash-key go together: `kiosk-central identity-keys`")
    if args.sealing_key is None:
        log.warning("no --sealing-key: events with card identities are refused (unopenable_identity)")
        return None
    return IdentityOpener.from_files(args.sealing_key, args.hash_key, args.plain_destination)


def _identity_keys(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "identity-keys", help="make central's identity keys: the sealing key pair and the hash key"
    )
    parser.add_argument("--sealing-key", type=Path, required=True, help="private key to write (0600)")
    parser.add_argument("--hash-key", type=Path, required=True, help="hash key to write (0600)")
    parser.add_argument("--public", type=Path, required=True, help="public key (PEM) for the kiosks")
    parser.set_defaults(func=identity_keys_command)


def identity_keys_command(args: argparse.Namespace) -> int:
    """Make the sealing key pair and the hash key; print where the public key goes."""
    private = sealing.generate_authority_key(args.sealing_key)
    keys.generate_identity_key(args.hash_key)
    args.public.write_text(sealing.public_pem(private.public_key()))
    print(f"wrote {args.public}: give it to every kiosk (paths.sealing_key_file); keep the other two here")
    return 0


def _authority_key(path: Path) -> Ed25519PrivateKey:
    if not path.exists():
        raise DeviceKeyError(f"authority key {path} not found: make one with `kiosk statuslist keygen`")
    return keys.load_private_key(path)


def ingest_command(args: argparse.Namespace) -> int:
    """Run the ingest until SIGTERM or SIGINT."""
    key = _authority_key(args.key)
    opener = _identity_opener(args)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    notifier = Notifier()
    with _store(args) as store:
        processor = Processor(
            store=store, registry=Registry(store), authority_key=key,
            topics=Topics(prefix=args.prefix, share_group=args.share_group),
            options=IngestOptions(resend_after_s=args.resend_after), identities=opener,
        )  # fmt: skip
        ingest = Ingest(
            processor=processor, broker=mqtt.settings_from(args, args.client_id), batch_size=args.batch,
            tick=_watchdog(notifier), reopen_store=lambda: open_store(args.db),
        )  # fmt: skip
        # Ready once the database is open: an absent broker is waited for (with backoff), not fatal,
        # and so is a database that goes away later (the broker keeps what is not acknowledged).
        notifier.ready(f"waiting for broker {args.broker}")
        try:
            ingest.run(stop, ready=_Status(notifier, f"ingesting from {args.broker}"))
        finally:
            processor.store.close()  # a reopened one; the first is closed by `with`
        notifier.stopping()
    s = processor.stats
    log.info("stopped: %d received, %d stored, %d duplicates, rejected %s", s.received, s.stored,
             s.duplicates, dict(s.rejected) or "none")  # fmt: skip
    return 0


def _watchdog(notifier: Notifier) -> Callable[[], None]:
    """A tick that pets systemd's watchdog at half its interval (the loop turns every 50 ms)."""
    interval = watchdog_interval_s() or 2.0
    last = [0.0]

    def tick() -> None:
        if time.monotonic() - last[0] >= interval:
            last[0] = time.monotonic()
            notifier.watchdog()

    return tick


class _Status:
    """A `ready` signal that sets systemd's status line."""

    def __init__(self, notifier: Notifier, text: str) -> None:
        self._notifier, self._text = notifier, text

    def set(self) -> None:
        """Subscribed: say so."""
        self._notifier.status(self._text)


# expire


def _days(text: str) -> int:
    try:
        days = int(text)
    except ValueError:
        days = 0
    if not 1 <= days <= 3650:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of days from 1 to 3650")
    return days


def _expire(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("expire", help="delete data older than the retention (once or periodically)")
    parser.add_argument(
        "--days", type=_days, default=retention.DEFAULT_DAYS,
        help=f"keep this many days (default: {retention.DEFAULT_DAYS}; see docs/central.md)",
    )  # fmt: skip
    parser.add_argument("--every", type=float, help="run again every SECONDS until stopped (default: once)")
    parser.set_defaults(func=expire_command)


def expire_command(args: argparse.Namespace) -> int:
    """Delete what is older than the retention, once or every `--every` seconds."""
    if args.every is None:
        with _store(args) as store:
            deleted = retention.expire(store, args.days, now_ms=now_ms())
        print(f"kept {args.days} days: deleted {deleted} (rows, or PostgreSQL day partitions)")
        return 0
    if args.every <= 0:
        raise ConfigError("--every must be a positive number of seconds")
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    retention.run(lambda: open_store(args.db), args.days, every_s=args.every, stop=stop)
    return 0


# report


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date like 2021-09-01") from e


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from e
    if not 1 <= value <= 100_000:
        raise argparse.ArgumentTypeError(f"{value} is out of range (1 to 100000)")
    return value


def _report(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("report", help="one day's report per destination, with compliance flags")
    parser.add_argument("--date", type=_day, required=True, help="local day, YYYY-MM-DD")
    parser.add_argument("--destination", help="only this destination")
    parser.add_argument("--district", help="only venues of this district")
    parser.add_argument("--ward", help="only venues of this ward")
    parser.add_argument("--page", type=_positive, default=1, help="page of venues (default: 1)")
    parser.add_argument("--per-page", type=_positive, default=50, help="venues per page (default: 50)")
    parser.add_argument("--lang", choices=render.LANGUAGES, default="vi", help="language (default: vi)")
    parser.add_argument("--format", choices=render.FORMATS, default="table")
    parser.add_argument("--destinations", type=Path, help="destinations file (TOML; see docs/central.md)")
    parser.add_argument("-o", "--output", type=Path, help="write here instead of stdout")
    parser.set_defaults(func=report_command)


def report_command(args: argparse.Namespace) -> int:
    """Build and print (or write) the report."""
    settings = load_report_settings(args.destinations)
    with _store(args) as store:
        known = {d.destination for d in store.devices()} | {d.id for d in settings.destinations}
        if args.destination and args.destination not in known | {v.destination for v in store.venues()}:
            raise ConfigError(
                f"unknown destination {args.destination!r}: no device, registry or destinations-file entry"
            )
        selection = Selection(
            destination=args.destination, district=args.district, ward=args.ward, page=args.page,
            per_page=args.per_page,
        )  # fmt: skip
        report = build_report(store, day=args.date, settings=settings, now_ms=now_ms(), selection=selection)
    if args.page > report.pages:
        raise ConfigError(
            f"--page {args.page}: the report has {report.pages} page(s) of {args.per_page} venues"
        )
    _emit(render.render(report, args.format, lang=args.lang), args.output)
    return 0


def _emit(text: str, output: Path | None) -> None:
    if output is None:
        sys.stdout.write(text)
    else:
        output.write_text(text)


# trace


def _moment(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"{text!r} is not a time like 2021-09-01T08:00 or 2021-09-01") from e
    return moment if moment.tzinfo else moment.replace(tzinfo=ZoneInfo(VIETNAM))


def _trace(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("trace", help="a person's visits and the people present with them")
    parser.add_argument(
        "--identity", required=True, help="card identity (QID, CCCD no., UVCI) or hmac:/plain:"
    )
    parser.add_argument("--from", dest="start", type=_moment, required=True, help=f"start (local: {VIETNAM})")
    parser.add_argument("--to", dest="end", type=_moment, required=True, help="end (exclusive)")
    parser.add_argument("--hash-key", type=Path, help="central's identity hash key (32 bytes, 0600)")
    parser.add_argument(
        "--identity-key", type=Path, help="v1 events: the old shared identity HMAC key (32 bytes, 0600)"
    )
    parser.add_argument(
        "--format", choices=trace.TRACE_FORMATS, help="v1 events: the card format hashed (default: each)"
    )
    parser.add_argument("--dwell-minutes", type=int, default=60, help="stay assumed without an out scan")
    parser.add_argument("--output-format", choices=("table", "json"), default="table")
    parser.set_defaults(func=trace_command)


def trace_command(args: argparse.Namespace) -> int:
    """Find and print the visits and contacts."""
    if args.end <= args.start:
        raise ConfigError("--to must be after --from")
    if args.dwell_minutes < 1:
        raise ConfigError("--dwell-minutes must be at least 1")
    key = keys.load_identity_key(args.identity_key) if args.identity_key else None
    formats = (args.format,) if args.format else trace.TRACE_FORMATS
    hash_key = keys.load_identity_key(args.hash_key) if args.hash_key else None
    who = trace.identities_for(args.identity, identity_key=key, formats=formats, hash_key=hash_key)
    start, end = (int(t.timestamp() * 1000) for t in (args.start, args.end))
    with _store(args) as store:
        result = trace.trace(store, who, start, end, dwell_ms=args.dwell_minutes * 60_000)
    text = (
        trace.as_json(result) if args.output_format == "json" else trace.as_table(result, ZoneInfo(VIETNAM))
    )
    sys.stdout.write(text)
    return 0


# statuslist


def _statuslist(commands: argparse._SubParsersAction) -> None:
    group = commands.add_parser("statuslist", help="publish the signed status list")
    actions = group.add_subparsers(dest="action", metavar="ACTION", required=True)
    publish = actions.add_parser("publish", help="publish a list signed by `kiosk statuslist sign`, retained")
    publish.add_argument("token", type=Path, help="signed status list (JWS)")
    mqtt.add_broker_arguments(publish)
    publish.add_argument("--authority-keys", type=Path, help="PEM of authority public keys: verify first")
    publish.set_defaults(func=statuslist_publish)


def statuslist_publish(args: argparse.Namespace) -> int:
    """Check (when keys are given) and publish the status list as the retained message."""
    token = mqtt.read_token(args.token)
    if args.authority_keys:
        parsed = sl.verify_token(token, keys.load_public_keys(args.authority_keys))
        print(f"verified status list version {parsed.version} with {parsed.count} entries")
    mqtt.publish_retained(mqtt.settings_from(args), statuslist_topic(args.prefix), token, what="status list")
    return 0


if __name__ == "__main__":
    sys.exit(main())
