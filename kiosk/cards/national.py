"""The national personal QR (Decision 1405/QĐ-BTTTT): PC-Covid, Hue-S, printed cards.

`SoGiayTo|HoTen|NgaySinh|LoaiDinhDanh|QID|EXT`, EXT = `proxyQID<gender<insurance<phone<signature`
(trailing sub-fields may be left out, any may be empty). Unsigned, so validation is
about shape: a code that does not have exactly this shape is refused.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime

from kiosk.cards.base import Card, Invalid
from kiosk.cards.masking import mask_id, mask_name
from kiosk.reasons import Reason
from kiosk.statuslist import VIETNAM

FIELD_COUNT = 6
EXT_FIELD_COUNT = 5
_ID = re.compile(r"\**[A-Z0-9]*")
_NAME = re.compile(r"[A-Z]+(?: [A-Z]+)*")
_BIRTH = re.compile(r"([0-9]{4})-([0-9]{2}|\*\*)-([0-9]{2}|\*\*)")
_QID = re.compile(r"(?:[0-9]{6,20})?")
_GENDER = re.compile(r"[012]?")
_INSURANCE = re.compile(r"[A-Z0-9]{0,15}")
_PHONE = re.compile(r"(?:\+?[0-9]{8,15})?")
_KIND = re.compile(r"[01]")
_SIGNATURE = re.compile(r"[A-Za-z0-9+/=_.-]{0,512}")
MAX_NAME = 80


@dataclass(frozen=True, kw_only=True)
class NationalCard(Card):
    """A national personal QR: the holder's id number, name, birth date and platform ids."""

    format = "national"
    id_number: str
    name: str
    birth_date: str
    birth_year: int
    declared_by_proxy: bool
    qid: str
    proxy_qid: str = ""
    gender: int | None = None
    insurance_number: str = ""
    phone: str = ""
    signature: str = ""

    @property
    def identity(self) -> str | None:
        """The QID, else the id number when it is not masked."""
        if self.qid:
            return self.qid
        if self.id_number and "*" not in self.id_number:
            return self.id_number
        return None

    @property
    def identities(self) -> tuple[str, ...]:
        """The QID and the id number when it is not masked: one person, whichever is listed."""
        unmasked = self.id_number if "*" not in self.id_number else ""
        return tuple(dict.fromkeys(i for i in (self.qid, unmasked) if i))

    @property
    def masked_name(self) -> str:
        """The name masked for the screen."""
        return mask_name(self.name)

    def masked_fields(self) -> dict[str, str]:
        """Fields for display with every id number masked; no phone."""
        return {
            "format": self.format,
            "name": self.masked_name,
            "id_number": mask_id(self.id_number),
            "birth_year": str(self.birth_year),
            "declared_by_proxy": "yes" if self.declared_by_proxy else "no",
            "qid": mask_id(self.qid),
            "gender": "" if self.gender is None else str(self.gender),
        }


def _need(pattern: re.Pattern[str], value: str, field: str) -> str:
    if not pattern.fullmatch(value):
        raise Invalid(Reason.NATIONAL_INVALID, f"bad {field}")
    return value


def _birth(value: str, today: date) -> tuple[str, int]:
    match = _BIRTH.fullmatch(value)
    if not match:
        raise Invalid(Reason.NATIONAL_INVALID, "bad birth date")
    year, month, day = match.groups()
    if month == "**" and day != "**":
        raise Invalid(Reason.NATIONAL_INVALID, "birth day given without its month")
    try:
        # A masked day or month is checked as the first of its period.
        born = date(int(year), 1 if month == "**" else int(month), 1 if day == "**" else int(day))
    except ValueError as e:
        raise Invalid(Reason.NATIONAL_INVALID, "impossible birth date") from e
    if born.year < 1900 or born > today:
        raise Invalid(Reason.NATIONAL_INVALID, "birth date out of range")
    return value, born.year


def _ext(value: str) -> dict[str, str]:
    parts = value.split("<") if value else []
    if len(parts) > EXT_FIELD_COUNT:
        raise Invalid(Reason.NATIONAL_INVALID, "too many EXT sub-fields")
    proxy, gender, insurance, phone, signature = parts + [""] * (EXT_FIELD_COUNT - len(parts))
    return {
        "proxy_qid": _need(_QID, proxy, "proxy QID"),
        "gender": _need(_GENDER, gender, "gender"),
        "insurance_number": _need(_INSURANCE, insurance, "health-insurance number"),
        "phone": _need(_PHONE, phone, "phone"),
        "signature": _need(_SIGNATURE, signature, "signature"),
    }


def parse_national(text: str, *, now: datetime) -> NationalCard:
    """Parse a national personal QR; raises Invalid(NATIONAL_INVALID) naming the bad field."""
    fields = text.split("|")
    if len(fields) != FIELD_COUNT:
        raise Invalid(Reason.NATIONAL_INVALID, f"{len(fields)} fields, expected {FIELD_COUNT}")
    id_number, name, birth, kind, qid, ext_text = fields
    if id_number and not 6 <= len(id_number) <= 20:
        raise Invalid(Reason.NATIONAL_INVALID, "bad id number length")
    if len(name) > MAX_NAME:
        raise Invalid(Reason.NATIONAL_INVALID, "name too long")
    birth_date, birth_year = _birth(birth, now.astimezone(VIETNAM).date())
    ext = _ext(ext_text)
    return NationalCard(
        id_number=_need(_ID, id_number, "id number"),
        name=_need(_NAME, name, "name"),
        birth_date=birth_date,
        birth_year=birth_year,
        declared_by_proxy=_need(_KIND, kind, "LoaiDinhDanh") == "1",
        qid=_need(_QID, qid, "QID"),
        proxy_qid=ext["proxy_qid"],
        gender=int(ext["gender"]) if ext["gender"] else None,
        insurance_number=ext["insurance_number"],
        phone=ext["phone"],
        signature=ext["signature"],
    )
