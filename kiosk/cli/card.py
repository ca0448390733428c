"""`kiosk card check` (decide payloads as the kiosk would) and `kiosk card make` (example cards)."""

from __future__ import annotations

import argparse
import base64
import json
import os
import sys
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from kiosk import cardmaker
from kiosk.argtypes import aware_time, positive_int
from kiosk.cards import Card, Rejection, parse_card
from kiosk.cards.masking import mask_identity
from kiosk.cli.common import add_config_argument, settings_from
from kiosk.config import Settings
from kiosk.errors import ImageError, SignerKeyError, StatusListError
from kiosk.keys import load_public_keys
from kiosk.policy import Policy
from kiosk.statuslist import StatusList, verify_token
from kiosk.trustlist import TrustList

SIGNER_TYPES: dict[str, Literal["v", "t", "r"]] = {"vaccination": "v", "test": "t", "recovery": "r"}


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `card` command group."""
    group = subparsers.add_parser("card", help="check QR payloads, make example cards")
    actions = group.add_subparsers(dest="action", metavar="ACTION", required=True)
    _register_check(actions)
    make = actions.add_parser("make", help="print a valid example payload (and write its QR image)")
    kinds = make.add_subparsers(dest="kind", metavar="KIND", required=True)
    _register_make_national(kinds)
    _register_make_cccd(kinds)
    _register_make_dcc(kinds)
    _register_make_signer(kinds)


# ---------------------------------------------------------------- check


def _register_check(actions: argparse._SubParsersAction) -> None:
    # No abbreviations: `--show-identities` is asked for by its whole name, never by a prefix.
    check = actions.add_parser(
        "check",
        help="decide payloads as this kiosk would; one JSON line each (verdicts are data: exit 0)",
        allow_abbrev=False,
    )
    check.add_argument(
        "payloads", nargs="*", metavar="PAYLOAD", help="QR text (default: one per line on stdin)"
    )
    check.add_argument(
        "--trust",
        type=Path,
        metavar="PATH",
        help="trust list for vaccine passports (default: policy.trust_list)",
    )
    check.add_argument("--statuslist", type=Path, metavar="FILE", help="signed status list (JWS) to enforce")
    check.add_argument(
        "--keys", type=Path, metavar="PEM", help="authority public keys (default: policy.authority_keys)"
    )
    check.add_argument(
        "--at",
        type=aware_time,
        metavar="TIME",
        help="the clock for the checks, ISO 8601 with zone (default: now)",
    )
    check.add_argument(
        "--lang", choices=["vi", "en"], help="message language (default: destination.language)"
    )
    check.add_argument(
        "--show-identities",
        action="store_true",
        help="print the card's identities (QID, id number, UVCI) in full, not masked; names stay masked",
    )
    add_config_argument(check)
    check.set_defaults(func=check_command)


def check_command(args: argparse.Namespace) -> int:
    """Print one JSON line per payload: card fields (masked), verdict, reason and message."""
    settings = settings_from(args)
    trust = _trust(args.trust or settings.policy.trust_list)
    listed = _statuslist(args.statuslist, args.keys or settings.policy.authority_keys)
    lang = args.lang or settings.destination.language
    now = args.at.astimezone(UTC) if args.at else datetime.now(UTC)
    if args.show_identities:
        print("kiosk: identities are shown in full (--show-identities): keep this output private",
              file=sys.stderr)  # fmt: skip
    for payload in _payloads(args.payloads):
        result = check_one(payload, settings, trust=trust, statuslist=listed, now=now, lang=lang)
        print(json.dumps(result if args.show_identities else masked(result), ensure_ascii=False))
    return 0


def masked(result: dict[str, Any]) -> dict[str, Any]:
    """A check's result with its identities masked as docs/cards.md says (the fields already are)."""
    card_format = result["format"]
    identity = result["identity"]
    return result | {
        "identity": mask_identity(identity, card_format) if identity is not None else None,
        "identities": [mask_identity(i, card_format) for i in result["identities"]],
    }


