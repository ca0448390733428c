"""Trust material for tests: an authority key, a document signer, a status list, in a signed bundle."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from kiosk import cardmaker, keys, sealing, statuslist
from kiosk.bundle import Bundle, BundleContent, DestinationRecord, keys_pem, make_bundle, read_bundle
from kiosk.jws import b64url
from tests.support.central import SEALER, SEALING_KEY


def test_bundle(folder: Path, *, destination: str = "cho-ben-thanh", broker_ca: Path | None = None) -> Bundle:
    """A checked bundle signed by a new authority key kept in `folder` (authority.key, dsc.key)."""
    folder.mkdir(parents=True, exist_ok=True)
    now = datetime.now(UTC)
    key = keys.generate_device_key(folder / "authority.key", overwrite=True)
    signer = cardmaker.make_dcc_signer(
        not_before=now - timedelta(days=1), not_after=now + timedelta(days=365)
    )
    cardmaker.save_signer(signer, folder / "dsc.key", folder / "dsc.pem")
    status = statuslist.build_payload([], version=1, issued=now)
    content = BundleContent(
        issued=now,
        authority_keys=keys_pem({keys.thumbprint(key.public_key()): key.public_key()}),
        trust_list=(folder / "dsc.pem").read_text(),
        trust_list_version=1,
        status_list=statuslist.sign_payload(status, key).decode(),
        broker_ca=broker_ca.read_text() if broker_ca else None,
        destination=DestinationRecord(
            id=destination, venue_name="Chợ Bến Thành", district="Quận 1", ward="Bến Thành"
        ),
        sealing_key=sealing.public_pem(SEALING_KEY.public_key()),
        destination_key=b64url(SEALER.destination_key),
    )
    return read_bundle(make_bundle(content, key))


test_bundle.__test__ = False  # type: ignore[attr-defined]  # a helper, despite the name
