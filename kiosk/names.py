"""Names reserved for the authority's own services, which no device may take.

The list lives in one file, `kiosk/assets/reserved-names.txt` (shell-style
patterns, one a line), read here and by `provisioning/make-test-ca.sh`: a device
called `central` could log in as central's broker user and read every ack.
"""

from __future__ import annotations

from fnmatch import fnmatchcase
from functools import cache
from pathlib import Path

RESERVED_NAMES_FILE = Path(__file__).with_name("assets") / "reserved-names.txt"


@cache
def reserved_patterns() -> tuple[str, ...]:
    """The reserved name patterns, in file order."""
    lines = RESERVED_NAMES_FILE.read_text(encoding="utf-8").splitlines()
    return tuple(line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#"))


def reserved_pattern(name: str) -> str | None:
    """The pattern that reserves `name` (compared in lower case), or None when it is free."""
    folded = name.lower()
    return next((p for p in reserved_patterns() if fnmatchcase(folded, p)), None)


def check_not_reserved(name: str, what: str = "device id") -> str:
    """`name` unchanged, or ValueError saying which reserved pattern it matches."""
    pattern = reserved_pattern(name)
    if pattern is not None:
        raise ValueError(
            f"{what} {name!r} is reserved for the authority's services (matches {pattern!r}); choose another"
        )
    return name
