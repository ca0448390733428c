"""The venue registry imported from CSV: each venue's name, district, ward, peer group and hours.

The file has a header row naming its columns: `id`, `name`, `district`, `ward` are
required; `group` and `opening_hours` are optional. It is read as UTF-8 (a byte-order
mark is allowed). Every row is checked before anything is stored, and every bad row is
reported with its line number, so one run shows all that needs fixing.
"""

from __future__ import annotations

import csv
import io

from pydantic import ValidationError

from kiosk.central.reports import DestinationInfo
from kiosk.central.store import VenueRow
from kiosk.errors import ConfigError

REQUIRED = ("id", "name", "district", "ward")
OPTIONAL = ("group", "opening_hours")
MAX_BYTES = 64 * 1024 * 1024  # a country's registry is a few MB
MAX_FIELD = 1024
MAX_PROBLEMS = 50  # beyond this, the file is probably not a venue registry at all


def parse_csv(data: bytes, *, source: str = "venues file") -> list[VenueRow]:
    """Every row as a venue; ConfigError listing each bad row (line: column: problem) otherwise."""
    text = _decode(data, source)
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = [h.strip().lower() for h in next(reader, [])]
    except csv.Error as e:
        raise ConfigError(f"{source}: line 1: {e}") from e
    _check_header(header, source)
    venues: list[VenueRow] = []
    problems: list[str] = []
    seen: dict[str, int] = {}
    while len(problems) < MAX_PROBLEMS:
        try:
            cells = next(reader, None)
        except csv.Error as e:  # a NUL, an unclosed quote, a field over the size limit
            problems.append(f"line {reader.line_num}: {e}")
            break
        if cells is None:
            break
        if not any(c.strip() for c in cells):
            continue  # blank lines are harmless
        venue, problem = _row(header, cells, reader.line_num, seen)
        if problem:
            problems.append(problem)
        elif venue is not None:
            venues.append(venue)
    if problems:
        raise ConfigError(f"{len(problems)} problem(s) in {source}; nothing imported", problems)
    return venues


def _decode(data: bytes, source: str) -> str:
    if len(data) > MAX_BYTES:
        raise ConfigError(f"{source}: larger than {MAX_BYTES // 1024 // 1024} MB; split it")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise ConfigError(
            f"{source}: not UTF-8 (byte {e.start}); save it as 'CSV UTF-8' from the spreadsheet"
        ) from e


def _check_header(header: list[str], source: str) -> None:
    missing = [c for c in REQUIRED if c not in header]
    unknown = [c for c in header if c not in REQUIRED + OPTIONAL]
    doubled = sorted({c for c in header if header.count(c) > 1})
    problems = [f"missing column {c!r}" for c in missing] + [f"unknown column {c!r}" for c in unknown]
    problems += [f"column {c!r} appears twice" for c in doubled]
    if problems:
        raise ConfigError(
            f"{source}: bad header (columns: {', '.join(REQUIRED)}[, {', '.join(OPTIONAL)}])", problems
        )


def _row(header: list[str], cells: list[str], line: int, seen: dict[str, int]) -> tuple[VenueRow | None, str]:
    if len(cells) != len(header):
        return None, f"line {line}: {len(cells)} fields, the header has {len(header)}"
    values = {k: v.strip() for k, v in zip(header, cells, strict=True)}
    if any(len(v) > MAX_FIELD for v in values.values()):
        return None, f"line {line}: a field is longer than {MAX_FIELD} characters"
    if not values.get("opening_hours"):
        values.pop("opening_hours", None)
    try:
        info = DestinationInfo.model_validate(values)
    except ValidationError as e:
        return None, f"line {line}: " + "; ".join(
            f"{'.'.join(map(str, x['loc']))}: {x['msg']}" for x in e.errors()
        )
    bad = [k for k in ("name", "district", "ward") if _unsafe(getattr(info, k))]
    if bad:
        return None, f"line {line}: {bad[0]}: control characters or a leading = + - @ (a spreadsheet formula)"
    if not info.district or not info.ward:
        return None, f"line {line}: district and ward must not be empty"
    if info.id in seen:
        return None, f"line {line}: id {info.id!r} already on line {seen[info.id]}"
    seen[info.id] = line
    row = VenueRow(info.id, info.name, info.district, info.ward, info.group, info.opening_hours)
    return row, ""


def _unsafe(text: str) -> bool:
    # A leading formula character makes a spreadsheet run the cell when the report's CSV is opened.
    return text[:1] in ("=", "+", "-", "@") or any(ord(c) < 32 or 0x7F <= ord(c) < 0xA0 for c in text)
