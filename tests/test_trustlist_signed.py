"""The authority's signed, versioned trust list: verified, newer versions only, kept across a restart."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding
from hypothesis import given
from hypothesis import strategies as st

from kiosk import cardmaker, jws, keys
from kiosk.app import LiveSettings, open_trust_list, open_trust_store, reload_all
from kiosk.config import load_config, parse_config
from kiosk.errors import TrustListError
from kiosk.policy import Policy
from kiosk.spool import Spool
from kiosk.statuslist import StatusListStore
from kiosk.topics import trustlist_topic
from kiosk.trustlist import (
    TOKEN_FILE,
    TOKEN_TYP,
    TrustList,
    TrustListStore,
    kid_of,
    sign_trust_list,
    verify_trust_list,
)
from tests.support import broker as broker_support
from tests.support.broker import Mosquitto
from tests.test_uplink import AUTHORITY as AUTHORITY_SIGNER
from tests.test_uplink import AUTHORITY_KEYS, spool, uplink_settings, uplinks, wait_until

mosquitto = broker_support.mosquitto  # fixtures are found by module attribute name
mosquitto_factory = broker_support.mosquitto_factory
__all__ = ["spool", "uplinks"]  # fixtures

NOW = datetime.now(UTC)
AUTHORITY = Ed25519PrivateKey.generate()
KEYS = {keys.thumbprint(AUTHORITY.public_key()): AUTHORITY.public_key()}


def signer() -> cardmaker.DccSigner:
    """A new document signer valid for a year."""
    return cardmaker.make_dcc_signer(not_before=NOW - timedelta(days=1), not_after=NOW + timedelta(days=365))


def token(version: int, *signers: cardmaker.DccSigner, key: Ed25519PrivateKey = AUTHORITY) -> bytes:
    """A signed trust list of `signers`' certificates."""
    return sign_trust_list([s.certificate for s in signers], version=version, issued=NOW, key=key)


def test_a_signed_list_round_trips() -> None:
    first, second = signer(), signer()
    verified = verify_trust_list(token(3, first, second), KEYS)
    assert verified.version == 3 and [kid_of(c) for c in verified.certificates] == [first.kid, second.kid]


def test_a_newer_list_replaces_the_one_in_force_and_an_older_is_refused(tmp_path: Path) -> None:
    old, new = signer(), signer()
    trust = TrustList([old.certificate])
    store = TrustListStore(trust, KEYS, path=tmp_path / "trustlist.jws")
    assert store.offer(token(5, new))
    assert trust.lookup(new.kid) is not None and trust.lookup(old.kid) is None
    assert not store.offer(token(5, new))  # the retained message again
    with pytest.raises(TrustListError, match="version 4 refused: version 5 is in force"):
        store.offer(token(4, old))
    assert trust.lookup(old.kid) is None and store.version == 5


def test_the_newest_list_is_kept_across_a_restart(tmp_path: Path) -> None:
    new = signer()
    TrustListStore(TrustList(), KEYS, path=tmp_path / "trustlist.jws").offer(token(9, new))
    trust = TrustList()
    store = TrustListStore(trust, KEYS, path=tmp_path / "trustlist.jws")
    assert store.version == 9 and trust.lookup(new.kid) is not None


def test_a_list_signed_by_another_key_changes_nothing(tmp_path: Path) -> None:
    kept = signer()
    trust = TrustList([kept.certificate])
    store = TrustListStore(trust, KEYS, path=tmp_path / "trustlist.jws")
    with pytest.raises(TrustListError, match="unknown key id"):
        store.offer(token(1, signer(), key=Ed25519PrivateKey.generate()))
    assert trust.lookup(kept.kid) is not None and store.version is None
    assert not (tmp_path / "trustlist.jws").exists()


def test_a_status_list_is_not_a_trust_list() -> None:
    other = jws.sign(b"{}", AUTHORITY, kid=keys.thumbprint(AUTHORITY.public_key()), typ="kiosk-statuslist")
    with pytest.raises(TrustListError, match="not a trust list"):
        verify_trust_list(other, KEYS)


@given(st.binary(max_size=300))
def test_any_signed_payload_is_a_list_or_a_clear_refusal(payload: bytes) -> None:
    signed = jws.sign(payload, AUTHORITY, kid=keys.thumbprint(AUTHORITY.public_key()), typ=TOKEN_TYP)
    with pytest.raises(TrustListError):
        verify_trust_list(signed, KEYS)


@given(st.lists(st.text(max_size=40), max_size=3), st.integers())
def test_hostile_certificates_and_versions_are_refused(certificates: list[str], version: int) -> None:
    body = {"format": 1, "version": version, "issued": NOW.isoformat(), "certificates": certificates}
    signed = jws.sign(
        json.dumps(body).encode(),
        AUTHORITY,
        kid=keys.thumbprint(AUTHORITY.public_key()),
        typ=TOKEN_TYP,
    )
    try:
        verified = verify_trust_list(signed, KEYS)
    except TrustListError:
        return
    assert verified.version >= 1 and len(verified.certificates) == len(certificates)


# --- on the retained topic, through a real mosquitto; and offline, by SIGHUP -------------------