def check_one(
    payload: bytes, settings: Settings, *, trust: TrustList | None, statuslist: StatusList | None,
    now: datetime, lang: str,
) -> dict[str, Any]:  # fmt: skip
    """One payload's result as a JSON-ready dict, identities in full; each payload is decided alone."""
    # A fresh policy per payload: a check is not a visit, so no repeats, toggles or occupancy carry over.
    policy = Policy(settings.policy, settings.destination, statuslist=statuslist)
    item = parse_card(payload, trust=trust, now=now)
    decision = policy.decide(item, now=now, payload=payload)
    return {
        "format": decision.format,
        "identity": decision.identity,
        "identities": list(decision.identities),
        "fields": item.masked_fields() if isinstance(item, Card) else {},
        "verdict": decision.verdict,
        "reason": str(decision.reason),
        "message": decision.message("en" if lang == "en" else "vi"),
        "status": decision.status,
        "detail": item.detail if isinstance(item, Rejection) else "",
    }


def _payloads(arguments: list[str]) -> Iterator[bytes]:
    if arguments:
        # os.fsencode undoes the surrogateescape decoding of argv: the bytes as typed, UTF-8 or not.
        yield from (os.fsencode(text) for text in arguments)
        return
    for line in sys.stdin.buffer:
        line = line.rstrip(b"\r\n")
        if line:
            yield line


def _trust(path: Path | None) -> TrustList | None:
    return TrustList.load(path) if path is not None else None


def _statuslist(path: Path | None, keys: Path | None) -> StatusList | None:
    if path is None:
        return None
    if keys is None:
        raise StatusListError(
            "--statuslist needs the authority's public keys: --keys PEM or policy.authority_keys"
        )
    try:
        token = path.read_bytes()
    except OSError as e:
        raise StatusListError(f"cannot read status list {path}: {e.strerror}") from e
    return verify_token(token, load_public_keys(keys))


# ---------------------------------------------------------------- make


