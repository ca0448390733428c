"""`kiosk selftest`: check the camera, decoder, pins, keys, broker, clock and disk."""

from __future__ import annotations

import argparse

from kiosk.cli.common import add_config_argument, settings_from
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
    parser.add_argument(
        "--interactive",
        action="store_true",
        help="on site: light, beep, pulse and show each part in turn and ask whether it worked",
    )
    parser.add_argument(
        "--wait",
        type=float,
        default=20.0,
        metavar="SECONDS",
        help="--interactive: how long to wait for the button press and for a card",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Print the report; 0 when every check passed (warnings allowed), else 1."""
    if args.interactive:
        return run_interactive(args)
    report = run_selftest(find_config(args.config), probes=Probes(screen_hold_s=max(0.0, args.hold)))
    print(report.to_json() if args.json else report.table())
    return 0 if report.ok else 1


def run_interactive(args: argparse.Namespace) -> int:
    """The technician's on-site check: print and save the results; 0 when no step failed."""
    from kiosk.onsite_check import OnSite, run_onsite_check, save_results
    from kiosk.selftest import Report

    settings = settings_from(args)
    print("On-site check: answer y or n after each step.")
    wait = max(0.1, args.wait)
    report = Report(tuple(run_onsite_check(settings, OnSite(button_timeout_s=wait, card_timeout_s=wait))))
    print(report.to_json() if args.json else "\n" + report.table())
    print(f"saved to {save_results(settings, report.results)}")
    return 0 if report.ok else 1
