"""argparse value types shared by the device's and central's commands."""

from __future__ import annotations

import argparse
import re
from datetime import datetime

# Only ASCII digits: int() would also take Arabic-Indic or full-width ones.
_WHOLE_NUMBER = re.compile(r"[0-9]{1,18}")


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
    """An argparse type: a whole number of at least 1, in ASCII digits."""
    if not _WHOLE_NUMBER.fullmatch(text):
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number")
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be at least 1")
    return value