def _add_png(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--png", type=Path, help="also write the QR code as a PNG image")


def _register_make_national(kinds: argparse._SubParsersAction) -> None:
    national = kinds.add_parser("national", help="a national personal QR (PC-Covid, Hue-S, printed card)")
    national.add_argument("--id-number", default="001093029317", help="SoGiayTo (may start with *)")
    national.add_argument("--name", default="NGUYEN VAN A", help="upper case, without diacritics")
    national.add_argument("--birth-date", default="1987-01-18", help="YYYY-MM-DD (day/month may be **)")
    national.add_argument("--qid", default="162979388586171100", help="QID of the national QR platform")
    _add_png(national)
    national.set_defaults(func=make_national)


def _register_make_cccd(kinds: argparse._SubParsersAction) -> None:
    cccd = kinds.add_parser("cccd", help="a citizen identity card (CCCD) QR")
    cccd.add_argument("--name", default="Nguyễn Văn An", help="name with diacritics")
    cccd.add_argument("--birth-date", type=date.fromisoformat, default=date(1993, 1, 18), help="YYYY-MM-DD")
    cccd.add_argument("--gender", choices=["Nam", "Nữ"], default="Nam")
    cccd.add_argument("--id-number", help="12 digits (default: one agreeing with birth date and gender)")
    _add_png(cccd)
    cccd.set_defaults(func=make_cccd)


def _register_make_dcc(kinds: argparse._SubParsersAction) -> None:
    dcc = kinds.add_parser("dcc", help="a vaccine passport (HC1:) signed with a document-signer key")
    dcc.add_argument(
        "--key", type=Path, required=True, help="signer private key (from `card make dcc-signer`)"
    )
    dcc.add_argument("--cert", type=Path, required=True, help="signer certificate (PEM)")
    dcc.add_argument("--type", choices=sorted(SIGNER_TYPES), default="vaccination", dest="cert_type")
    dcc.add_argument("--dose", type=int, default=2, help="vaccination: dose number")
    dcc.add_argument("--of", type=int, default=2, help="vaccination: doses in the series")
    dcc.add_argument(
        "--date", type=_iso_moment, help="vaccination day, test sample time or first positive test"
    )
    dcc.add_argument("--positive", action="store_true", help="test: the virus was detected")
    dcc.add_argument("--issued-at", type=aware_time, help="issue time, ISO 8601 with zone (default: now)")
    dcc.add_argument(
        "--valid-days", type=positive_int, default=365, help="the passport expires this many days after issue"
    )
    dcc.add_argument("--uvci", help="certificate identifier (default: a random URN:UVCI:01:VN:...)")
    _add_png(dcc)
    dcc.set_defaults(func=make_dcc)


def _register_make_signer(kinds: argparse._SubParsersAction) -> None:
    signer = kinds.add_parser(
        "dcc-signer", help="a test document signer: key (0600) and self-signed certificate"
    )
    signer.add_argument("--out-key", type=Path, required=True, help="private key file to write")
    signer.add_argument("--out-cert", type=Path, required=True, help="certificate file to write (trust list)")
    signer.add_argument("--alg", choices=["ES256", "PS256", "EdDSA"], default="ES256")
    signer.add_argument(
        "--valid-from", type=aware_time, help="certificate start, ISO 8601 with zone (default: now)"
    )
    signer.add_argument(
        "--days", type=positive_int, default=730, help="certificate validity from its start, days"
    )
    signer.add_argument("--types", nargs="+", choices=sorted(SIGNER_TYPES), help="limit to these types")
    signer.set_defaults(func=make_signer)


def _iso_moment(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO 8601 date or time") from e
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _emit(payload: str, png: Path | None) -> int:
    print(payload)
    if png is not None:
        try:
            cardmaker.qr_png(payload, png)
        except OSError as e:
            raise ImageError(f"cannot write the QR image {png}: {e.strerror}") from e
        print(f"QR image written to {png}", file=sys.stderr)
    return 0


def make_national(args: argparse.Namespace) -> int:
    """Print a national personal QR payload."""
    payload = cardmaker.national_payload(
        id_number=args.id_number, name=args.name, birth_date=args.birth_date, qid=args.qid
    )
    return _emit(payload, args.png)


def make_cccd(args: argparse.Namespace) -> int:
    """Print a CCCD QR payload."""
    payload = cardmaker.cccd_payload(
        name=args.name, birth_date=args.birth_date, gender=args.gender, id_number=args.id_number
    )
    return _emit(payload, args.png)


def make_dcc(args: argparse.Namespace) -> int:
    """Print a signed vaccine passport."""
    signer = cardmaker.load_signer(args.key, args.cert)
    now = args.issued_at or datetime.now(UTC)
    certificate = _dcc_certificate(args, now)
    payload = cardmaker.dcc_payload(
        certificate, signer=signer, issued_at=now, expires_at=now + timedelta(days=args.valid_days)
    )
    return _emit(payload, args.png)


def _dcc_certificate(args: argparse.Namespace, now: datetime) -> dict[str, Any]:
    when = args.date or now
    if args.cert_type == "test":
        return cardmaker.dcc_test_result(sampled_at=when, positive=args.positive, uvci=args.uvci)
    if args.cert_type == "recovery":
        first = when.date()
        valid_from, valid_until = first + timedelta(days=11), first + timedelta(days=180)
        return cardmaker.dcc_recovery(
            first_positive=first, valid_from=valid_from, valid_until=valid_until, uvci=args.uvci
        )
    return cardmaker.dcc_vaccination(dose=args.dose, of=args.of, on=when.date(), uvci=args.uvci)


def make_signer(args: argparse.Namespace) -> int:
    """Write a test document signer's key and certificate."""
    start = args.valid_from or datetime.now(UTC) - timedelta(days=1)
    usage = [SIGNER_TYPES[t] for t in args.types] if args.types else None
    signer = cardmaker.make_dcc_signer(
        args.alg, not_before=start, not_after=start + timedelta(days=args.days), key_usage=usage
    )
    try:
        cardmaker.save_signer(signer, args.out_key, args.out_cert)
    except OSError as e:
        raise SignerKeyError(f"cannot write the signer files: {e.strerror} ({e.filename})") from e
    kid = base64.b64encode(signer.kid).decode()
    print(f"signer kid {kid}: key {args.out_key}, certificate {args.out_cert} (add it to the trust list)")
    return 0
