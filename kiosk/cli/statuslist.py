"""`kiosk statuslist keygen|make|sign|verify`: the authority's side of the status list."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path

from kiosk import statuslist as sl
from kiosk.argtypes import aware_time
from kiosk.errors import StatusListError
from kiosk.keys import generate_device_key, load_private_key, load_public_keys, public_pem, thumbprint


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `statuslist` command group."""
    group = subparsers.add_parser(
        "statuslist", help="make, sign and verify status lists (docs/statuslist.md)"
    )
    actions = group.add_subparsers(dest="action", metavar="ACTION", required=True)
    register_keygen(actions)
    _register_make(actions)
    _register_sign(actions)
    _register_verify(actions)


def register_keygen(
    actions: argparse._SubParsersAction,
    help: str = "make an authority signing key (PEM, 0600) and its public key",
) -> None:
    """Add `keygen`: an authority key pair (shared by the status list and inspector card tools)."""
    keygen = actions.add_parser("keygen", help=help)
    keygen.add_argument("--out-key", type=Path, required=True, help="private key file to write")
    keygen.add_argument("--out-pub", type=Path, help="public key file (default: KEY.pub.pem)")
    keygen.add_argument("--force", action="store_true", help="replace an existing key")
    keygen.set_defaults(func=keygen_command)


def _register_make(actions: argparse._SubParsersAction) -> None:
    make = actions.add_parser("make", help="build an unsigned list from CSV rows identity,status[,until]")
    make.add_argument("csv", type=Path, help="CSV file, or - for stdin")
    make.add_argument("-o", "--out", type=Path, required=True, help="unsigned payload file to write")
    make.add_argument("--version", type=int, help="list version (default: issue time in Unix seconds)")
    make.add_argument("--issued", type=aware_time, help="issue time, ISO 8601 with zone (default: now)")
    make.set_defaults(func=make_command)


def _register_sign(actions: argparse._SubParsersAction) -> None:
    sign = actions.add_parser("sign", help="sign an unsigned list with an authority key")
    sign.add_argument("payload", type=Path, help="unsigned payload made by `statuslist make`")
    sign.add_argument("--key", type=Path, required=True, help="authority private key (PEM, 0600)")
    sign.add_argument("-o", "--out", type=Path, required=True, help="signed list (JWS) to write")
    sign.set_defaults(func=sign_command)


def _register_verify(actions: argparse._SubParsersAction) -> None:
    verify = actions.add_parser("verify", help="check a signed list and print its version, count, issue time")
    verify.add_argument("token", type=Path, help="signed list (JWS)")
    verify.add_argument("--keys", type=Path, required=True, help="PEM file of authority public keys")
    verify.add_argument("--lookup", action="append", default=[], metavar="IDENTITY", help="also look this up")
    verify.set_defaults(func=verify_command)


def keygen_command(args: argparse.Namespace) -> int:
    """Write an authority key pair; print the key id (thumbprint)."""
    key = generate_device_key(args.out_key, overwrite=args.force)
    pub = args.out_pub or args.out_key.with_name(args.out_key.name + ".pub.pem")
    _write(pub, public_pem(key.public_key()).encode())
    print(f"kid {thumbprint(key.public_key())}: private key {args.out_key}, public key {pub}")
    return 0


def make_command(args: argparse.Namespace) -> int:
    """Build the unsigned payload from CSV."""
    entries = sl.read_csv(_read_lines(args.csv))
    issued = (args.issued or datetime.now(UTC)).astimezone(UTC)
    version = args.version if args.version is not None else int(issued.timestamp())
    payload = sl.build_payload(entries, version=version, issued=issued)
    _write(args.out, payload)
    print(f"version {version}: {len(entries)} entries, {len(payload)} bytes -> {args.out}", file=sys.stderr)
    return 0


def sign_command(args: argparse.Namespace) -> int:
    """Sign a payload after checking that it parses."""
    payload = _read(args.payload)
    parsed = sl.parse_payload(payload)
    token = sl.sign_payload(payload, load_private_key(args.key))
    _write(args.out, token)
    print(f"version {parsed.version}: {parsed.count} entries signed, {len(token)} bytes -> {args.out}")
    return 0


def verify_command(args: argparse.Namespace) -> int:
    """Print the list's summary and any lookups as JSON lines."""
    listed = sl.verify_token(_read(args.token), load_public_keys(args.keys))
    print(sl.dump_summary(listed))
    for identity in args.lookup:
        status = listed.lookup(identity)
        print(sl.describe_status(identity, status))
    return 0


def _read_lines(path: Path) -> list[str]:
    if str(path) == "-":
        return sys.stdin.read().splitlines()
    try:
        return _read(path).decode("utf-8").splitlines()
    except UnicodeDecodeError as e:
        raise StatusListError(f"{path} is not UTF-8 text: save the CSV as UTF-8") from e


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as e:
        raise StatusListError(f"cannot read {path}: {e.strerror}") from e


def _write(path: Path, data: bytes) -> None:
    try:
        sl.write_atomically(path, data)
    except OSError as e:
        raise StatusListError(f"cannot write {path}: {e.strerror}") from e
