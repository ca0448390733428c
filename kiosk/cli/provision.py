"""`kiosk provision`: make this device a kiosk of one destination and print its registration."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import segno

from kiosk.config import DEFAULT_CONFIG_PATH, ENV_CONFIG
from kiosk.provision import ProvisionRequest, ProvisionResult, provision


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
    parser.add_argument("--destination", required=True, help="destination (venue) id from the authority")
    parser.add_argument("--venue", required=True, help="venue name shown on the screen")
    parser.add_argument("--direction", choices=("in", "out", "auto"), default="in", help="default: in")
    parser.add_argument("--device-id", help="device id (default: kiosk- and the key fingerprint's start)")


def _add_broker_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--broker", required=True, help="authority's broker, e.g. mqtts://HOST:8883")
    parser.add_argument("--ca", type=Path, help="CA certificate that signed the broker's certificate")
    parser.add_argument("--cert", type=Path, help="this device's TLS client certificate (with --key)")
    parser.add_argument("--key", type=Path, help="the client certificate's private key (with --cert)")
    parser.add_argument("--username", help="broker username (default: the device id)")
    parser.add_argument("--password-file", type=Path, help="file holding the broker password")


def _add_file_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--identity-key", type=Path, help="the authority's identity key file (32 bytes)")
    parser.add_argument(
        "--config",
        type=Path,
        help=f"config file to write (default: ${ENV_CONFIG}, else {DEFAULT_CONFIG_PATH})",
    )
    parser.add_argument("--state-dir", type=Path, help="state folder (default: the config's paths.state_dir)")
    parser.add_argument("--force", action="store_true", help="replace an existing device key")


def run(args: argparse.Namespace) -> int:
    """Provision, print the record and its QR code; errors exit 2 through kiosk.cli.main."""
    result = provision(request_from(args))
    _report(result)
    return 0


def request_from(args: argparse.Namespace) -> ProvisionRequest:
    """The provisioning request named by the command line, with paths made absolute."""
    return ProvisionRequest(
        config_path=_absolute_path(args.config or Path(os.environ.get(ENV_CONFIG) or DEFAULT_CONFIG_PATH)),
        destination=args.destination,
        venue_name=args.venue,
        broker=args.broker,
        device_id=args.device_id,
        direction=args.direction,
        state_dir=_absolute(args.state_dir),
        ca_file=_absolute(args.ca),
        cert_file=_absolute(args.cert),
        key_file=_absolute(args.key),
        username=args.username,
        password_file=_absolute(args.password_file),
        identity_key=_absolute(args.identity_key),
        force=args.force,
    )


def _absolute(path: Path | None) -> Path | None:
    return None if path is None else _absolute_path(path)


def _absolute_path(path: Path) -> Path:
    # abspath, not resolve(): a symlinked /etc/kiosk stays as the technician named it.
    return Path(os.path.abspath(path.expanduser()))


def _report(result: ProvisionResult) -> None:
    record = result.registration
    err = sys.stderr
    if result.replaced_key:
        print("kiosk: the device key was replaced: register the new record with the authority", file=err)
    if result.identity_key_generated:
        print(
            "kiosk: warning: no --identity-key given, so a new identity key was made: card hashes from "
            "this kiosk will not match other venues'. Install the authority's key with --identity-key.",
            file=err,
        )
    print(
        f"kiosk: provisioned {record.device} for {record.destination}; config {result.config_path}", file=err
    )
    print("kiosk: registration record (scan the QR code, or send the JSON to the authority):", file=err)
    segno.make(record.to_json(indent=None), error="l").terminal(out=err, compact=True)
    print(record.to_json())
