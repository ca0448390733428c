"""The trust list of document-signer certificates: loading, kid lookup, atomic reload."""

from __future__ import annotations

import hashlib
import os
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from kiosk.cardmaker import DccSigner, make_dcc_signer
from kiosk.errors import TrustListError
from kiosk.trustlist import TrustList, kid_of, read_certificates

NOW = datetime(2026, 11, 29, tzinfo=UTC)


@pytest.fixture(scope="module")
def signers() -> list[DccSigner]:
    validity = {"not_before": NOW - timedelta(days=1), "not_after": NOW + timedelta(days=365)}
    return [make_dcc_signer(alg, **validity) for alg in ("ES256", "EdDSA", "ES256")]  # type: ignore[arg-type]


def pem(signer: DccSigner) -> bytes:
    return signer.certificate.public_bytes(Encoding.PEM)


def test_kid_is_the_first_8_bytes_of_sha256_over_the_der(signers: list[DccSigner]) -> None:
    certificate = signers[0].certificate
    assert kid_of(certificate) == hashlib.sha256(certificate.public_bytes(Encoding.DER)).digest()[:8]


def test_one_pem_file_with_several_certificates(tmp_path: Path, signers: list[DccSigner]) -> None:
    path = tmp_path / "dsc.pem"
    path.write_bytes(b"".join(pem(s) for s in signers))
    trust = TrustList.load(path)
    assert len(trust) == 3
    for signer in signers:
        assert trust.lookup(signer.kid) == signer.certificate
        assert trust.certificates_for(signer.kid) == (signer.certificate,)
    assert trust.lookup(b"\x00" * 8) is None and trust.certificates_for(b"nope") == ()
    assert set(trust) == {s.certificate for s in signers}


def test_a_folder_of_pem_der_and_crt_files(tmp_path: Path, signers: list[DccSigner]) -> None:
    (tmp_path / "a.pem").write_bytes(pem(signers[0]))
    (tmp_path / "b.DER").write_bytes(signers[1].certificate.public_bytes(Encoding.DER))
    (tmp_path / "c.crt").write_bytes(pem(signers[2]))
    (tmp_path / "README.txt").write_text("not a certificate")
    (tmp_path / "sub.pem").mkdir()
    trust = TrustList.load(tmp_path)
    assert len(trust) == 3 and all(trust.lookup(s.kid) for s in signers)


def test_reload_swaps_in_the_new_list(tmp_path: Path, signers: list[DccSigner]) -> None:
    path = tmp_path / "dsc.pem"
    path.write_bytes(pem(signers[0]))
    trust = TrustList.load(path)
    path.write_bytes(pem(signers[1]) + pem(signers[2]))
    trust.reload()
    assert len(trust) == 2 and trust.lookup(signers[0].kid) is None and trust.lookup(signers[1].kid)


def test_a_bad_file_on_reload_raises_and_keeps_the_old_list(tmp_path: Path, signers: list[DccSigner]) -> None:
    path = tmp_path / "dsc.pem"
    path.write_bytes(pem(signers[0]))
    trust = TrustList.load(path)
    path.write_bytes(b"-----BEGIN CERTIFICATE-----\ngarbage\n-----END CERTIFICATE-----\n")
    with pytest.raises(TrustListError, match=r"dsc\.pem"):
        trust.reload()
    assert len(trust) == 1 and trust.lookup(signers[0].kid) is not None


@pytest.mark.parametrize(
    "content", [b"garbage", b"", b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"]
)
def test_garbage_files_name_the_file(tmp_path: Path, content: bytes) -> None:
    (tmp_path / "good.pem").write_bytes(b"")
    bad = tmp_path / "broken.der"
    bad.write_bytes(content)
    with pytest.raises(TrustListError, match=r"broken\.der") as caught:
        TrustList.load(bad)
    assert isinstance(caught.value, ValueError)


def test_missing_path_and_empty_folder(tmp_path: Path) -> None:
    with pytest.raises(TrustListError, match="does not exist"):
        TrustList.load(tmp_path / "missing.pem")
    with pytest.raises(TrustListError, match="no certificates"):
        TrustList.load(tmp_path)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_an_unreadable_file_names_the_file(tmp_path: Path, signers: list[DccSigner]) -> None:
    path = tmp_path / "secret.pem"
    path.write_bytes(pem(signers[0]))
    path.chmod(0)
    with pytest.raises(TrustListError, match=r"secret\.pem.*cannot be read"):
        TrustList.load(path)


def test_an_in_memory_list_cannot_reload(signers: list[DccSigner]) -> None:
    trust = TrustList([s.certificate for s in signers])
    assert len(trust) == 3
    with pytest.raises(TrustListError, match="not loaded from a file"):
        trust.reload()


def test_readers_see_the_whole_old_or_the_whole_new_list_during_reloads(
    tmp_path: Path, signers: list[DccSigner]
) -> None:
    path = tmp_path / "dsc.pem"
    contents = [pem(signers[0]), pem(signers[1]) + pem(signers[2])]
    path.write_bytes(contents[0])
    trust = TrustList.load(path)
    seen: set[frozenset] = set()
    stop = threading.Event()

    def read() -> None:
        while not stop.is_set():
            seen.add(frozenset(trust))

    reader = threading.Thread(target=read, name="trust-reader")
    reader.start()
    try:
        for i in range(40):
            path.write_bytes(contents[i % 2])
            trust.reload()
    finally:
        stop.set()
        reader.join(timeout=5)
    assert not reader.is_alive()
    old, new = frozenset([signers[0].certificate]), frozenset(s.certificate for s in signers[1:])
    assert seen and seen <= {old, new}


def test_a_file_that_cannot_be_read_names_the_file(tmp_path: Path) -> None:
    folder_as_file = tmp_path / "dsc.pem"
    folder_as_file.mkdir()
    with pytest.raises(TrustListError, match=r"dsc\.pem.*cannot be read"):
        read_certificates(folder_as_file)