@pytest.mark.broker
def test_a_trust_list_published_while_the_kiosk_runs_is_applied(
    mosquitto: Mosquitto, spool: Spool, uplinks, tmp_path: Path
) -> None:
    trust = TrustList([signer().certificate])
    store = TrustListStore(trust, AUTHORITY_KEYS, path=tmp_path / TOKEN_FILE)
    uplink = uplinks(uplink_settings(mosquitto), spool, on_trustlist=store.offer)
    wait_until(lambda: uplink.connected, 10, "the uplink to connect")
    new = signer()
    _publish_retained(mosquitto, token(2, new, key=AUTHORITY_SIGNER))
    wait_until(lambda: store.version == 2, 10, "trust list version 2")
    assert trust.lookup(new.kid) is not None
    _publish_retained(mosquitto, token(1, signer(), key=AUTHORITY_SIGNER))
    wait_until(lambda: uplink.stats().rejected.get("trustlist_refused") == 1, 10, "the older list refused")
    assert store.version == 2 and trust.lookup(new.kid) is not None
    assert verify_trust_list((tmp_path / TOKEN_FILE).read_bytes(), AUTHORITY_KEYS).version == 2


def _publish_retained(broker: Mosquitto, payload: bytes) -> None:
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="test-central", protocol=mqtt.MQTTv5)
    client.connect(broker.host, broker.port)
    client.loop_start()
    try:
        client.publish(trustlist_topic(), payload, qos=1, retain=True).wait_for_publish(10)
    finally:
        client.disconnect()
        client.loop_stop()


def test_sighup_applies_a_list_copied_by_hand_and_keeps_the_newest(tmp_path: Path) -> None:
    pem = tmp_path / "trustlist.pem"
    provisioned = signer()
    pem.write_bytes(provisioned.certificate.public_bytes(Encoding.PEM))
    trust = TrustList.load(pem)
    store = TrustListStore(trust, KEYS, path=tmp_path / TOKEN_FILE)
    live = LiveSettings(load_config(None), None)
    statuslist = StatusListStore(KEYS)
    reload = partial(
        reload_all, live, trust=trust, trust_store=store, statuslist=statuslist, policy=_policy()
    )
    newer = signer()
    (tmp_path / TOKEN_FILE).write_bytes(token(3, newer))  # the offline procedure: copy, then SIGHUP
    reload()
    assert store.version == 3 and trust.lookup(newer.kid) and not trust.lookup(provisioned.kid)
    reload()  # the file list is re-read, the signed one still wins
    assert trust.lookup(newer.kid) and not trust.lookup(provisioned.kid)
    (tmp_path / TOKEN_FILE).write_bytes(token(2, signer()))
    reload()  # older: refused, logged, the newest stays
    assert store.version == 3 and trust.lookup(newer.kid) and not trust.lookup(provisioned.kid)


def _policy() -> Policy:
    settings = load_config(None)
    return Policy(settings.policy, settings.destination)


def test_a_kiosk_provisioned_without_a_trust_list_takes_the_first_signed_one(tmp_path: Path) -> None:
    pem = tmp_path / "authority.pem"
    pem.write_text(keys.public_pem(AUTHORITY.public_key()))
    settings = parse_config({"policy": {"authority_keys": str(pem)}, "paths": {"state_dir": str(tmp_path)}})
    trust = open_trust_list(settings)
    store = open_trust_store(settings, trust)
    assert trust is not None and store is not None and len(trust) == 0
    first = signer()
    assert store.offer(token(1, first))  # from the broker: there is nothing to be older than
    assert trust.lookup(first.kid) is not None
    restarted = open_trust_list(settings)
    assert restarted is not None and open_trust_store(settings, restarted) is not None
    assert restarted.lookup(first.kid) is not None  # kept in the state folder
    reload_all(LiveSettings(settings, None), trust=restarted, trust_store=None,
               statuslist=StatusListStore(KEYS), policy=_policy())  # fmt: skip  # SIGHUP
    assert restarted.lookup(first.kid) is not None


def test_without_the_authority_keys_there_is_no_trust_list_to_keep() -> None:
    settings = load_config(None)
    assert settings.policy.trust_list is None and settings.policy.authority_keys is None
    assert open_trust_list(settings) is None


def test_the_selftest_sees_the_saved_signed_list_in_force(tmp_path: Path) -> None:
    from kiosk.trustcheck import check_trust_list

    pem = tmp_path / "authority.pem"
    pem.write_text(keys.public_pem(AUTHORITY.public_key()))
    settings = parse_config({"policy": {"authority_keys": str(pem)}, "paths": {"state_dir": str(tmp_path)}})
    assert check_trust_list(settings, None).status == "fail"
    (tmp_path / TOKEN_FILE).write_bytes(token(4, signer(), signer()))
    result = check_trust_list(settings, None)
    assert result.status == "pass" and "version 4: 2 document signer(s), 2 in force" in result.detail
    (tmp_path / TOKEN_FILE).write_bytes(token(5, signer(), key=Ed25519PrivateKey.generate()))
    assert check_trust_list(settings, None).status == "fail"  # not the authority's: not in force
