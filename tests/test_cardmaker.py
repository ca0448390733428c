"""The example-card maker: payloads that parse, QR images that decode, signer files that round-trip."""

from __future__ import annotations

import stat
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
import zxingcpp
from cryptography import x509
from PIL import Image

from kiosk import cardmaker as cm
from kiosk.cards import CccdCard, DccCard, NationalCard, parse_card
from kiosk.errors import SignerKeyError
from kiosk.trustlist import TrustList

NOW = datetime(2026, 11, 29, 9, 30, tzinfo=UTC)
VALIDITY = {"not_before": NOW - timedelta(days=30), "not_after": NOW + timedelta(days=365)}


def test_national_defaults_are_the_decision_example() -> None:
    assert (
        cm.national_payload() == "001093029317|NGUYEN VAN A|1987-01-18|0|162979388586171100|<1<00<0123232422"
    )
    assert cm.national_payload(gender=None, insurance_number="", phone="").endswith("|162979388586171100|")


def test_cccd_payloads_are_consistent_and_parse() -> None:
    text = cm.cccd_payload(birth_date=date(2004, 2, 29), gender="Nữ", province="079", serial="000001")
    assert text.startswith("079304000001||")
    card = parse_card(text.encode(), trust=None, now=NOW)
    assert isinstance(card, CccdCard) and card.birth_date == date(2004, 2, 29)
    assert cm.cccd_payload(with_old_id_field=False).count("|") == 5


def _decode(path: Path) -> bytes:
    found = zxingcpp.read_barcodes(Image.open(path))
    assert len(found) == 1
    return found[0].bytes


def test_qr_images_decode_to_the_exact_payload(tmp_path: Path) -> None:
    signer = cm.make_dcc_signer("ES256", **VALIDITY)
    dcc = cm.dcc_payload(
        cm.dcc_vaccination_complete(), signer=signer, issued_at=NOW, expires_at=NOW + timedelta(days=1)
    )
    for kind, payload, card_type in [
        ("national", cm.national_payload(), NationalCard),
        ("cccd", cm.cccd_payload(), CccdCard),
        ("dcc", dcc, DccCard),
    ]:
        path = cm.qr_png(payload, tmp_path / f"{kind}.png")
        data = _decode(path)
        assert data == payload.encode("utf-8")
        card = parse_card(data, trust=TrustList([signer.certificate]), now=NOW)
        assert isinstance(card, card_type)


@pytest.mark.parametrize("alg", ["ES256", "PS256", "EdDSA"])
def test_signer_files_round_trip(tmp_path: Path, alg: cm.Alg) -> None:
    signer = cm.make_dcc_signer(alg, **VALIDITY, key_usage=["v", "t"])  # type: ignore[arg-type]
    key, cert = tmp_path / "dsc.key", tmp_path / "dsc.pem"
    cm.save_signer(signer, key, cert)
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    loaded = cm.load_signer(key, cert)
    assert (loaded.alg, loaded.kid) == (alg, signer.kid)
    payload = cm.dcc_payload(
        cm.dcc_test_negative(sampled_at=NOW), signer=loaded, issued_at=NOW, expires_at=NOW + timedelta(days=2)
    )
    card = parse_card(payload.encode(), trust=TrustList.load(cert), now=NOW)
    assert isinstance(card, DccCard) and card.verified


def test_key_usage_goes_into_the_certificate() -> None:
    signer = cm.make_dcc_signer("EdDSA", **VALIDITY, key_usage=["r"])
    usage = signer.certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert [oid.dotted_string for oid in usage] == ["1.3.6.1.4.1.1847.2021.1.3"]
    assert signer.certificate.not_valid_after_utc == VALIDITY["not_after"]


def test_load_signer_refuses_a_mismatched_or_broken_pair(tmp_path: Path) -> None:
    one, two = (cm.make_dcc_signer("ES256", **VALIDITY) for _ in range(2))
    cm.save_signer(one, tmp_path / "one.key", tmp_path / "one.pem")
    cm.save_signer(two, tmp_path / "two.key", tmp_path / "two.pem")
    with pytest.raises(SignerKeyError, match="does not belong"):
        cm.load_signer(tmp_path / "one.key", tmp_path / "two.pem")
    (tmp_path / "junk.key").write_text("junk")
    with pytest.raises(SignerKeyError, match="not valid PEM"):
        cm.load_signer(tmp_path / "junk.key", tmp_path / "one.pem")
    with pytest.raises(SignerKeyError, match="cannot read"):
        cm.load_signer(tmp_path / "missing.key", tmp_path / "one.pem")


def test_unknown_algorithm() -> None:
    with pytest.raises(ValueError, match="ES256, PS256 or EdDSA"):
        cm.make_dcc_signer("RS256", **VALIDITY)  # type: ignore[arg-type]
