"""`kiosk provision`: make this device a kiosk of one destination and print its registration."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TextIO

import segno

from kiosk import keys
from kiosk.bundle import Bundle, read_bundle
from kiosk.config import DEFAULT_CONFIG_PATH, ENV_CONFIG
from kiosk.errors import ProvisionError
from kiosk.provision import ProvisionRequest, ProvisionResult, missing_trust, provision


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `provision` command."""
    parser = subparsers.add_parser(
        "provision",
        help="make a device key and config for one destination; print the registration record",
        description="Generate this device's key, write its config for one destination, and print the "
        "registration record (JSON on stdout, a QR code of it on stderr) for the authority.",
    )
    _add_destination_arguments(parser)
    _add_broker_arguments(parser)
    _add_file_arguments(parser)
    parser.set_defaults(func=run)


def _add_destination_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--bundle", type=Path, help="provisioning bundle (`kiosk-central bundle`): trust material, venue"
    )
    parser.add_argument(
        "--authority-fingerprint",
        help="the fingerprint the authority printed (SHA256:...): refuse any other signer",
    )
    parser.add_argument("--destination", help="destination (venue) id (default: the bundle's)")
    parser.add_argument("--venue", help="venue name shown on the screen (default: the bundle's)")
    parser.add_argument("--direction", choices=("in", "out", "auto"), help="default: the bundle's, else in")
    parser.add_argument(
        "--mode", choices=("kiosk", "inspector"), help="kiosk, or an inspector's handheld (default: bundle's)"
    )
    parser.add_argument("--device-id", help="device id (default: kiosk- and the key fingerprint's start)")


def _add_broker_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--broker", help="authority's broker, e.g. mqtts://HOST:8883 (default: the bundle's)")
    parser.add_argument("--ca", type=Path, help="CA certificate that signed the broker's certificate")
    parser.add_argument("--cert", type=Path, help="this device's TLS client certificate (with --key)")
    parser.add_argument("--key", type=Path, help="the client certificate's private key (with --cert)")
    parser.add_argument("--username", help="broker username (default: the device id)")
    parser.add_argument("--password-file", type=Path, help="file holding the broker password")


def _add_file_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--destination-key", type=Path, help="the venue's key file (32 bytes; default: the bundle's)"
    )
    parser.add_argument(
        "--sealing-key", type=Path, help="the authority's sealing public key (PEM; default: the bundle's)"
    )
    parser.add_argument(
        "--config",
        type=Path,
        help=f"config file to write (default: ${ENV_CONFIG}, else {DEFAULT_CONFIG_PATH})",
    )
    parser.add_argument("--state-dir", type=Path, help="state folder (default: the config's paths.state_dir)")
    parser.add_argument("--force", action="store_true", help="replace an existing device key")
    parser.add_argument(
        "--keep-key", action="store_true", help="keep the existing device key and id (to apply a new bundle)"
    )


def run(args: argparse.Namespace) -> int:
    """Provision, print the record and its QR code; errors exit 2 through kiosk.cli.main."""
    result = provision(request_from(args))
    _report(result)
    return 0


def request_from(args: argparse.Namespace) -> ProvisionRequest:
    """The provisioning request named by the command line, with paths made absolute."""
    bundle = _bundle(args.bundle)
    venue = bundle.content.destination if bundle else None
    return ProvisionRequest(
        config_path=_absolute_path(args.config or Path(os.environ.get(ENV_CONFIG) or DEFAULT_CONFIG_PATH)),
        destination=_needed("--destination", args.destination or (venue.id if venue else None)),
        venue_name=_needed("--venue", args.venue or (venue.venue_name if venue else None)),
        broker=_needed("--broker", args.broker or (bundle.content.broker if bundle else None)),
        device_id=args.device_id,
        direction=args.direction or (venue.direction if venue else "in"),
        mode=args.mode or (venue.mode if venue else "kiosk"),
        capacity=venue.capacity if venue else None,
        bundle=bundle,
        authority_fingerprint=args.authority_fingerprint,
        state_dir=_absolute(args.state_dir),
        ca_file=_absolute(args.ca),
        cert_file=_absolute(args.cert),
        key_file=_absolute(args.key),
        username=args.username,
        password_file=_absolute(args.password_file),
        destination_key=_absolute(args.destination_key),
        sealing_key=_absolute(args.sealing_key),
        force=args.force,
        keep_key=args.keep_key,
    )


def _bundle(path: Path | None) -> Bundle | None:
    if path is None:
        return None
    try:
        return read_bundle(path.read_bytes())
    except OSError as e:
        raise ProvisionError(f"--bundle {path}: cannot read it ({e.strerror})") from e


def _needed(flag: str, value: str | None) -> str:
    if not value:
        raise ProvisionError(f"{flag} is required (or give a --bundle that names it)")
    return value


def _absolute(path: Path | None) -> Path | None:
    return None if path is None else _absolute_path(path)


def _absolute_path(path: Path) -> Path:
    # abspath, not resolve(): a symlinked /etc/kiosk stays as the technician named it.
    return Path(os.path.abspath(path.expanduser()))


def _report_trust(result: ProvisionResult, err: TextIO) -> None:
    bundle = result.bundle
    if bundle is not None:
        print(f"kiosk: authority key fingerprint {keys.shown_fingerprint(bundle.fingerprint)}", file=err)
        print("kiosk: check it against the fingerprint the authority printed for this bundle", file=err)
    gaps = missing_trust(result.settings) + (bundle.missing() if bundle else [])
    for gap in dict.fromkeys(gaps):
        print(f"kiosk: warning: not provisioned with {gap}", file=err)
    if gaps and bundle is None:
        print("kiosk: for a real venue, provision with --bundle from `kiosk-central bundle`", file=err)


def _report(result: ProvisionResult) -> None:
    record = result.registration
    err = sys.stderr
    if result.replaced_key:
        print("kiosk: the device key was replaced: register the new record with the authority", file=err)
    if result.destination_key_generated:
        print(
            "kiosk: warning: no destination key given, so a new one was made: this kiosk will not know "
            "people seen by the venue's other lanes. Install the venue's key with --destination-key.",
            file=err,
        )
    print(
        f"kiosk: provisioned {record.device} ({record.mode}) for {record.destination};"
        f" config {result.config_path}",
        file=err,
    )
    _report_trust(result, err)
    print("kiosk: registration record (scan the QR code, or send the JSON to the authority):", file=err)
    segno.make(record.to_json(indent=None), error="l").terminal(out=err, compact=True)
    print(record.to_json())
