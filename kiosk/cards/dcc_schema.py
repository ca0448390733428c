"""The health certificate inside a vaccine passport (EU DCC schema 1.x), as frozen pydantic models.

Field names are readable; the CBOR keys of the specification are their aliases.
Read as the schema's FAQ ("Postel's law") asks of verifiers: what the official
schema allows is accepted, and a value that a strict check would refuse but whose
meaning is clear is rescued (a date-time in a date field gives its date, a float
that is a whole number gives the integer, an empty optional text is absent, a
date-time in another ISO 8601 shape is read). A value whose meaning is not clear
(a number written as text, "abcde" in a date) is a schema violation naming the
field. Exactly one of `v`, `t`, `r` must hold exactly one entry. Unknown extra
keys are ignored, so a later 1.x minor version still reads.
Free text (names, issuer, UVCI, codes) is at most 80 (codes 50) characters
and holds no control, format or line-separator characters: the UVCI becomes
the event's identity, and the text reaches the screen and the logs.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import UTC, date, datetime, time
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
from pydantic_core import ErrorDetails

TEST_NOT_DETECTED = "260415000"
TEST_DETECTED = "260373001"
_FULL_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
# The tail of an ISO 8601 date-time after its date: time, optional fraction, optional zone.
_TIME_TAIL = re.compile(r"[T ][0-9]{2}(:?[0-9]{2}){1,2}([.,][0-9]+)?(Z|[+-][0-9]{2}(:?[0-9]{2})?)?")
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
    if isinstance(value, str) and _FULL_DATE.match(value):
        written, tail = value[:10], value[10:].upper()
        # A date-time in a date field: the date as written is what the issuer meant.
        if not tail or _TIME_TAIL.fullmatch(tail):
            return date.fromisoformat(written)
    raise ValueError("expected an ISO 8601 date (YYYY-MM-DD)")


def _iso_datetime(value: object) -> object:
    if isinstance(value, str) and _FULL_DATE.match(value):
        tail = value[10:].upper()
        if not tail:  # a date alone: its first moment, as issuers that keep no time write it
            return datetime.combine(date.fromisoformat(value), time(), UTC)
        if _TIME_TAIL.fullmatch(tail):
            parsed = datetime.fromisoformat(value[:10] + "T" + tail[1:])
            # Without a zone the moment is read as UTC, the zone the specification's examples use.
            return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)
    raise ValueError("expected an ISO 8601 date-time")


def _whole_number(value: object) -> object:
    # A float that is a whole number (2.0) means that integer; 2.5 or text stays an error.
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _birth_date(value: object) -> object:
    # A date-time where the schema wants a (partial) date: keep the date as written.
    if isinstance(value, str) and _FULL_DATE.match(value) and _TIME_TAIL.fullmatch(value[10:].upper()):
        return value[:10]
    return value


def _empty_is_absent(value: object) -> object:
    return None if value == "" else value


def _aware(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("expected a time zone")
    return value


Text = Annotated[StrictStr, StringConstraints(min_length=1, max_length=MAX_TEXT), _plain(MAX_TEXT)]
Code = Annotated[StrictStr, StringConstraints(min_length=1, max_length=MAX_TEXT), _plain(MAX_TEXT)]
OptionalText = Annotated[Text | None, BeforeValidator(_empty_is_absent)]
OptionalCode = Annotated[Code | None, BeforeValidator(_empty_is_absent)]
OptionalStandardised = Annotated[
    Annotated[StrictStr, StringConstraints(pattern=r"^[A-Z<]+$", max_length=MAX_TEXT)] | None,
    BeforeValidator(_empty_is_absent),
]
Country = Annotated[StrictStr, StringConstraints(pattern=r"^[A-Z]{1,10}$")]
IsoDate = Annotated[date, BeforeValidator(_iso_date)]
IsoDateTime = Annotated[datetime, BeforeValidator(_iso_datetime), AfterValidator(_aware)]
Dose = Annotated[StrictInt, Field(ge=1), BeforeValidator(_whole_number)]


class _Entry(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=False)


class Name(_Entry):
    """The holder's name: as written (`fn`, `gn`) and standardised ICAO 9303 (`fnt`, `gnt`)."""

    family: OptionalText = Field(None, alias="fn")
    given: OptionalText = Field(None, alias="gn")
    family_std: OptionalStandardised = Field(None, alias="fnt")
    given_std: OptionalStandardised = Field(None, alias="gnt")

    @model_validator(mode="before")
    @classmethod
    def _standardised(cls, data: object) -> object:
        # The schema asks for the key fnt or gnt (either may be empty), as the issuer's sign of a name.
        if isinstance(data, dict) and "fnt" not in data and "gnt" not in data:
            raise ValueError("a standardised family (fnt) or given (gnt) name is needed")
        return data

    def display(self) -> str:
        """Family then given name, as written where given, else standardised."""
        family = self.family or (self.family_std or "").replace("<", " ")
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
    test_name: OptionalText = Field(None, alias="nm")
    manufacturer: OptionalCode = Field(None, alias="ma")
    sample_time: IsoDateTime = Field(alias="sc")
    result: Literal["260415000", "260373001"] = Field(alias="tr")
    centre: OptionalText = Field(None, alias="tc")
    country: Country = Field(alias="co")
    issuer: Text = Field(alias="is")
    uvci: Text = Field(alias="ci")

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


class HealthCertificate(_Entry):
    """The certificate: version, name, birth date and exactly one v, t or r entry."""

    version: Annotated[StrictStr, StringConstraints(pattern=r"^1\.[0-9]+\.[0-9]+$")] = Field(alias="ver")
    name: Name = Field(alias="nam")
    birth_date: Annotated[
        StrictStr,
        BeforeValidator(_birth_date),
        StringConstraints(pattern=r"^([0-9]{4}(-[0-9]{2}){0,2})?$"),
    ] = Field(alias="dob")
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


def describe_errors(errors: list[ErrorDetails], limit: int = 3) -> str:
    """Schema errors as `field: rule` (e.g. `t[0].sc: expected an ISO 8601 date-time`), no values."""
    return "; ".join(f"{_where(err['loc'])}: {_rule(err)}" for err in errors[:limit])


def _where(loc: tuple[int | str, ...]) -> str:
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else f".{part}" if path else str(part)
    return path or "certificate"


def _rule(err: ErrorDetails) -> str:
    # The message, never the input: the detail is logged, and inputs hold personal data.
    return err["msg"].removeprefix("Value error, ").replace("Input should", "should")
