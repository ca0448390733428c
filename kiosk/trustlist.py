"""The trust list: document-signer certificates that vaccine passports are verified against.

Read from one PEM file holding one or more certificates, or from a folder of
`.pem`, `.der` and `.crt` files. Each certificate is found by its key id (kid):
the first 8 bytes of SHA-256 over the certificate's DER encoding, as the EU
DCC specification defines. `reload()` re-reads the same path and swaps the new
list in at once; if the new files are bad it raises and the old list stays.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from pyasn1.codec.ber import decoder as ber_decoder
from pyasn1.error import PyAsn1Error
from pyasn1.type import univ
from pyasn1_modules import rfc5280

from kiosk.errors import TrustListError

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


class _Oids(univ.SequenceOf):
    # ExtKeyUsageSyntax without its SIZE (1..MAX): an empty list reads as "no DCC usage", i.e. every type.
    componentType = univ.ObjectIdentifier()  # noqa: N815 - the name pyasn1 reads


def _key_usages_lenient(der: bytes) -> frozenset[str] | None:
    """The extended key usage read with a BER decoder, which forgives what strict DER forbids."""
    try:
        certificate, _ = ber_decoder.decode(der, asn1Spec=rfc5280.Certificate())
        for extension in certificate["tbsCertificate"]["extensions"]:
            if extension["extnID"] == rfc5280.id_ce_extKeyUsage:
                oids, _ = ber_decoder.decode(bytes(extension["extnValue"]), asn1Spec=_Oids())
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
