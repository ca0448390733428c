"""Pieces shared by the command modules."""

from __future__ import annotations

import argparse
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
