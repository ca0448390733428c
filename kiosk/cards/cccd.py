"""The citizen identity card (CCCD) QR: unsigned UTF-8 text printed on the chip card.

`id|old id|name|DDMMYYYY birth|Nam/Nữ|address|DDMMYYYY issue` (7 fields), or the
known variant without the old-id field (6 fields). The 12-digit id encodes the
province, the century and gender, and the birth year; an id that disagrees
with the printed birth date or gender is refused as inconsistent.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import date, datetime
from typing import Literal, cast

from kiosk.cards.base import Card, Invalid
from kiosk.cards.masking import mask_id, mask_name
from kiosk.reasons import Reason
from kiosk.statuslist import VIETNAM

Gender = Literal["Nam", "Nữ"]
GENDERS: tuple[Gender, ...] = ("Nam", "Nữ")
# Province and city codes of Circular 07/2016/TT-BCA, the first three digits of an id.
_PROVINCES = (
    "001 002 004 006 008 010 011 012 014 015 017 019 020 022 024 025 026 027 030 031 033 034 "
    "035 036 037 038 040 042 044 045 046 048 049 051 052 054 056 058 060 062 064 066 067 068 "
    "070 072 074 075 077 079 080 082 083 084 086 087 089 091 092 093 094 095 096"
)
PROVINCE_CODES = frozenset(_PROVINCES.split())
# The fourth digit: century of birth and gender; even digits are men, odd digits women.
CENTURY_BY_DIGIT = {0: 1900, 1: 1900, 2: 2000, 3: 2000, 4: 2100, 5: 2100, 6: 2200, 7: 2200, 8: 1800, 9: 1800}
_ID = re.compile(r"[0-9]{12}")
_OLD_ID = re.compile(r"(?:[0-9]{9})?")
_DATE = re.compile(r"([0-9]{2})([0-9]{2})([0-9]{4})")
_WORD = r"[^\W\d_]+(?:['-][^\W\d_]+)*"
_NAME = re.compile(rf"{_WORD}(?: {_WORD})*")
MAX_NAME = 100
MAX_ADDRESS = 250


@dataclass(frozen=True, kw_only=True)
class CccdCard(Card):
    """A citizen identity card QR: 12-digit id, old id, name, birth date, gender, address, issue date."""

    format = "cccd"
    id_number: str
    old_id_number: str
    name: str
    birth_date: date
    gender: Gender
    address: str
    issue_date: date

    @property
    def identity(self) -> str:
        """The 12-digit id number."""
        return self.id_number

    @property
    def identities(self) -> tuple[str, ...]:
        """The 12-digit id number, and the old 9-digit one when the card gives it."""
        return (self.id_number, self.old_id_number) if self.old_id_number else (self.id_number,)

    @property
    def masked_name(self) -> str:
        """The name masked for the screen."""
        return mask_name(self.name)

    def masked_fields(self) -> dict[str, str]:
        """Fields for display with id numbers masked; no address."""
        return {
            "format": self.format,
            "name": self.masked_name,
            "id_number": mask_id(self.id_number),
            "old_id_number": mask_id(self.old_id_number),
            "birth_year": str(self.birth_date.year),
            "gender": self.gender,
            "issue_date": self.issue_date.isoformat(),
        }


def id_digits(province: str, birth_date: date, gender: Gender) -> str:
    """The first six digits of an id: province, century/gender digit, last two digits of the year."""
    century = birth_date.year // 100 * 100
    digit = next(d for d, c in CENTURY_BY_DIGIT.items() if c == century and d % 2 == (gender == "Nữ"))
    return f"{province}{digit}{birth_date.year % 100:02d}"


def _invalid(detail: str) -> Invalid:
    return Invalid(Reason.CCCD_INVALID, detail)


def _date(value: str, field: str) -> date:
    match = _DATE.fullmatch(value)
    if not match:
        raise _invalid(f"bad {field}")
    day, month, year = (int(g) for g in match.groups())
    try:
        return date(year, month, day)
    except ValueError as e:
        raise _invalid(f"impossible {field}") from e


def _check_consistent(id_number: str, birth: date, gender: Gender) -> None:
    digit = int(id_number[3])
    if CENTURY_BY_DIGIT[digit] != birth.year // 100 * 100:
        raise Invalid(Reason.CCCD_INCONSISTENT, "century digit disagrees with the birth date")
    if (digit % 2 == 1) != (gender == "Nữ"):
        raise Invalid(Reason.CCCD_INCONSISTENT, "gender digit disagrees with the gender field")
    if id_number[4:6] != f"{birth.year % 100:02d}":
        raise Invalid(Reason.CCCD_INCONSISTENT, "birth-year digits disagree with the birth date")


def _fields(text: str) -> list[str]:
    fields = text.split("|")
    if len(fields) == 6:  # the variant without the old-id field
        fields.insert(1, "")
    if len(fields) != 7:
        raise _invalid(f"{len(fields)} fields, expected 7 (or 6)")
    return fields


def _text_field(pattern: re.Pattern[str] | None, value: str, limit: int, field: str) -> str:
    ok = bool(pattern.fullmatch(value)) if pattern else value.isprintable() and value.strip() == value
    if not value or len(value) > limit or not ok:
        raise _invalid(f"bad {field}")
    return value


def parse_cccd(text: str, *, now: datetime) -> CccdCard:
    """Parse a CCCD QR; raises Invalid(CCCD_INVALID or CCCD_INCONSISTENT) naming the problem."""
    id_number, old_id, name, birth, gender, address, issued = _fields(unicodedata.normalize("NFC", text))
    if not _ID.fullmatch(id_number) or id_number[:3] not in PROVINCE_CODES:
        raise _invalid("bad id number")
    if not _OLD_ID.fullmatch(old_id):
        raise _invalid("bad old id number")
    if gender not in GENDERS:
        raise _invalid("bad gender")
    sex = cast(Gender, gender)
    birth_date, issue_date = _date(birth, "birth date"), _date(issued, "issue date")
    # Issue dates are days of the Vietnamese calendar: "today" begins at midnight there, not in UTC.
    if not birth_date <= issue_date <= now.astimezone(VIETNAM).date():
        raise _invalid("dates out of order")
    _check_consistent(id_number, birth_date, sex)
    return CccdCard(
        id_number=id_number,
        old_id_number=old_id,
        name=_text_field(_NAME, name, MAX_NAME, "name"),
        birth_date=birth_date,
        gender=sex,
        address=_text_field(None, address, MAX_ADDRESS, "address"),
        issue_date=issue_date,
    )
