"""The trust list: document-signer certificates that vaccine passports are verified against.

Read from one PEM file holding one or more certificates, or from a folder of
`.pem`, `.der` and `.crt` files. Each certificate is found by its key id (kid):
the first 8 bytes of SHA-256 over the certificate's DER encoding, as the EU
DCC specification defines. `reload()` re-reads the same path and swaps the new
list in at once; if the new files are bad it raises and the old list stays.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import threading
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Literal

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from kiosk import jws
from kiosk.errors import SignatureError, TrustListError
from kiosk.keys import thumbprint

KID_LENGTH = 8
SUFFIXES = frozenset({".pem", ".der", ".crt"})


def kid_of(certificate: x509.Certificate) -> bytes:
    """The DCC key id of a certificate: the first 8 bytes of SHA-256 over its DER."""
    return hashlib.sha256(certificate.public_bytes(Encoding.DER)).digest()[:KID_LENGTH]


def key_usages(certificate: x509.Certificate) -> frozenset[str] | None:
    """The extended key usage OIDs (dotted) of a certificate, or None if it has no such extension.

    `cryptography` reads extensions only from strict DER and refuses them all for one
    harmless slip, such as a BasicConstraints that writes out its default `ca FALSE`
    (real document signers do this); the extension is then read again leniently.
    Raises ValueError only when the extended key usage itself cannot be read.
    """
    try:
        usage = certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return None
    except ValueError:
        return _key_usages_lenient(certificate.public_bytes(Encoding.DER))
    return frozenset(oid.dotted_string for oid in usage)


def _key_usages_lenient(der: bytes) -> frozenset[str] | None:
    """The extended key usage read with a BER decoder, which forgives what strict DER forbids.

    pyasn1 and its RFC 5280 module are imported here, for the rare certificate that needs
    them, rather than kept resident in every running kiosk.
    """
    from pyasn1.codec.ber import decoder as ber_decoder
    from pyasn1.error import PyAsn1Error
    from pyasn1.type import univ
    from pyasn1_modules import rfc5280

    class Oids(univ.SequenceOf):
        # ExtKeyUsageSyntax without its SIZE (1..MAX): an empty list reads as "no DCC usage", i.e. every type.
        componentType = univ.ObjectIdentifier()  # noqa: N815 - the name pyasn1 reads

    try:
        certificate, _ = ber_decoder.decode(der, asn1Spec=rfc5280.Certificate())
        for extension in certificate["tbsCertificate"]["extensions"]:
            if extension["extnID"] == rfc5280.id_ce_extKeyUsage:
                oids, _ = ber_decoder.decode(bytes(extension["extnValue"]), asn1Spec=Oids())
                return frozenset(str(oid) for oid in oids)
    except PyAsn1Error as e:
        raise ValueError(f"extended key usage unreadable: {e}") from e
    return None


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as e:
        raise TrustListError(
            f"trust list file {path} cannot be read ({e.strerror}): "
            "check it exists and the kiosk user may read it"
        ) from e


def read_certificates(path: Path) -> list[x509.Certificate]:
    """Every certificate in one PEM (one or more) or DER file; raises TrustListError naming the file."""
    data = _read_bytes(path)
    try:
        if b"-----BEGIN" in data:
            return x509.load_pem_x509_certificates(data)
        return [x509.load_der_x509_certificate(data)]
    except ValueError as e:
        raise TrustListError(
            f"trust list file {path} holds no valid certificate ({e}): "
            "replace it with PEM or DER certificates"
        ) from e


def _files(folder: Path) -> list[Path]:
    try:
        entries = sorted(folder.iterdir())
    except OSError as e:
        raise TrustListError(f"trust list folder {folder} cannot be listed ({e.strerror})") from e
    return [p for p in entries if p.suffix.lower() in SUFFIXES and p.is_file()]


def read_path(path: Path) -> list[x509.Certificate]:
    """Every certificate in a file or a folder of certificate files; raises TrustListError."""
    if not path.exists():
        raise TrustListError(f"trust list {path} does not exist: check `policy.trust_list` in the config")
    files = _files(path) if path.is_dir() else [path]
    certificates = [c for f in files for c in read_certificates(f)]
    if not certificates:
        raise TrustListError(f"trust list {path} holds no certificates: add .pem, .der or .crt files")
    return certificates


def _index(certificates: Iterable[x509.Certificate]) -> dict[bytes, tuple[x509.Certificate, ...]]:
    index: dict[bytes, tuple[x509.Certificate, ...]] = {}
    for certificate in certificates:
        kid = kid_of(certificate)
        index[kid] = (*index.get(kid, ()), certificate)
    return index


class TrustList:
    """Document-signer certificates looked up by kid; safe to read while another thread reloads."""

    def __init__(self, certificates: Iterable[x509.Certificate] = (), *, path: Path | None = None) -> None:
        self.path = path
        self._by_kid = _index(certificates)

    @classmethod
    def load(cls, path: Path | str) -> TrustList:
        """Read a trust list from a PEM file or a folder; raises TrustListError naming the bad file."""
        return cls(read_path(Path(path)), path=Path(path))

    def reload(self) -> None:
        """Re-read `path` and swap the new list in at once; on error keep the old list and raise."""
        if self.path is None:
            raise TrustListError("this trust list was not loaded from a file, so it cannot be reloaded")
        # One assignment, so a reader sees either the whole old list or the whole new one.
        self._by_kid = _index(read_path(self.path))

    def replace(self, certificates: Iterable[x509.Certificate]) -> None:
        """Swap in a new list at once (a newer signed trust list from the authority)."""
        self._by_kid = _index(certificates)

    def lookup(self, kid: bytes) -> x509.Certificate | None:
        """The certificate with this kid, or None."""
        found = self._by_kid.get(bytes(kid), ())
        return found[0] if found else None

    def certificates_for(self, kid: bytes) -> tuple[x509.Certificate, ...]:
        """Every certificate with this kid (kids are short, so two signers may share one)."""
        return self._by_kid.get(bytes(kid), ())

    def __len__(self) -> int:
        return sum(len(found) for found in self._by_kid.values())

    def __iter__(self) -> Iterator[x509.Certificate]:
        return iter([c for found in self._by_kid.values() for c in found])


# --- the signed, versioned trust list the authority publishes ------------------------------------
#
# A compact JWS (kiosk.jws, typ `kiosk-trustlist`, kid = the authority key's thumbprint) whose
# payload is JSON: {"format": 1, "version": N, "issued": ISO-8601, "certificates": [base64 DER...]}.
# It travels on the retained topic `{prefix}/trustlist` and in the provisioning bundle; a kiosk
# keeps the newest valid one (TrustListStore) and refuses an older version or a bad signature.

TOKEN_TYP = "kiosk-trustlist"
TOKEN_FILE = "trustlist.jws"  # in the state folder: the newest signed list the kiosk has
MAX_SIGNED_CERTIFICATES = 10_000


class _SignedPayload(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    format: Literal[1] = 1
    version: int = Field(ge=1, lt=1 << 63)
    issued: AwareDatetime
    certificates: list[str] = Field(max_length=MAX_SIGNED_CERTIFICATES)


@dataclass(frozen=True)
class SignedTrustList:
    """A verified trust list from the authority: its version, issue time and certificates."""

    version: int
    issued: datetime
    certificates: tuple[x509.Certificate, ...]


def sign_trust_list(
    certificates: Iterable[x509.Certificate], *, version: int, issued: datetime, key: Ed25519PrivateKey
) -> bytes:
    """The authority's signed trust list token."""
    ders = [base64.b64encode(c.public_bytes(Encoding.DER)).decode("ascii") for c in certificates]
    payload = _SignedPayload(version=version, issued=issued, certificates=ders)
    return jws.sign(payload.model_dump_json().encode(), key, kid=thumbprint(key.public_key()), typ=TOKEN_TYP)


