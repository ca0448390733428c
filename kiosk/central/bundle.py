"""`kiosk-central bundle`: the provisioning bundle a technician takes to one destination.

It gathers the authority's public keys, the current vaccine-passport trust list and
status list, the broker's CA, the destination's record, the authority's sealing public
key and the destination's key (central keeps one per venue) into one file signed by
an authority key (kiosk.bundle), and prints that key's fingerprint: the technician
checks that `kiosk provision --bundle` prints the same.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding

from kiosk import keys, sealing, trustlist
from kiosk.argtypes import positive_int
from kiosk.bundle import BundleContent, DestinationRecord, keys_pem, make_bundle, now
from kiosk.errors import ConfigError, DeviceKeyError
from kiosk.jws import b64url
from kiosk.statuslist import write_atomically


def register(commands: argparse._SubParsersAction) -> None:
    """Add the `bundle` command."""
    parser = commands.add_parser("bundle", help="make the signed provisioning bundle for one destination")
    parser.add_argument(
        "--authority-key", type=Path, required=True, help="authority private key (PEM) to sign"
    )
    parser.add_argument("--authority-keys", type=Path, help="more authority public keys (PEM) kiosks trust")
    parser.add_argument(
        "--trust-list", type=Path, help="document-signer certificates: PEM/DER file or folder"
    )
    parser.add_argument("--trust-list-version", type=int, default=0, help="that trust list's version")
    parser.add_argument(
        "--trust-list-token", type=Path, help="the signed trust list (`kiosk-central trustlist sign`) instead"
    )
    parser.add_argument("--status-list", type=Path, help="the current signed status list (JWS)")
    parser.add_argument("--broker", help="the broker's URL, e.g. mqtts://HOST:8883")
    parser.add_argument("--broker-ca", type=Path, help="the broker's CA certificate (PEM)")
    parser.add_argument("--destination", required=True, help="destination (venue) id")
    parser.add_argument("--venue", required=True, help="venue name")
    parser.add_argument("--district", required=True, help="district (quận/huyện)")
    parser.add_argument("--ward", required=True, help="ward (phường/xã)")
    parser.add_argument("--direction", choices=("in", "out", "auto"), default="in", help="default: in")
    parser.add_argument("--mode", choices=("kiosk", "inspector"), default="kiosk", help="default: kiosk")
    parser.add_argument("--capacity", type=positive_int, help="occupancy limit (direction auto)")
    parser.add_argument(
        "--sealing-key", type=Path, help="the authority's sealing public key (PEM, `identity-keys --public`)"
    )
    parser.add_argument(
        "--destination-keys", type=Path,
        help="folder of destination keys (<destination>.key, 0600): this venue's is made when missing",
    )  # fmt: skip
    parser.add_argument("-o", "--output", type=Path, required=True, help="the bundle file to write")
    parser.set_defaults(func=bundle_command)


def bundle_command(args: argparse.Namespace) -> int:
    """Make, check and write the bundle; print the signing key's fingerprint."""
    key = _private_key(args.authority_key)
    public = {keys.thumbprint(key.public_key()): key.public_key()}
    if args.authority_keys:
        public |= keys.load_public_keys(args.authority_keys)
    content = BundleContent(
        issued=now(),
        authority_keys=keys_pem(public),
        **_trust_list(args, public),
        status_list=_text(args.status_list),
        broker=args.broker,
        broker_ca=_text(args.broker_ca),
        destination=_destination(args),
        sealing_key=_text(args.sealing_key),
        destination_key=_destination_key(args.destination_keys, args.destination),
    )
    write_atomically(args.output, make_bundle(content, key))
    print(f"wrote {args.output} for {args.destination}", file=sys.stderr)
    print(f"authority key fingerprint {keys.shown_fingerprint(keys.thumbprint(key.public_key()))}")
    return 0


def _private_key(path: Path) -> Ed25519PrivateKey:
    if not path.exists():
        raise DeviceKeyError(f"authority key {path} not found: make one with `kiosk statuslist keygen`")
    return keys.load_private_key(path)


def _destination(args: argparse.Namespace) -> DestinationRecord:
    try:
        return DestinationRecord(
            id=args.destination, venue_name=args.venue, district=args.district, ward=args.ward,
            direction=args.direction, mode=args.mode, capacity=args.capacity,
        )  # fmt: skip
    except ValueError as e:
        raise ConfigError(f"the destination record is invalid: {e}") from e


def _trust_list(args: argparse.Namespace, public: dict[str, Ed25519PublicKey]) -> dict[str, Any]:
    if args.trust_list_token is None:
        return {"trust_list": _trust_list_pem(args.trust_list), "trust_list_version": args.trust_list_version}
    if args.trust_list is not None:
        raise ConfigError("give --trust-list (certificates) or --trust-list-token (a signed list), not both")
    token = _text(args.trust_list_token) or ""
    signed = trustlist.verify_trust_list(token.encode(), public)
    pem = "".join(c.public_bytes(Encoding.PEM).decode("ascii") for c in signed.certificates)
    return {"trust_list": pem, "trust_list_version": signed.version, "trust_list_token": token.strip()}


def _destination_key(folder: Path | None, destination: str) -> str | None:
    """The venue's key from central's folder of them (one per destination), made the first time."""
    if folder is None:
        return None
    path = folder / f"{destination}.key"
    key = keys.load_identity_key(path) if path.exists() else sealing.generate_destination_key(path)
    return b64url(key)


def _trust_list_pem(path: Path | None) -> str:
    if path is None:
        return ""
    certificates = trustlist.read_path(path)
    return "".join(c.public_bytes(Encoding.PEM).decode("ascii") for c in certificates)


def _text(path: Path | None) -> str | None:
    if path is None:
        return None
    try:
        return path.read_text(encoding="ascii").strip() + "\n"
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"cannot read {path}: {e}") from e
