"""`kiosk demo`: the whole kiosk on a laptop, on a scene it makes itself."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `demo` command."""
    demo = subparsers.add_parser("demo", help="run the whole kiosk on a generated camera scene")
    demo.add_argument("--out", type=Path, default=Path("demo-out"), help="folder for state, screens and logs")
    demo.add_argument("--no-broker", action="store_true", help="do not start a local mosquitto (spool only)")
    demo.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the demo; exit 1 if a person did not get the expected decision."""
    from kiosk.demo import run_demo  # imported here so `kiosk --help` stays quick

    return run_demo(args.out, use_broker=not args.no_broker)