def verify_trust_list(token: bytes, keys: Mapping[str, Ed25519PublicKey]) -> SignedTrustList:
    """Check the signature first, then the payload; raises TrustListError saying why not."""
    try:
        verified = jws.verify(token, keys.get)
    except SignatureError as e:
        raise TrustListError(f"trust list signature: {e}") from e
    if verified.header.get("typ") != TOKEN_TYP:
        raise TrustListError(f"not a trust list (typ {verified.header.get('typ')!r})")
    try:
        payload = _SignedPayload.model_validate_json(verified.payload)
        certificates = tuple(
            x509.load_der_x509_certificate(base64.b64decode(c, validate=True)) for c in payload.certificates
        )
    except (ValidationError, ValueError) as e:
        raise TrustListError(f"trust list malformed: {str(e).splitlines()[0]}") from e
    return SignedTrustList(payload.version, payload.issued, certificates)


class TrustListStore:
    """The newest signed trust list this kiosk has, applied to its TrustList and saved to `path`."""

    def __init__(self, trust: TrustList, keys: Mapping[str, Ed25519PublicKey], *, path: Path | None) -> None:
        self.trust = trust
        self._keys = keys
        self._path = path
        self._lock = threading.Lock()
        self.version: int | None = None
        self._applied: tuple[x509.Certificate, ...] | None = None
        if path is not None and path.exists():
            with contextlib.suppress(TrustListError, OSError):
                self.offer(path.read_bytes(), save=False)

    def reload(self) -> None:
        """SIGHUP: apply the saved (or newly copied) signed list again, unless it is older than ours."""
        if self._path is None or not self._path.exists():
            return
        try:
            candidate = verify_trust_list(self._path.read_bytes().strip(), self._keys)
        except (TrustListError, OSError):
            self._restore()
            raise
        with self._lock:
            if self.version is not None and candidate.version < self.version:
                self._restore()
                raise TrustListError(
                    f"trust list version {candidate.version} in {self._path} refused:"
                    f" version {self.version} is in force"
                )
            self._apply(candidate)

    def _restore(self) -> None:
        # The file list was just re-read over ours: put the newest signed list back.
        if self._applied is not None:
            self.trust.replace(self._applied)

    def _apply(self, candidate: SignedTrustList) -> None:
        self.trust.replace(candidate.certificates)
        self.version, self._applied = candidate.version, candidate.certificates

    def offer(self, token: bytes, *, save: bool = True) -> bool:
        """Apply a newer signed list: True if applied, False if it is the version in force.

        Raises TrustListError for a bad signature, a malformed list or an older version.
        """
        candidate = verify_trust_list(bytes(token).strip(), self._keys)
        with self._lock:
            if self.version is not None and candidate.version <= self.version:
                if candidate.version == self.version:
                    return False  # the retained message again, after a reconnect
                raise TrustListError(
                    f"trust list version {candidate.version} refused: version {self.version} is in force"
                )
            if save and self._path is not None:
                _write_atomically(self._path, bytes(token).strip())
            self._apply(candidate)
        return True


def _write_atomically(path: Path, data: bytes) -> None:
    temp = path.with_name(f".{path.name}.new")
    with temp.open("wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(temp, path)
