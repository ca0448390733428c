"""Valid example payloads and QR images of every card format, and test signers for vaccine passports.

For tests, demos and `kiosk card make`. A test signer is a fresh key with a
self-signed document-signer certificate; its certificate goes into a trust
list (`TrustList([signer.certificate])` or a PEM file) for the kiosk to
verify the passports it signs. These are never real credentials.
"""

from __future__ import annotations

import os
import secrets
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any, Literal

import base45
import cbor2
import segno
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID
from pyasn1.codec.der import decoder as der_decoder
from pyasn1.codec.der import encoder as der_encoder
from pyasn1.type import univ
from pyasn1_modules import rfc5280

from kiosk.cards.cccd import Gender, id_digits
from kiosk.cards.cose import ALGORITHMS, HEADER_ALG, HEADER_KID, TAG_SIGN1
from kiosk.cards.dcc import (
    CLAIM_EXPIRY,
    CLAIM_HCERT,
    CLAIM_ISSUED_AT,
    CLAIM_ISSUER,
    HCERT_EU_DCC,
    KEY_USAGE_OIDS,
    PREFIX,
)
from kiosk.errors import SignerKeyError
from kiosk.trustlist import kid_of

Alg = Literal["ES256", "PS256", "EdDSA"]
SigningKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey
_ALG_IDS: dict[str, int] = {name: number for number, name in ALGORITHMS.items()}
COVID_19 = "840539006"
HOLDER = {"fn": "Nguyễn", "gn": "Văn An", "fnt": "NGUYEN", "gnt": "VAN<AN"}
HOLDER_BIRTH = "1987-01-18"
ISSUER = "Bộ Y tế"


def national_payload(
    *,
    id_number: str = "001093029317",
    name: str = "NGUYEN VAN A",
    birth_date: str = "1987-01-18",
    by_proxy: bool = False,
    qid: str = "162979388586171100",
    proxy_qid: str = "",
    gender: int | None = 1,
    insurance_number: str = "00",
    phone: str = "0123232422",
    signature: str = "",
) -> str:
    """A national personal QR; the defaults give the example of Decision 1405/QĐ-BTTTT."""
    ext = [proxy_qid, "" if gender is None else str(gender), insurance_number, phone, signature]
    ext_text = "<".join(ext).rstrip("<")
    return "|".join([id_number, name, birth_date, "1" if by_proxy else "0", qid, ext_text])


def cccd_payload(
    *,
    name: str = "Nguyễn Văn An",
    birth_date: date = date(1993, 1, 18),
    gender: Gender = "Nam",
    province: str = "001",
    serial: str = "012345",
    old_id: str = "",
    address: str = "Số 1 Tràng Tiền, Hoàn Kiếm, Hà Nội",
    issue_date: date = date(2021, 4, 10),
    id_number: str | None = None,
    with_old_id_field: bool = True,
) -> str:
    """A CCCD QR whose 12-digit id agrees with the birth date and gender (unless `id_number` is given)."""
    number = id_number or id_digits(province, birth_date, gender) + serial
    fields = [number, old_id, name, birth_date.strftime("%d%m%Y"), gender, address]
    if not with_old_id_field:
        fields.pop(1)
    return "|".join([*fields, issue_date.strftime("%d%m%Y")])


@dataclass(frozen=True)
class DccSigner:
    """A document signer: its private key, algorithm and (self-signed) certificate."""

    alg: Alg
    private_key: SigningKey
    certificate: x509.Certificate

    @property
    def kid(self) -> bytes:
        """The DCC key id of the certificate."""
        return kid_of(self.certificate)

    def sign(self, message: bytes) -> bytes:
        """A COSE signature over `message` (ES256 as raw r||s)."""
        key = self.private_key
        if isinstance(key, ec.EllipticCurvePrivateKey):
            r, s = decode_dss_signature(key.sign(message, ec.ECDSA(hashes.SHA256())))
            return r.to_bytes(32, "big") + s.to_bytes(32, "big")
        if isinstance(key, rsa.RSAPrivateKey):
            pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)
            return key.sign(message, pss, hashes.SHA256())
        return key.sign(message)


def _new_key(alg: Alg) -> SigningKey:
    if alg == "ES256":
        return ec.generate_private_key(ec.SECP256R1())
    if alg == "PS256":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    if alg == "EdDSA":
        return ed25519.Ed25519PrivateKey.generate()
    raise ValueError(f"unknown algorithm {alg!r}: use ES256, PS256 or EdDSA")


def _usage_oids(key_usage: Iterable[str]) -> list[x509.ObjectIdentifier]:
    # The primary OID of each type; the 1.3.6.1.4.1.0.1847 variant is only accepted, not made.
    return [x509.ObjectIdentifier(min(KEY_USAGE_OIDS[kind], key=len)) for kind in key_usage]


