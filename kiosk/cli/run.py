"""`kiosk run`: the daemon (what the systemd unit starts)."""

from __future__ import annotations

import argparse
import logging
import os
import sys

from kiosk import __version__
from kiosk.cli.common import add_config_argument, settings_from
from kiosk.config import find_config

log = logging.getLogger("kiosk")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `run` command."""
    run = subparsers.add_parser("run", help="run the kiosk (camera, decisions, feedback, uplink)")
    add_config_argument(run)
    run.set_defaults(func=run_kiosk)


def run_kiosk(args: argparse.Namespace) -> int:
    """Assemble the kiosk from its configuration and run the loop until SIGTERM/SIGINT."""
    from kiosk.app import assemble  # imported here so `kiosk --help` stays quick

    settings = settings_from(args)
    configure_logging(verbose=args.verbose)
    log.info("kiosk %s starting: device %s at %s", __version__, settings.device.id, settings.destination.id)
    # A replay that ends leaves the kiosk idle, as a camera with nothing in view would.
    with assemble(settings, end_on_replay_end=False, config_path=find_config(args.config)) as kiosk:
        kiosk.install_signal_handlers()
        code = kiosk.run()
    log.info("kiosk stopped cleanly")
    return code


def configure_logging(*, verbose: bool) -> None:
    """One line per record; journald adds its own timestamps, a terminal gets ours."""
    under_journald = bool(os.environ.get("JOURNAL_STREAM"))
    fmt = (
        "%(levelname)s %(name)s: %(message)s"
        if under_journald
        else "%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    root = logging.getLogger()
    for handler in root.handlers[:]:
        root.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(fmt))
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
