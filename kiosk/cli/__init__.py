"""The `kiosk` command line: one module per command group under kiosk.cli."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from kiosk import __version__
from kiosk.errors import ConfigError, KioskError

# Each module has `register(subparsers)`; its parsers set `func(args) -> int`. Keyed by the
# command each registers, so that `kiosk run` imports only its own module: the others pull
# in libraries (the card maker's ASN.1 and QR writers, the selftest, the screen samples)
# that would stay resident in the kiosk for nothing.
COMMANDS: dict[str, str] = {
    "config": "kiosk.cli.config_cmd",
    "provision": "kiosk.cli.provision",
    "selftest": "kiosk.cli.selftest",
    "status": "kiosk.cli.status",
    "scan-image": "kiosk.cli.scan",
    "statuslist": "kiosk.cli.statuslist",
    "inspector": "kiosk.cli.inspector",
    "card": "kiosk.cli.card",
    "screenshot": "kiosk.cli.screenshot",
    "run": "kiosk.cli.run",
    "demo": "kiosk.cli.demo",
}
COMMAND_MODULES: tuple[str, ...] = tuple(COMMANDS.values())


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The argument parser: only the named command's group when `argv` names one, else all."""
    parser = argparse.ArgumentParser(prog="kiosk", description="QR entrance kiosk.")
    parser.add_argument("--version", action="version", version=f"kiosk {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    named = next((arg for arg in argv or () if not arg.startswith("-")), None)
    for name in [COMMANDS[named]] if named in COMMANDS else COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; errors become a message on stderr and exit status 2."""
    args = build_parser(sys.argv[1:] if argv is None else argv).parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        return int(args.func(args))
    except ConfigError as e:
        print(f"kiosk: {e}", file=sys.stderr)
        for problem in e.problems:
            print(f"  {problem}", file=sys.stderr)
        return 2
    except KioskError as e:
        print(f"kiosk: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
