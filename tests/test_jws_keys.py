"""JWS EdDSA tokens and key files: fixed vectors, an independent verifier, file modes."""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from kiosk import jws, keys
from kiosk.errors import DeviceKeyError, SignatureError

# RFC 8037 appendix A.1 key; the expected token is A.4 (payload "Example of Ed25519 signing").
RFC8037_D = bytes.fromhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
RFC8037_TOKEN = (
    b"eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc."
    b"hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg"
)


def test_rfc8037_vector_verifies() -> None:
    key = Ed25519PrivateKey.from_private_bytes(RFC8037_D)
    # The RFC's header has no kid; ours always names one, so check the signature math directly.
    signing_input, _, signature = RFC8037_TOKEN.rpartition(b".")
    key.public_key().verify(jws.b64url_decode(signature), signing_input)
    assert key.sign(signing_input) == jws.b64url_decode(signature)


def test_sign_then_verify_round_trip() -> None:
    key = Ed25519PrivateKey.generate()
    token = jws.sign(b'{"seq":1}', key, kid="kiosk-1", typ="kiosk-event")
    verified = jws.verify(token, key.public_key())
    assert verified.payload == b'{"seq":1}'
    assert verified.kid == "kiosk-1"
    assert verified.header["typ"] == "kiosk-event"


def test_independent_library_verifies_our_token() -> None:
    from joserfc import jws as other
    from joserfc.jwk import OKPKey

    key = Ed25519PrivateKey.generate()
    token = jws.sign(b"payload bytes", key, kid="dev")
    public = OKPKey.import_key(keys.public_jwk(key.public_key()))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # joserfc flags alg EdDSA as superseded by RFC 9864
        obj = other.deserialize_compact(token.decode(), public, algorithms=["EdDSA"])
    assert obj.payload == b"payload bytes"


@pytest.mark.parametrize(
    ("mangle", "fragment"),
    [
        (lambda t: t[:-3] + (b"AAA" if not t.endswith(b"AAA") else b"BBB"), "bad signature"),
        (lambda t: t.replace(b".", b"", 1), "three"),
        (lambda t: b"e30." + t.split(b".", 1)[1], "alg"),
        (lambda t: t.split(b".")[0] + b".eyJ4IjoxfQ." + t.split(b".")[2], "bad signature"),
        (lambda t: t + b"=", "padded"),
    ],
)
def test_tampered_tokens_are_refused(mangle, fragment: str) -> None:
    key = Ed25519PrivateKey.generate()
    token = jws.sign(b'{"x":0}', key, kid="dev")
    with pytest.raises(SignatureError, match=fragment):
        jws.verify(mangle(token), key.public_key())


def test_unknown_kid_and_wrong_key() -> None:
    key = Ed25519PrivateKey.generate()
    token = jws.sign(b"{}", key, kid="dev")
    with pytest.raises(SignatureError, match="unknown key id"):
        jws.verify(token, lambda kid: None)
    with pytest.raises(SignatureError, match="bad signature"):
        jws.verify(token, Ed25519PrivateKey.generate().public_key())


def test_header_must_be_json_object() -> None:
    with pytest.raises(SignatureError):
        jws.verify(jws.b64url(b"[1]") + ".e30.AAAA", Ed25519PrivateKey.generate().public_key())


def test_device_key_is_0600_and_not_replaced(tmp_path: Path) -> None:
    path = tmp_path / "state" / "device.key"
    key = keys.generate_device_key(path)
    assert path.stat().st_mode & 0o777 == 0o600
    with pytest.raises(DeviceKeyError, match="--force"):
        keys.generate_device_key(path)
    assert keys.load_private_key(path).public_key() == key.public_key()
    assert list(path.parent.iterdir()) == [path], "no temporary file is left behind"


def test_readable_key_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "device.key"
    keys.generate_device_key(path)
    os.chmod(path, 0o644)
    with pytest.raises(DeviceKeyError, match="chmod 600"):
        keys.load_private_key(path)


def test_identity_key_length_checked(tmp_path: Path) -> None:
    path = tmp_path / "identity.key"
    assert len(keys.generate_identity_key(path)) == 32
    keys.write_secret(path, b"short", overwrite=True)
    with pytest.raises(DeviceKeyError, match="32 bytes"):
        keys.load_identity_key(path)


def test_public_keys_file_with_several_keys(tmp_path: Path) -> None:
    a, b = Ed25519PrivateKey.generate().public_key(), Ed25519PrivateKey.generate().public_key()
    path = tmp_path / "authority.pem"
    path.write_text(keys.public_pem(a) + keys.public_pem(b))
    loaded = keys.load_public_keys(path)
    assert set(loaded) == {keys.thumbprint(a), keys.thumbprint(b)}
    path.write_text("garbage")
    with pytest.raises(DeviceKeyError, match="no PEM public key"):
        keys.load_public_keys(path)


def test_thumbprint_matches_rfc7638_example_shape() -> None:
    key = Ed25519PrivateKey.from_private_bytes(RFC8037_D).public_key()
    # RFC 8037 A.3: thumbprint of the A.1 public key.
    assert keys.thumbprint(key) == "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
    assert json.loads(json.dumps(keys.public_jwk(key)))["x"] == "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"