def make_dcc_signer(
    alg: Alg = "ES256",
    *,
    not_before: datetime,
    not_after: datetime,
    key_usage: Iterable[Literal["v", "t", "r"]] | None = None,
    common_name: str = "Kiosk example DSC",
) -> DccSigner:
    """A new key and a self-signed document-signer certificate; `key_usage` limits it to those types."""
    key = _new_key(alg)
    name = x509.Name(
        [x509.NameAttribute(NameOID.COUNTRY_NAME, "VN"), x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    )
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
    )
    if key_usage is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage(_usage_oids(key_usage)), critical=False)
    digest = None if alg == "EdDSA" else hashes.SHA256()
    return DccSigner(alg, key, builder.sign(key, digest))


def with_explicit_ca_false(signer: DccSigner) -> DccSigner:
    """The signer with its certificate re-issued holding a BasicConstraints that writes out `ca FALSE`.

    DER forbids writing a default value; some real document signers do it anyway,
    and `cryptography` then refuses to read any extension of the certificate. This
    makes such a certificate, to test that the kiosk still reads its key usage.
    """
    der = signer.certificate.public_bytes(serialization.Encoding.DER)
    certificate, _ = der_decoder.decode(der, asn1Spec=rfc5280.Certificate())
    extension = rfc5280.Extension()
    extension["extnID"] = rfc5280.id_ce_basicConstraints
    extension["critical"] = True
    extension["extnValue"] = univ.OctetString(b"\x30\x03\x01\x01\x00")  # SEQUENCE { BOOLEAN FALSE }
    tbs = certificate["tbsCertificate"]
    tbs["extensions"].append(extension)
    certificate["signature"] = univ.BitString.fromOctetString(_sign_x509(signer, der_encoder.encode(tbs)))
    lax = x509.load_der_x509_certificate(der_encoder.encode(certificate))
    return DccSigner(signer.alg, signer.private_key, lax)


def _sign_x509(signer: DccSigner, tbs: bytes) -> bytes:
    """An X.509 signature (ECDSA as DER, RSA as PKCS#1 v1.5, as CertificateBuilder made the original)."""
    key = signer.private_key
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return key.sign(tbs, ec.ECDSA(hashes.SHA256()))
    if isinstance(key, rsa.RSAPrivateKey):
        return key.sign(tbs, padding.PKCS1v15(), hashes.SHA256())
    return key.sign(tbs)


def sign1_message(
    cert_dict: dict[str, Any],
    *,
    signer: DccSigner,
    issued_at: datetime,
    expires_at: datetime,
    kid_in: Literal["protected", "unprotected"] = "protected",
    tagged: bool = True,
    issuer: str = "VN",
) -> bytes:
    """The CBOR COSE_Sign1 (before compression) holding a CWT with `cert_dict` as claim -260/1."""
    claims = {
        CLAIM_ISSUER: issuer,
        CLAIM_ISSUED_AT: int(issued_at.timestamp()),
        CLAIM_EXPIRY: int(expires_at.timestamp()),
        CLAIM_HCERT: {HCERT_EU_DCC: cert_dict},
    }
    payload = cbor2.dumps(claims)
    protected: dict[int, Any] = {HEADER_ALG: _ALG_IDS[signer.alg]}
    unprotected: dict[int, Any] = {}
    (protected if kid_in == "protected" else unprotected)[HEADER_KID] = signer.kid
    protected_bytes = cbor2.dumps(protected)
    signature = signer.sign(cbor2.dumps(["Signature1", protected_bytes, b"", payload]))
    message = [protected_bytes, unprotected, payload, signature]
    return cbor2.dumps(cbor2.CBORTag(TAG_SIGN1, message) if tagged else message)


def encode_hc1(cose: bytes, *, compress: bool = True) -> str:
    """`HC1:` + Base45 of the (zlib-compressed) COSE message."""
    data = zlib.compress(cose, 9) if compress else cose
    return PREFIX + base45.b45encode(data).decode("ascii")


def dcc_payload(
    cert_dict: dict[str, Any],
    *,
    signer: DccSigner,
    issued_at: datetime,
    expires_at: datetime,
    compress: bool = True,
    kid_in: Literal["protected", "unprotected"] = "protected",
    tagged: bool = True,
) -> str:
    """A signed vaccine passport (`HC1:...`) holding `cert_dict`."""
    cose = sign1_message(
        cert_dict, signer=signer, issued_at=issued_at, expires_at=expires_at, kid_in=kid_in, tagged=tagged
    )
    return encode_hc1(cose, compress=compress)


