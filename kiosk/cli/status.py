"""`kiosk status`: what a technician asks of a kiosk, without reading its spool by hand.

The backlog (events the broker, and central, have not taken yet), the newest event
central has acknowledged, the trust material in force with its versions, and the
faults on record. Run it as the kiosk user (`sudo -u kiosk kiosk status`): it reads
the device key to open the spool.
"""

from __future__ import annotations

import argparse
import json
from datetime import datetime
from typing import Any

from kiosk import keys
from kiosk.cli.common import add_config_argument, settings_from
from kiosk.config import Settings
from kiosk.sealing import open_sealer
from kiosk.spool import Spool
from kiosk.trustcheck import TRUST_CHECKS


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `status` command."""
    parser = subparsers.add_parser(
        "status", help="backlog, last ack from central, trust material and faults of this kiosk"
    )
    add_config_argument(parser)
    parser.add_argument("--json", action="store_true", help="print JSON for scripts")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Print the status; exit 1 when a fault is on record."""
    report = status_of(settings_from(args))
    print(json.dumps(report, indent=2) if args.json else as_text(report))
    return 1 if report["faults"] else 0


def status_of(settings: Settings) -> dict[str, Any]:
    """The kiosk's status as plain data."""
    trust = [check(settings, None) for check in TRUST_CHECKS]
    spool = _spool_figures(settings)
    faults = [*spool.pop("alarms", []), *(f"{r.name}: {r.detail}" for r in trust if r.status == "fail")]
    return {
        "device": settings.device.id,
        "mode": settings.device.mode,
        "destination": settings.destination.id,
        **spool,
        "trust": {r.name: {"status": r.status, "detail": r.detail} for r in trust},
        "faults": faults,
    }


def _spool_figures(settings: Settings) -> dict[str, Any]:
    path = settings.paths.spool_file
    if not path.exists():
        return {
            "spool": f"{path}: none yet (the kiosk has not run)",
            "unsent": 0,
            "unacked": 0,
            "last_ack": None,
        }
    key = keys.load_private_key(settings.paths.key_file)
    with Spool.from_settings(settings, signing_key=key, sealer=open_sealer(settings)) as spool:
        unsent, unacked = spool.backlog()
        acked = spool.last_acked()
        return {
            "spool": str(path),
            "unsent": unsent,
            "unacked": unacked,
            "last_ack": None if acked is None else {"seq": acked[0], "scanned": _local(acked[1])},
            "alarms": spool.alarms(),
        }


def _local(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000).astimezone().isoformat(timespec="seconds")


def as_text(report: dict[str, Any]) -> str:
    """The status for people."""
    ack = report["last_ack"]
    lines = [
        f"device       {report['device']} ({report['mode']}) at {report['destination']}",
        f"spool        {report['spool']}",
        f"backlog      {report['unsent']} not yet taken by the broker,"
        f" {report['unacked']} not yet stored by central",
        "last ack     " + (f"central has stored up to seq {ack['seq']} (scanned {ack['scanned']})" if ack
                           else "none from central yet"),
    ]  # fmt: skip
    lines += [
        f"{name:<12} {item['status'].upper():<4}  {item['detail']}" for name, item in report["trust"].items()
    ]
    lines += [f"fault        {fault}" for fault in report["faults"]] or ["fault        none"]
    return "\n".join(lines)
