"""The authority's status list: hashed identities with a status, signed and versioned.

A list travels as a compact JWS (kiosk.jws, typ `kiosk-statuslist`, kid = the
authority key's RFC 7638 thumbprint). Its payload is one line of JSON metadata,
a newline, then a binary body (docs/statuslist.md has the byte layout):

- each identity becomes a key: the top `32 + bits` bits of
  SHA-256(salt || UTF-8 identity), where `bits` = bit length of the entry count
  (at least 1) and the salt is fresh for every list;
- the keys, sorted, are stored Elias-Fano style: the low 32 bits of each as a
  little-endian uint32, the high `bits` bits as bucket counts in unary;
- one byte per entry (zlib) names its group, a (status, until) pair.

About 4.3 bytes an entry: 1,000,000 entries make a token of about 6 MB. A key
this long gives a lookup of an unlisted identity a chance below 2**-32 of
hitting a listed one; the next list's new salt makes such a clash go away.

The kiosk side is `StatusListStore`: it keeps the newest valid list, persists it
atomically, and answers `lookup(identity)` in O(1) from the bucket offsets.
"""

from __future__ import annotations

import contextlib
import csv
import ctypes
import hashlib
import json
import logging
import os
import re
import secrets
import threading
import zlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, timezone
from pathlib import Path
from typing import Annotated, Any

import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from kiosk import jws, safejson
from kiosk.errors import SignatureError, StatusListError, UnsafeJSONError
from kiosk.keys import load_public_keys, thumbprint

log = logging.getLogger(__name__)

TYP = "kiosk-statuslist"
FORMAT_VERSION = 1
LOW_BITS = 32
MAX_ENTRIES = 1 << 21  # beyond this the token cannot fit jws.MAX_TOKEN_BYTES anyway
MAX_GROUPS = 255
SALT_BYTES = 16
VIETNAM = timezone(timedelta(hours=7), "ICT")  # no daylight saving time
STATUS_PATTERN = r"^[A-Za-z0-9_-]{1,32}$"

KeySource = Mapping[str, Ed25519PublicKey] | Ed25519PublicKey | Callable[[str], Ed25519PublicKey | None]


@dataclass(frozen=True)
class Status:
    """A status-list code (e.g. F0, F1, quarantine) and the instant it ends, if any."""

    code: str
    until: datetime | None = None

    def applies(self, at: datetime) -> bool:
        """Whether the status is still in force at `at`."""
        return self.until is None or at < self.until


@dataclass(frozen=True)
class Entry:
    """One row of a list being made: a card identity and its status."""

    identity: str
    status: Status


