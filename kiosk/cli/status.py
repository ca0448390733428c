"""`kiosk status`: what a technician asks of a kiosk, without reading its spool by hand.

The backlog (events the broker, and central, have not taken yet), the newest event
central has acknowledged, when that ack arrived and the running loop's fault (from the
file the daemon keeps, `kiosk.runstatus`, with its age), the trust material in force
with its versions, and the faults on record. Run it as the kiosk user (`sudo -u kiosk kiosk status`): it reads
the device key to open the spool.
"""

from __future__ import annotations

import argparse
import json
import time
from datetime import datetime
from typing import Any

from kiosk import keys
from kiosk.cli.common import add_config_argument, settings_from
from kiosk.config import Settings
from kiosk.runstatus import REFRESH_S, RunStatus, read_run_status, run_status_path
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


def status_of(settings: Settings, *, now_ms: int | None = None) -> dict[str, Any]:
    """The kiosk's status as plain data."""
    trust = [check(settings, None) for check in TRUST_CHECKS]
    spool = _spool_figures(settings)
    daemon = _daemon(settings, int(time.time() * 1000) if now_ms is None else now_ms)
    faults = [*spool.pop("alarms", []), *(f"{r.name}: {r.detail}" for r in trust if r.status == "fail"),
              *daemon.pop("faults")]  # fmt: skip
    return {
        "device": settings.device.id,
        "mode": settings.device.mode,
        "destination": settings.destination.id,
        **spool,
        "daemon": daemon,
        "trust": {r.name: {"status": r.status, "detail": r.detail} for r in trust},
        "faults": faults,
    }


def _daemon(settings: Settings, now_ms: int) -> dict[str, Any]:
    """What the running daemon last wrote (kiosk.runstatus): its fault, central's last ack, how old."""
    found = read_run_status(run_status_path(settings.paths.state_dir))
    if not isinstance(found, RunStatus):
        return {"known": False, "detail": found, "faults": []}
    age_s = max(0, now_ms - found.written_ms) // 1000
    # The daemon rewrites the file every REFRESH_S: much older means it is not running, or stuck.
    stale = age_s > 3 * REFRESH_S
    faults = [f"daemon: its status is {_age(age_s)} old: is it running? (systemctl status kiosk)"] * stale
    if found.fault and not stale:
        faults.append(f"running loop: {found.fault}")
    return {
        "known": True, "written": _local(found.written_ms), "age_s": age_s, "stale": stale,
        "fault": found.fault,
        "ack_arrived": None if found.last_ack_ms is None else _local(found.last_ack_ms),
        "ack_age_s": None if found.last_ack_ms is None else max(0, now_ms - found.last_ack_ms) // 1000,
        "faults": faults,
    }  # fmt: skip


def _age(seconds: int) -> str:
    if seconds < 120:
        return f"{seconds} s"
    return f"{seconds // 60} min" if seconds < 7200 else f"{seconds // 3600} h"


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
    lines.append("ack arrived  " + _ack_arrived(report["daemon"]))
    lines.append("daemon       " + _daemon_line(report["daemon"]))
    lines += [
        f"{name:<12} {item['status'].upper():<4}  {item['detail']}" for name, item in report["trust"].items()
    ]
    lines += [f"fault        {fault}" for fault in report["faults"]] or ["fault        none"]
    return "\n".join(lines)


def _ack_arrived(daemon: dict[str, Any]) -> str:
    if not daemon["known"]:
        return "not known (the daemon's status file is missing)"
    if daemon["ack_arrived"] is None:
        return "none since the daemon started"
    return f"{daemon['ack_arrived']} ({_age(daemon['ack_age_s'])} ago)"


def _daemon_line(daemon: dict[str, Any]) -> str:
    if not daemon["known"]:
        return str(daemon["detail"])
    stale = ", NOT UPDATED: is the daemon running?" if daemon["stale"] else ""
    return f"status written {_age(daemon['age_s'])} ago{stale}; fault in force: {daemon['fault'] or 'none'}"
