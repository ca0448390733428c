"""The health certificate inside a vaccine passport (EU DCC schema 1.x), as frozen pydantic models.

Field names are readable; the CBOR keys of the specification are their aliases.
Types are strict (a number written as text is a schema violation), dates must be
ISO 8601 text, and exactly one of `v`, `t`, `r` must hold exactly one entry.
Unknown extra keys are ignored, so a later 1.x minor version still reads.
Free text (names, issuer, UVCI, codes) is at most 80 (codes 50) characters
and holds no control, format or line-separator characters: the UVCI becomes
the event's identity, and the text reaches the screen and the logs.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import date, datetime
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictInt,
    StrictStr,
    StringConstraints,
    model_validator,
)

TEST_NOT_DETECTED = "260415000"
TEST_DETECTED = "260373001"
_FULL_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
MAX_TEXT = 80
# Control, format, surrogate, private-use, line and paragraph separator characters.
_UNSAFE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Zl", "Zp"})


def is_plain_text(value: str, limit: int = MAX_TEXT) -> bool:
    """Whether `value` is 1 to `limit` characters with no control or format characters."""
    return 0 < len(value) <= limit and not any(unicodedata.category(c) in _UNSAFE_CATEGORIES for c in value)


def _plain(limit: int) -> AfterValidator:
    def check(value: str) -> str:
        if not is_plain_text(value, limit):
            raise ValueError(f"expected 1 to {limit} characters without control characters")
        return value

    return AfterValidator(check)


def _iso_date(value: object) -> object:
    if isinstance(value, str) and _FULL_DATE.fullmatch(value):
        return date.fromisoformat(value)
    raise ValueError("expected a YYYY-MM-DD date")


def _iso_datetime(value: object) -> object:
    if isinstance(value, str) and _FULL_DATE.match(value):
        parsed = datetime.fromisoformat(value)
        if parsed.tzinfo is not None:
            return parsed
    raise ValueError("expected an ISO 8601 date-time with a time zone")


def _aware(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("expected a time zone")
    return value


Text = Annotated[StrictStr, StringConstraints(min_length=1, max_length=MAX_TEXT), _plain(MAX_TEXT)]
Code = Annotated[StrictStr, StringConstraints(min_length=1, max_length=50), _plain(50)]
Country = Annotated[StrictStr, StringConstraints(pattern=r"^[A-Z]{1,10}$")]
Standardised = Annotated[StrictStr, StringConstraints(pattern=r"^[A-Z<]*$", max_length=80)]
IsoDate = Annotated[date, BeforeValidator(_iso_date)]
IsoDateTime = Annotated[datetime, BeforeValidator(_iso_datetime), AfterValidator(_aware)]
Dose = Annotated[StrictInt, Field(ge=1, le=9)]


class _Entry(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=False)


class Name(_Entry):
    """The holder's name: as written (`fn`, `gn`) and standardised ICAO 9303 (`fnt`, `gnt`)."""

    family: Text | None = Field(None, alias="fn")
    given: Text | None = Field(None, alias="gn")
    family_std: Standardised = Field(alias="fnt")
    given_std: Standardised | None = Field(None, alias="gnt")

    def display(self) -> str:
        """Family then given name, as written where given, else standardised."""
        family = self.family or self.family_std.replace("<", " ")
        given = self.given or (self.given_std or "").replace("<", " ")
        return " ".join(f"{family} {given}".split())


class Vaccination(_Entry):
    """One vaccination entry (`v`)."""

    target: Code = Field(alias="tg")
    vaccine: Code = Field(alias="vp")
    product: Code = Field(alias="mp")
    manufacturer: Code = Field(alias="ma")
    dose_number: Dose = Field(alias="dn")
    total_doses: Dose = Field(alias="sd")
    date: IsoDate = Field(alias="dt")
    country: Country = Field(alias="co")
    issuer: Text = Field(alias="is")
    uvci: Text = Field(alias="ci")

    @property
    def complete(self) -> bool:
        """Whether this dose completes (or goes beyond) the primary series."""
        return self.dose_number >= self.total_doses


class DiagnosticTest(_Entry):
    """One test entry (`t`)."""

    target: Code = Field(alias="tg")
    test_type: Code = Field(alias="tt")
    test_name: Text | None = Field(None, alias="nm")
    manufacturer: Code | None = Field(None, alias="ma")
    sample_time: IsoDateTime = Field(alias="sc")
    result: Literal["260415000", "260373001"] = Field(alias="tr")
    centre: Text | None = Field(None, alias="tc")
    country: Country = Field(alias="co")
    issuer: Text = Field(alias="is")
    uvci: Text = Field(alias="ci")

    @model_validator(mode="after")
    def _named(self) -> DiagnosticTest:
        if self.test_name is None and self.manufacturer is None:
            raise ValueError("a test needs its name (nm) or its device (ma)")
        return self

    @property
    def positive(self) -> bool:
        """Whether the virus was detected."""
        return self.result == TEST_DETECTED


class Recovery(_Entry):
    """One recovery entry (`r`)."""

    target: Code = Field(alias="tg")
    first_positive: IsoDate = Field(alias="fr")
    country: Country = Field(alias="co")
    issuer: Text = Field(alias="is")
    valid_from: IsoDate = Field(alias="df")
    valid_until: IsoDate = Field(alias="du")
    uvci: Text = Field(alias="ci")

    @model_validator(mode="after")
    def _ordered(self) -> Recovery:
        if not self.first_positive <= self.valid_from <= self.valid_until:
            raise ValueError("recovery dates out of order (fr <= df <= du)")
        return self


class HealthCertificate(_Entry):
    """The certificate: version, name, birth date and exactly one v, t or r entry."""

    version: Annotated[StrictStr, StringConstraints(pattern=r"^1\.\d+\.\d+$")] = Field(alias="ver")
    name: Name = Field(alias="nam")
    birth_date: Annotated[StrictStr, StringConstraints(pattern=r"^(\d{4}(-\d{2}){0,2})?$")] = Field(
        alias="dob"
    )
    vaccinations: tuple[Vaccination] | None = Field(None, alias="v")
    tests: tuple[DiagnosticTest] | None = Field(None, alias="t")
    recoveries: tuple[Recovery] | None = Field(None, alias="r")

    @model_validator(mode="after")
    def _one_kind(self) -> HealthCertificate:
        present = [k for k in (self.vaccinations, self.tests, self.recoveries) if k is not None]
        if len(present) != 1:
            raise ValueError("exactly one of v, t, r is needed")
        return self

    @property
    def kind(self) -> Literal["v", "t", "r"]:
        """`v` vaccination, `t` test, `r` recovery."""
        return "v" if self.vaccinations else "t" if self.tests else "r"

    @property
    def entry(self) -> Vaccination | DiagnosticTest | Recovery:
        """The one entry."""
        return next(entries[0] for entries in (self.vaccinations, self.tests, self.recoveries) if entries)