def _uvci() -> str:
    return f"URN:UVCI:01:VN:{secrets.token_hex(8).upper()}"


def _certificate(kind: str, entry: dict[str, Any]) -> dict[str, Any]:
    common = {"tg": COVID_19, "co": "VN", "is": ISSUER}
    return {"ver": "1.3.0", "nam": dict(HOLDER), "dob": HOLDER_BIRTH, kind: [{**common, **entry}]}


def dcc_vaccination(
    *, dose: int = 2, of: int = 2, on: date = date(2021, 9, 1), uvci: str | None = None
) -> dict:
    """A vaccination certificate dict (Comirnaty, dose `dose` of `of`)."""
    entry = {"vp": "1119349007", "mp": "EU/1/20/1528", "ma": "ORG-100030215", "dn": dose, "sd": of}
    return _certificate("v", {**entry, "dt": on.isoformat(), "ci": uvci or _uvci()})


def dcc_vaccination_complete(*, on: date = date(2021, 9, 1), uvci: str | None = None) -> dict:
    """A complete vaccination (dose 2 of 2)."""
    return dcc_vaccination(dose=2, of=2, on=on, uvci=uvci)


def dcc_vaccination_incomplete(*, on: date = date(2021, 9, 1), uvci: str | None = None) -> dict:
    """An incomplete vaccination (dose 1 of 2)."""
    return dcc_vaccination(dose=1, of=2, on=on, uvci=uvci)


def dcc_test_result(*, sampled_at: datetime, positive: bool = False, uvci: str | None = None) -> dict:
    """A rapid antigen test certificate dict; `sampled_at` must carry a time zone."""
    entry = {"tt": "LP217198-3", "ma": "1232", "sc": sampled_at.isoformat(), "tc": "Bệnh viện Bạch Mai"}
    return _certificate("t", {**entry, "tr": "260373001" if positive else "260415000", "ci": uvci or _uvci()})


def dcc_test_negative(*, sampled_at: datetime, uvci: str | None = None) -> dict:
    """A negative test certificate dict."""
    return dcc_test_result(sampled_at=sampled_at, positive=False, uvci=uvci)


def dcc_recovery(
    *, first_positive: date, valid_from: date, valid_until: date, uvci: str | None = None
) -> dict:
    """A recovery certificate dict."""
    dates = {"fr": first_positive.isoformat(), "df": valid_from.isoformat(), "du": valid_until.isoformat()}
    return _certificate("r", {**dates, "ci": uvci or _uvci()})


def qr_png(payload: str | bytes, path: Path | str, *, scale: int = 8, border: int = 4) -> Path:
    """Write `payload` as a QR code PNG; non-ASCII text is encoded as UTF-8 bytes, as cards do."""
    content = payload if isinstance(payload, bytes) or payload.isascii() else payload.encode("utf-8")
    segno.make(content, error="m", micro=False).save(str(path), kind="png", scale=scale, border=border)
    return Path(path)


def _write_private(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def save_signer(signer: DccSigner, key_path: Path | str, cert_path: Path | str) -> None:
    """Write the signer's private key (PKCS#8 PEM, mode 0600) and its certificate (PEM)."""
    key_pem = signer.private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    _write_private(Path(key_path), key_pem)
    Path(cert_path).write_bytes(signer.certificate.public_bytes(serialization.Encoding.PEM))


def _alg_of(key: object) -> Alg:
    if isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name == "secp256r1":
        return "ES256"
    if isinstance(key, rsa.RSAPrivateKey):
        return "PS256"
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return "EdDSA"
    raise SignerKeyError("signer key must be P-256 (ES256), RSA (PS256) or Ed25519 (EdDSA)")


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as e:
        raise SignerKeyError(f"cannot read the signer {what} {path} ({e.strerror})") from e


def _spki(public_key: Any) -> bytes:
    return public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def load_signer(key_path: Path | str, cert_path: Path | str) -> DccSigner:
    """Read a signer written by save_signer; raises SignerKeyError if unreadable or mismatched."""
    try:
        key = serialization.load_pem_private_key(_read(Path(key_path), "key"), password=None)
        certificate = x509.load_pem_x509_certificate(_read(Path(cert_path), "certificate"))
    except (ValueError, TypeError) as e:
        raise SignerKeyError(f"signer key {key_path} or certificate {cert_path} is not valid PEM: {e}") from e
    if _spki(key.public_key()) != _spki(certificate.public_key()):
        raise SignerKeyError(f"signer key {key_path} does not belong to certificate {cert_path}")
    return DccSigner(_alg_of(key), key, certificate)  # type: ignore[arg-type]
