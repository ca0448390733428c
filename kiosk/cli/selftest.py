"""`kiosk selftest`: check the camera, decoder, pins, keys, broker, clock and disk."""

from __future__ import annotations

import argparse

from kiosk.cli.common import add_config_argument
from kiosk.config import find_config
from kiosk.selftest import Probes, run_selftest


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `selftest` command."""
    parser = subparsers.add_parser(
        "selftest",
        help="check that this kiosk is ready: hardware, keys, broker, clock, disk",
        description="Run every check and print a table (or JSON); exit 1 if any check fails.",
    )
    add_config_argument(parser)
    parser.add_argument("--json", action="store_true", help="print the report as JSON for scripts")
    parser.add_argument(
        "--hold", type=float, default=1.5, metavar="SECONDS", help="how long each test screen stays up"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Print the report; 0 when every check passed (warnings allowed), else 1."""
    report = run_selftest(find_config(args.config), probes=Probes(screen_hold_s=max(0.0, args.hold)))
    print(report.to_json() if args.json else report.table())
    return 0 if report.ok else 1