class _Group(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    status: str = Field(pattern=STATUS_PATTERN)
    until: AwareDatetime | None = None


class _Meta(BaseModel):
    """The JSON line at the head of the payload."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    format: int = Field(FORMAT_VERSION, ge=FORMAT_VERSION, le=FORMAT_VERSION)
    version: Annotated[int, Field(ge=1, lt=1 << 63)]
    issued: AwareDatetime
    salt: str = Field(pattern=r"^[A-Za-z0-9_-]{22,86}$")
    count: int = Field(ge=0, le=MAX_ENTRIES)
    groups: list[_Group] = Field(max_length=MAX_GROUPS)


def bucket_bits(count: int) -> int:
    """How many high key bits select a bucket for a list of `count` entries."""
    return max(1, count.bit_length())


def identity_key(salt: bytes, identity: str, bits: int) -> int:
    """The list key of `identity`: the top LOW_BITS + bits bits of SHA-256(salt || identity)."""
    digest = hashlib.sha256(salt + identity.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") >> (64 - LOW_BITS - bits)


@dataclass(frozen=True, eq=False)
class StatusList:
    """A parsed, validated status list, ready for O(1) lookups."""

    version: int
    issued: datetime
    salt: bytes
    groups: tuple[Status, ...]
    lows: np.ndarray = field(repr=False)
    offsets: np.ndarray = field(repr=False)
    group_of: np.ndarray = field(repr=False)
    _bits: int = field(init=False, repr=False)
    _lows: memoryview = field(init=False, repr=False)
    _offsets: memoryview = field(init=False, repr=False)
    _group_of: memoryview = field(init=False, repr=False)

    @property
    def count(self) -> int:
        """Number of entries."""
        return int(self.lows.shape[0])

    def __post_init__(self) -> None:
        # Plain memoryviews index to Python ints several times faster than numpy scalars.
        object.__setattr__(self, "_bits", bucket_bits(self.count))
        object.__setattr__(self, "_lows", np.ascontiguousarray(self.lows, dtype=np.uint32).data)
        object.__setattr__(self, "_offsets", np.ascontiguousarray(self.offsets, dtype=np.uint32).data)
        object.__setattr__(self, "_group_of", np.ascontiguousarray(self.group_of, dtype=np.uint8).data)

    def lookup(self, identity: str) -> Status | None:
        """The status listed for `identity`, or None."""
        key = identity_key(self.salt, identity, self._bits)
        bucket, low = key >> LOW_BITS, key & 0xFFFFFFFF
        offsets, lows = self._offsets, self._lows
        # A bucket holds about one entry, so this scan is O(1) on average.
        for i in range(offsets[bucket], offsets[bucket + 1]):
            if lows[i] == low:
                return self.groups[self._group_of[i]]
        return None


# ---------------------------------------------------------------- making a list


def build_payload(
    entries: Iterable[Entry], *, version: int, issued: datetime, salt: bytes | None = None
) -> bytes:
    """The unsigned payload of a list holding `entries` (identities are hashed here)."""
    salt = salt if salt is not None else secrets.token_bytes(SALT_BYTES)
    rows = list(entries)
    if len(rows) > MAX_ENTRIES:
        raise StatusListError(f"{len(rows)} entries is more than a list can hold ({MAX_ENTRIES})")
    if len({row.identity for row in rows}) != len(rows):
        raise StatusListError("an identity is listed twice: give each identity one status")
    groups = sorted(
        {row.status for row in rows}, key=lambda s: (s.code, s.until or datetime.min.replace(tzinfo=UTC))
    )
    if len(groups) > MAX_GROUPS:
        raise StatusListError(
            f"{len(groups)} (status, until) pairs; at most {MAX_GROUPS}: round the until dates"
        )
    meta = _meta_json(version, issued, salt, len(rows), groups)
    return meta + b"\n" + _encode_body(rows, salt, {g: i for i, g in enumerate(groups)})


def _meta_json(version: int, issued: datetime, salt: bytes, count: int, groups: list[Status]) -> bytes:
    try:
        meta = _Meta(
            format=FORMAT_VERSION,
            version=version,
            issued=issued,
            salt=jws.b64url(salt),
            count=count,
            groups=[_Group(status=g.code, until=g.until) for g in groups],
        )
    except ValidationError as e:
        raise StatusListError(f"cannot make the list: {_first_error(e)}") from e
    return meta.model_dump_json(exclude_none=True).encode()


def _encode_body(rows: list[Entry], salt: bytes, group_index: dict[Status, int]) -> bytes:
    bits = bucket_bits(len(rows))
    keyed = sorted((identity_key(salt, r.identity, bits), group_index[r.status]) for r in rows)
    keys = np.array([k for k, _ in keyed], dtype=np.uint64)
    lows = (keys & np.uint64(0xFFFFFFFF)).astype("<u4")
    highs = (keys >> np.uint64(LOW_BITS)).astype(np.int64)
    # Unary bucket counts: entry i sets bit highs[i] + i of an (n + 2**bits)-bit vector.
    unary = np.zeros(len(rows) + (1 << bits), dtype=np.uint8)
    unary[highs + np.arange(len(rows), dtype=np.int64)] = 1
    group_of = np.array([g for _, g in keyed], dtype=np.uint8)
    return lows.tobytes() + np.packbits(unary).tobytes() + zlib.compress(group_of.tobytes(), 9)


def sign_payload(payload: bytes, key: Ed25519PrivateKey) -> bytes:
    """Sign a payload as the authority: a compact JWS with typ kiosk-statuslist."""
    token = jws.sign(payload, key, kid=thumbprint(key.public_key()), typ=TYP)
    if len(token) > jws.MAX_TOKEN_BYTES:
        raise StatusListError(f"signed list is {len(token)} bytes, over {jws.MAX_TOKEN_BYTES}: split it")
    return token


def read_csv(lines: Iterable[str]) -> list[Entry]:
    """Entries from CSV rows `identity,status[,until]`; `#` comments and a header row are skipped."""
    entries: list[Entry] = []
    first_seen: dict[str, int] = {}
    for number, row in enumerate(csv.reader(lines), 1):
        if not row or not "".join(row).strip() or row[0].lstrip().startswith("#"):
            continue
        if number == 1 and row[0].strip().lower() == "identity":
            continue
        entry = _csv_entry(row, number)
        if entry.identity in first_seen:
            raise StatusListError(
                f"line {number}: {entry.identity} is already listed on line {first_seen[entry.identity]}"
            )
        first_seen[entry.identity] = number
        entries.append(entry)
    return entries


def _csv_entry(row: list[str], number: int) -> Entry:
    cells = [c.strip() for c in row]
    if len(cells) not in (2, 3) or not cells[0]:
        raise StatusListError(f"line {number}: expected identity,status[,until], got {len(cells)} cells")
    if not re.fullmatch(STATUS_PATTERN, cells[1]):
        raise StatusListError(f"line {number}: status {cells[1]!r} must be 1-32 letters, digits, _ or -")
    until = parse_until(cells[2], line=number) if len(cells) == 3 and cells[2] else None
    return Entry(identity=cells[0], status=Status(cells[1], until))


def parse_until(text: str, *, line: int | None = None) -> datetime:
    """An `until` cell: a date means the end of that day in Vietnam (UTC+7); a time needs a zone."""
    where = f"line {line}: " if line else ""
    try:
        if re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", text):
            day = date.fromisoformat(text) + timedelta(days=1)
            return datetime.combine(day, time(), VIETNAM).astimezone(UTC)
        moment = datetime.fromisoformat(text)
    except ValueError as e:
        raise StatusListError(f"{where}until {text!r} is not YYYY-MM-DD or an ISO 8601 time") from e
    if moment.tzinfo is None:
        raise StatusListError(f"{where}until {text!r} needs a time zone, e.g. +07:00")
    return moment.astimezone(UTC)


# ---------------------------------------------------------------- reading a list


def parse_payload(payload: bytes) -> StatusList:
    """Parse and check a payload (whose signature was already verified)."""
    newline = payload.find(b"\n")
    if newline < 0:
        raise StatusListError("status list payload has no metadata line")
    try:
        meta = safejson.validate(_Meta, payload[:newline], max_bytes=64 * 1024, max_depth=4)
    except UnsafeJSONError as e:
        raise StatusListError(f"status list metadata is invalid: {e}") from e
    except ValidationError as e:
        raise StatusListError(f"status list metadata is invalid: {_first_error(e)}") from e
    groups = tuple(Status(g.status, g.until.astimezone(UTC) if g.until else None) for g in meta.groups)
    body = memoryview(payload)[newline + 1 :]  # a view: a 1,000,000-entry body is not copied
    lows, offsets, group_of = _decode_body(body, meta.count, len(groups))
    salt = _salt(meta.salt)
    issued = meta.issued.astimezone(UTC)
    return StatusList(meta.version, issued, salt, groups, lows, offsets, group_of)


def _salt(text: str) -> bytes:
    # The strict reader refuses a spelling with stray low bits as a SignatureError; inside a
    # verified payload that is a malformed list, and callers expect only StatusListError.
    try:
        return jws.b64url_decode(text)
    except SignatureError as e:
        raise StatusListError(f"status list salt is not strict base64url: {e}") from e


def _decode_body(body: memoryview, count: int, group_count: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    bits = bucket_bits(count)
    unary_bytes = (count + (1 << bits) + 7) // 8
    if len(body) < 4 * count + unary_bytes:
        raise StatusListError("status list body is shorter than its entry count says")
    lows = np.frombuffer(body, dtype="<u4", count=count).astype(np.uint32)
    unary = np.frombuffer(body, dtype=np.uint8, count=unary_bytes, offset=4 * count)
    offsets = _bucket_offsets(unary, count, bits)
    group_of = _group_indexes(body[4 * count + unary_bytes :], count, group_count)
    return lows, offsets, group_of


def _bucket_offsets(unary: np.ndarray, count: int, bits: int) -> np.ndarray:
    vector = np.unpackbits(unary)[: count + (1 << bits)]
    # Bucket b ends where the b-th 0 bit stands; the 1 bits before it are the entries up to there.
    # uint32 sums keep the temporaries small (a few MB at 1,000,000 entries).
    ends = np.cumsum(vector, dtype=np.uint32)[vector == 0]
    if ends.shape[0] != 1 << bits or int(ends[-1]) != count:
        raise StatusListError("status list bucket counts do not match its entry count")
    return np.concatenate((np.zeros(1, dtype=np.uint32), ends))


def _group_indexes(data: memoryview, count: int, group_count: int) -> np.ndarray:
    inflate = zlib.decompressobj()
    try:
        raw = inflate.decompress(data, count + 1)
    except zlib.error as e:
        raise StatusListError(f"status list groups are not valid zlib: {e}") from e
    if len(raw) != count or not inflate.eof or inflate.unused_data:
        raise StatusListError("status list groups do not match its entry count")
    group_of = np.frombuffer(raw, dtype=np.uint8)
    if count and int(group_of.max()) >= group_count:
        raise StatusListError("status list entry names a group that does not exist")
    return group_of


def verify_token(token: bytes, keys: KeySource) -> StatusList:
    """Check the signature and type of a token, then parse it; raise StatusListError."""
    lookup: Any = keys.get if isinstance(keys, Mapping) else keys
    try:
        verified = jws.verify(token, lookup)
    except SignatureError as e:
        raise StatusListError(f"status list refused: {e}") from e
    except (ValueError, TypeError, KeyError) as e:  # e.g. non-ASCII text or an odd header value
        raise StatusListError(f"status list refused: not a JWS token ({e})") from e
    if verified.header.get("typ") != TYP:
        raise StatusListError(f"status list refused: typ must be {TYP!r}")
    return parse_payload(verified.payload)


def _first_error(e: ValidationError) -> str:
    err = e.errors()[0]
    where = ".".join(str(p) for p in err["loc"]) or "(top)"
    return f"{where}: {err['msg']}"


# ---------------------------------------------------------------- the kiosk's copy


class StatusListStore:
    """The newest valid list this kiosk has: offered by the MQTT thread, looked up by the main loop."""

    def __init__(self, keys: KeySource, *, path: Path | None = None) -> None:
        self._keys = keys
        self._path = path
        self._lock = threading.Lock()
        self._list: StatusList | None = None
        self._token: bytes | None = None
        self.applied = 0
        self.refused = 0
        if path is not None:
            self._load_saved(path)

    @classmethod
    def from_config(cls, authority_keys: Path | None, path: Path | None) -> StatusListStore:
        """A store for `policy.authority_keys` and `paths.statuslist_file` (no keys = refuse every list)."""
        return cls(load_public_keys(authority_keys) if authority_keys else {}, path=path)

    @property
    def current(self) -> StatusList | None:
        """The list in force, or None before the first one arrives."""
        return self._list

    @property
    def version(self) -> int | None:
        """Version of the list in force."""
        current = self._list
        return current.version if current else None

    def lookup(self, identity: str) -> Status | None:
        """The listed status of `identity` (None if unlisted or no list yet)."""
        current = self._list  # one read: a concurrent offer swaps whole lists
        return current.lookup(identity) if current is not None else None

    def offer(self, token: bytes) -> bool:
        """Apply a newer list: True if applied, False if it is the very list we have.

        Raises StatusListError (and counts it) for a bad signature, a malformed
        list, or a version not newer than ours.
        """
        token = bytes(token).strip()
        if token == self._token:
            return False  # the retained message again, after a reconnect
        try:
            candidate = verify_token(token, self._keys)
        except StatusListError:
            self.refused += 1
            raise
        with self._lock:
            self._check_newer(candidate)
            self._persist(token)
            self._list, self._token = candidate, token
            self.applied += 1
        release_free_memory()
        log.info("status list version %d applied (%d entries)", candidate.version, candidate.count)
        return True

    def _check_newer(self, candidate: StatusList) -> None:
        current = self._list
        if current is not None and candidate.version <= current.version:
            self.refused += 1
            raise StatusListError(
                f"status list version {candidate.version} refused: version {current.version} is in force"
            )

    def _persist(self, token: bytes) -> None:
        if self._path is None:
            return
        try:
            write_atomically(self._path, token)
        except OSError as e:
            # Enforcing the new list matters more than keeping it across a restart.
            log.error("status list applied but not saved to %s: %s (is the disk full?)", self._path, e)

    def _load_saved(self, path: Path) -> None:
        try:
            token = path.read_bytes().strip()
        except FileNotFoundError:
            return
        except OSError as e:
            log.warning("cannot read the saved status list %s: %s", path, e.strerror)
            return
        try:
            self._list, self._token = verify_token(token, self._keys), token
        except StatusListError as e:
            log.warning("saved status list %s ignored: %s", path, e)


def release_free_memory() -> None:
    """Hand the megabytes freed after a parse back to the OS (glibc keeps them otherwise)."""
    # Decoding a 1,000,000-entry list frees ~25 MB of buffers that glibc would keep mapped,
    # about doubling the list's RSS cost; elsewhere than glibc this is a no-op.
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None).malloc_trim(0)


def write_atomically(path: Path, data: bytes) -> None:
    """Replace `path` with `data` so that a crash leaves the old or the new file, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        with tmp.open("wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    folder = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)


def dump_summary(status_list: StatusList) -> str:
    """One JSON line describing a list: version, count, issue time and groups."""
    groups = [
        {"status": g.code, **({"until": g.until.isoformat()} if g.until else {})} for g in status_list.groups
    ]
    counts = np.bincount(status_list.group_of, minlength=len(groups)).tolist() if groups else []
    for group, n in zip(groups, counts, strict=True):
        group["count"] = n
    summary = {
        "version": status_list.version,
        "count": status_list.count,
        "issued": status_list.issued.isoformat(),
        "groups": groups,
    }
    return json.dumps(summary, ensure_ascii=False)


def describe_status(identity: str, status: Status | None) -> str:
    """One JSON line with the listed status of `identity` (null when unlisted)."""
    until = status.until.isoformat() if status and status.until else None
    return json.dumps({"identity": identity, "status": status.code if status else None, "until": until})
