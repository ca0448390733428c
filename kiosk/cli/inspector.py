"""`kiosk inspector keygen|make|verify`: the authority's side of inspector cards (docs/cards.md)."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from kiosk import cardmaker
from kiosk.argtypes import aware_time, positive_int
from kiosk.cards import Rejection
from kiosk.cards.inspector import InspectorCard, make_inspector_payload, parse_inspector_card
from kiosk.cli.statuslist import register_keygen
from kiosk.errors import InspectorCardError
from kiosk.keys import load_private_key, load_public_keys
from kiosk.reasons import message

DEFAULT_DAYS = 30


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `inspector` command group."""
    group = subparsers.add_parser("inspector", help="make and verify inspector cards (docs/cards.md)")
    actions = group.add_subparsers(dest="action", metavar="ACTION", required=True)
    register_keygen(
        actions, "make an authority signing key (PEM, 0600) and its public key (as statuslist keygen)"
    )
    _register_make(actions)
    _register_verify(actions)


def _register_make(actions: argparse._SubParsersAction) -> None:
    make = actions.add_parser("make", help="sign an inspector card; print its QR text")
    make.add_argument("--key", type=Path, required=True, help="authority private key (PEM, 0600)")
    make.add_argument("--inspector", required=True, help="inspector id: 1-64 letters, digits, '.', '_', '-'")
    make.add_argument("--name", help="name shown on the inspection screen (at most 64 characters)")
    make.add_argument(
        "--valid-from", type=aware_time, metavar="TIME", help="ISO 8601 with zone (default: now)"
    )
    until = make.add_mutually_exclusive_group()
    until.add_argument("--days", type=positive_int, help=f"valid this many days (default: {DEFAULT_DAYS})")
    until.add_argument("--valid-until", type=aware_time, metavar="TIME", help="ISO 8601 with zone")
    make.add_argument("--png", type=Path, help="also write the QR code as a PNG image")
    make.set_defaults(func=make_command)


def _register_verify(actions: argparse._SubParsersAction) -> None:
    verify = actions.add_parser(
        "verify", help="check a card as a kiosk would; print it as JSON (exit 1 if refused)"
    )
    verify.add_argument("payload", metavar="PAYLOAD", help="the QR text, or - to read it from stdin")
    verify.add_argument("--keys", type=Path, required=True, help="PEM file of authority public keys")
    verify.add_argument("--at", type=aware_time, metavar="TIME", help="the clock, ISO 8601 with zone")
    verify.set_defaults(func=verify_command)


def make_command(args: argparse.Namespace) -> int:
    """Sign the card, print its QR text on stdout and a summary on stderr."""
    valid_from = args.valid_from or datetime.now(UTC).replace(microsecond=0)
    valid_until = args.valid_until or valid_from + timedelta(days=args.days or DEFAULT_DAYS)
    payload = make_inspector_payload(
        load_private_key(args.key),
        inspector=args.inspector,
        name=args.name,
        valid_from=valid_from,
        valid_until=valid_until,
    )
    print(payload)
    if args.png is not None:
        _write_png(payload, args.png)
    where = f" -> {args.png}" if args.png is not None else ""
    span = f"{valid_from.isoformat()} to {valid_until.isoformat()}"
    print(f"inspector {args.inspector}: valid {span}, {len(payload)} characters{where}", file=sys.stderr)
    return 0


def _write_png(payload: str, path: Path) -> None:
    try:
        cardmaker.qr_png(payload, path)
    except OSError as e:
        raise InspectorCardError(f"cannot write {path}: {e.strerror}") from e


def verify_command(args: argparse.Namespace) -> int:
    """Print the verified card, or the refusal, as one JSON line."""
    text = sys.stdin.read() if args.payload == "-" else args.payload
    now = args.at.astimezone(UTC) if args.at else datetime.now(UTC)
    result = parse_inspector_card(text.strip().encode("utf-8"), keys=load_public_keys(args.keys), now=now)
    print(json.dumps(describe(result), ensure_ascii=False))
    return 0 if isinstance(result, InspectorCard) else 1


def describe(result: InspectorCard | Rejection) -> dict[str, Any]:
    """A verified card's fields, or a refusal's reason, detail and messages, ready for JSON."""
    if isinstance(result, InspectorCard):
        return {
            "valid": True,
            "inspector": result.inspector,
            "name": result.name,
            "valid_from": result.valid_from.isoformat(),
            "valid_until": result.valid_until.isoformat(),
            "kid": result.kid,
        }
    return {
        "valid": False,
        "reason": str(result.reason),
        "detail": result.detail,
        "message_vi": message(result.reason, "vi"),
        "message_en": message(result.reason, "en"),
    }
