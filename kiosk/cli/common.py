"""Pieces shared by the command modules."""

from __future__ import annotations

import argparse
from datetime import datetime
from pathlib import Path

from kiosk.config import Settings, load_config


def add_config_argument(parser: argparse.ArgumentParser) -> None:
    """Add `--config PATH` (default: $KIOSK_CONFIG, /etc/kiosk/kiosk.toml, built-in)."""
    parser.add_argument(
        "--config",
        type=Path,
        default=None,
        help="config file (default: $KIOSK_CONFIG, else /etc/kiosk/kiosk.toml, else built-in defaults)",
    )


def settings_from(args: argparse.Namespace) -> Settings:
    """Load the configuration named by `--config`; raises ConfigError."""
    return load_config(getattr(args, "config", None))


def aware_time(text: str) -> datetime:
    """An argparse type: an ISO 8601 time that names its zone."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO 8601 time") from e
    if moment.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{text!r} needs a time zone, e.g. 2021-10-01T10:00:00+07:00")
    return moment


def positive_int(text: str) -> int:
    """An argparse type: a whole number of at least 1."""
    try:
        value = int(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from e
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be at least 1")
    return value
