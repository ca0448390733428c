"""`kiosk-central trustlist sign|publish`: the vaccine passports' trust list, signed and versioned.

The token `sign` writes is what `kiosk-central bundle --trust-list-token` carries and
what `publish` puts on the retained topic `{prefix}/trustlist` (kiosk.trustlist,
"the signed, versioned trust list"), where running kiosks take it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from kiosk import keys
from kiosk.argtypes import positive_int
from kiosk.bundle import now
from kiosk.central import mqtt
from kiosk.errors import DeviceKeyError
from kiosk.statuslist import write_atomically
from kiosk.topics import trustlist_topic
from kiosk.trustlist import read_path, sign_trust_list, verify_trust_list


def register(commands: argparse._SubParsersAction) -> None:
    """Add the `trustlist` command group."""
    group = commands.add_parser("trustlist", help="sign and publish the vaccine passports' trust list")
    actions = group.add_subparsers(dest="action", metavar="ACTION", required=True)
    sign = actions.add_parser("sign", help="sign document-signer certificates as one versioned list")
    sign.add_argument(
        "certificates", type=Path, help="PEM/DER file or folder of document-signer certificates"
    )
    sign.add_argument(
        "--version", type=positive_int, required=True, help="list version: higher than the last"
    )
    sign.add_argument("--authority-key", type=Path, required=True, help="authority private key (PEM)")
    sign.add_argument("-o", "--output", type=Path, required=True, help="the signed list to write")
    sign.set_defaults(func=sign_command)
    publish = actions.add_parser("publish", help="publish a list made by `trustlist sign`, retained")
    publish.add_argument("token", type=Path, help="signed trust list (JWS)")
    mqtt.add_broker_arguments(publish)
    publish.add_argument("--authority-keys", type=Path, help="PEM of authority public keys: verify first")
    publish.set_defaults(func=publish_command)


def sign_command(args: argparse.Namespace) -> int:
    """Sign the certificates and write the token."""
    if not args.authority_key.exists():
        raise DeviceKeyError(
            f"authority key {args.authority_key} not found: make one with `kiosk statuslist keygen`"
        )
    key = keys.load_private_key(args.authority_key)
    certificates = read_path(args.certificates)
    write_atomically(args.output, sign_trust_list(certificates, version=args.version, issued=now(), key=key))
    print(
        f"signed trust list version {args.version}: {len(certificates)} certificates -> {args.output}",
        file=sys.stderr,
    )
    return 0


def publish_command(args: argparse.Namespace) -> int:
    """Check (when keys are given) and publish the trust list as the retained message."""
    token = mqtt.read_token(args.token)
    if args.authority_keys:
        parsed = verify_trust_list(token, keys.load_public_keys(args.authority_keys))
        print(f"verified trust list version {parsed.version} with {len(parsed.certificates)} certificates")
    mqtt.publish_retained(mqtt.settings_from(args), trustlist_topic(args.prefix), token, what="trust list")
    return 0
