"""The decision rules: every rule and every decision-level reason code, on real parsed cards."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from kiosk import cardmaker, sealing
from kiosk import statuslist as sl
from kiosk.cards import Card, Rejection, parse_card
from kiosk.config import DestinationConfig, PolicyConfig
from kiosk.policy import Decision, Policy, listed_status
from kiosk.reasons import Reason
from kiosk.trustlist import TrustList

NOW = datetime(2021, 10, 1, 3, 0, tzinfo=UTC)  # 10:00 in Hanoi
SIGNER = cardmaker.make_dcc_signer(not_before=NOW - timedelta(days=30), not_after=NOW + timedelta(days=700))
TRUST = TrustList([SIGNER.certificate])
QID = "162979388586171100"
DECISION_REASONS = {
    Reason.OK,
    Reason.FORMAT_NOT_ACCEPTED,
    Reason.STATUS_BLOCKED,
    Reason.DCC_TYPE_NOT_ACCEPTED,
    Reason.DCC_VACCINATION_INCOMPLETE,
    Reason.DCC_VACCINATION_TOO_RECENT,
    Reason.DCC_TEST_TOO_OLD,
    Reason.DCC_TEST_POSITIVE,
    Reason.DCC_RECOVERY_EXPIRED,
    Reason.DCC_NOT_VERIFIABLE,
    Reason.CAPACITY_FULL,
}


def _card(payload: str, *, trust: TrustList | None = None) -> Card:
    card = parse_card(payload.encode(), trust=trust, now=NOW)
    assert isinstance(card, Card), card
    return card


def _rejection(payload: bytes) -> Rejection:
    item = parse_card(payload, trust=None, now=NOW)
    assert isinstance(item, Rejection)
    return item


def national(qid: str = QID, **fields: Any) -> Card:
    return _card(cardmaker.national_payload(qid=qid, **fields))


def cccd(**fields: Any) -> Card:
    return _card(cardmaker.cccd_payload(**fields))


def dcc(certificate: dict, *, verified: bool = True) -> Card:
    payload = cardmaker.dcc_payload(
        certificate, signer=SIGNER, issued_at=NOW - timedelta(days=1), expires_at=NOW + timedelta(days=365)
    )
    return _card(payload, trust=TRUST if verified else None)


def policy(
    *, destination: dict | None = None, statuslist: sl.StatusList | None = None, **rules: Any
) -> Policy:
    return Policy(PolicyConfig(**rules), DestinationConfig(**(destination or {})), statuslist=statuslist)


def status_list(*entries: tuple[str, str, datetime | None]) -> sl.StatusList:
    key = Ed25519PrivateKey.generate()
    rows = [sl.Entry(identity, sl.Status(code, until)) for identity, code, until in entries]
    token = sl.sign_payload(sl.build_payload(rows, version=1, issued=NOW), key)
    return sl.verify_token(token, key.public_key())


AUTO = {"direction": "auto", "presence_timeout_s": 3600}

# One scenario per decision-level reason code: what is decided, and by which policy.
SCENARIOS: dict[Reason, Callable[[], Decision]] = {
    Reason.OK: lambda: policy().decide(national(), now=NOW),
    Reason.FORMAT_NOT_ACCEPTED: lambda: policy(accepted_formats=["dcc"]).decide(cccd(), now=NOW),
    Reason.STATUS_BLOCKED: lambda: policy(statuslist=status_list((QID, "F0", None))).decide(
        national(), now=NOW
    ),
    Reason.DCC_TYPE_NOT_ACCEPTED: lambda: policy(dcc={"accepted_types": ["vaccination"]}).decide(
        dcc(cardmaker.dcc_test_negative(sampled_at=NOW - timedelta(hours=2))), now=NOW
    ),
    Reason.DCC_VACCINATION_INCOMPLETE: lambda: policy().decide(
        dcc(cardmaker.dcc_vaccination_incomplete(on=date(2021, 8, 1))), now=NOW
    ),
    Reason.DCC_VACCINATION_TOO_RECENT: lambda: policy().decide(
        dcc(cardmaker.dcc_vaccination_complete(on=date(2021, 9, 25))), now=NOW
    ),
    Reason.DCC_TEST_TOO_OLD: lambda: policy().decide(
        dcc(cardmaker.dcc_test_negative(sampled_at=NOW - timedelta(hours=80))), now=NOW
    ),
    Reason.DCC_TEST_POSITIVE: lambda: policy().decide(
        dcc(cardmaker.dcc_test_result(sampled_at=NOW - timedelta(hours=2), positive=True)), now=NOW
    ),
    Reason.DCC_RECOVERY_EXPIRED: lambda: policy().decide(
        dcc(
            cardmaker.dcc_recovery(
                first_positive=date(2021, 1, 1), valid_from=date(2021, 1, 12), valid_until=date(2021, 7, 1)
            )
        ),
        now=NOW,
    ),
    Reason.DCC_NOT_VERIFIABLE: lambda: policy().decide(
        dcc(cardmaker.dcc_vaccination_complete(), verified=False), now=NOW
    ),
    Reason.CAPACITY_FULL: lambda: _full_venue(),
}


def _full_venue() -> Decision:
    venue = policy(destination={**AUTO, "capacity": 1})
    assert venue.decide(national(), now=NOW).passed
    return venue.decide(cccd(), now=NOW)


def test_every_decision_level_reason_has_a_scenario() -> None:
    assert set(SCENARIOS) == DECISION_REASONS


@pytest.mark.parametrize("reason", sorted(DECISION_REASONS))
def test_each_decision_reason_is_produced_with_messages_in_both_languages(reason: Reason) -> None:
    decision = SCENARIOS[reason]()
    assert decision.reason is reason
    assert decision.verdict == ("pass" if reason is Reason.OK else "fail")
    assert decision.message_vi and decision.message_en
    assert decision.message_vi != decision.message_en
    assert "{" not in decision.message_vi + decision.message_en


def test_a_pass_carries_everything_the_screen_and_event_need() -> None:
    card = national()
    decision = policy().decide(card, now=NOW)
    assert decision == Decision(
        verdict="pass", reason=Reason.OK, direction="in", identity=QID, masked_name=card.masked_name,
        format="national", at=NOW, identities=card.identities,
    )  # fmt: skip
    assert decision.identities == (QID, card.id_number)  # every identity of the card, primary first
    assert decision.passed and not decision.repeat and decision.clock_synced and decision.status is None
    assert card.masked_name in decision.message("vi") and decision.message("vi").startswith("Mời vào")
    assert decision.message_en.startswith("Welcome")


def test_a_rejection_becomes_a_fail_with_its_reason() -> None:
    rejection = parse_card(b"https://example.com/venue/123", trust=None, now=NOW)
    assert isinstance(rejection, Rejection)
    decision = policy().decide(rejection, now=NOW)
    assert (decision.verdict, decision.reason, decision.direction) == ("fail", Reason.OLD_VENUE_QR, None)
    assert decision.identity is None and decision.format == "poster"
    assert decision.message_vi == rejection.message("vi")


# ---------------------------------------------------------------- status list


def test_a_blocked_status_names_the_status_on_screen() -> None:
    decision = SCENARIOS[Reason.STATUS_BLOCKED]()
    assert decision.status == "F0"
    assert "(F0)" in decision.message_vi and "(F0)" in decision.message_en


def test_other_statuses_are_only_flagged() -> None:
    decision = policy(statuslist=status_list((QID, "F2", None))).decide(national(), now=NOW)
    assert (decision.verdict, decision.status) == ("pass", "F2")


def test_the_blocked_codes_come_from_the_config() -> None:
    listed = status_list((QID, "F2", None))
    assert (
        policy(statuslist=listed, blocked_statuses=["F2"]).decide(national(), now=NOW).reason
        is Reason.STATUS_BLOCKED
    )


def test_a_status_past_its_until_time_no_longer_applies() -> None:
    listed = status_list((QID, "quarantine", NOW - timedelta(minutes=1)))
    decision = policy(statuslist=listed).decide(national(), now=NOW)
    assert (decision.verdict, decision.status) == ("pass", None)
    listed = status_list((QID, "quarantine", NOW + timedelta(minutes=1)))
    assert policy(statuslist=listed).decide(national(), now=NOW).reason is Reason.STATUS_BLOCKED


def test_a_status_store_is_accepted_in_place_of_a_list() -> None:
    key = Ed25519PrivateKey.generate()
    store = sl.StatusListStore(key.public_key())
    venue = Policy(PolicyConfig(), DestinationConfig(), statuslist=store)
    assert venue.decide(national(), now=NOW).passed
    rows = [sl.Entry(QID, sl.Status("F1"))]
    store.offer(sl.sign_payload(sl.build_payload(rows, version=2, issued=NOW), key))
    later = NOW + timedelta(minutes=1)
    assert venue.decide(national(), now=later).reason is Reason.STATUS_BLOCKED


def test_a_card_without_identity_is_not_looked_up() -> None:
    card = national(qid="", id_number="****93029317")
    assert card.identity is None
    decision = policy(statuslist=status_list((QID, "F0", None))).decide(card, now=NOW)
    assert decision.passed and decision.identity is None


CITIZEN = "001093029317"  # the SoGiayTo of the national example, and a CCCD number
OLD_ID = "012345678"


def citizen_cccd(old_id: str = "") -> Card:
    return cccd(serial="029317", old_id=old_id)  # id 001093029317: born 1993, man, Hanoi


def test_a_listed_citizen_number_is_found_on_the_national_qr_that_carries_it() -> None:
    listed = status_list((CITIZEN, "F0", None))
    example = national()
    assert (example.identity, example.identities) == (QID, (QID, CITIZEN))
    decision = policy(statuslist=listed).decide(example, now=NOW)
    assert (decision.reason, decision.status, decision.identity) == (Reason.STATUS_BLOCKED, "F0", QID)
    assert "(F0)" in decision.message_en
    assert policy(statuslist=listed).decide(national(qid=""), now=NOW).reason is Reason.STATUS_BLOCKED
    assert policy(statuslist=listed).decide(citizen_cccd(), now=NOW).reason is Reason.STATUS_BLOCKED


def test_a_listed_old_id_number_is_found_on_the_cccd_and_the_national_qr() -> None:
    listed = status_list((OLD_ID, "quarantine", NOW + timedelta(days=3)))
    card = citizen_cccd(old_id=OLD_ID)
    assert card.identities == (CITIZEN, OLD_ID)
    assert policy(statuslist=listed).decide(card, now=NOW).reason is Reason.STATUS_BLOCKED
    by_old_id = national(id_number=OLD_ID)
    assert policy(statuslist=listed).decide(by_old_id, now=NOW).reason is Reason.STATUS_BLOCKED


def test_a_blocked_status_on_any_identity_wins_over_a_flag_or_an_ended_status() -> None:
    listed = status_list((QID, "F2", None), (CITIZEN, "F1", None))
    decision = policy(statuslist=listed).decide(national(), now=NOW)
    assert (decision.reason, decision.status) == (Reason.STATUS_BLOCKED, "F1")
    ended = status_list((QID, "quarantine", NOW - timedelta(days=1)), (CITIZEN, "F2", None))
    decision = policy(statuslist=ended).decide(national(), now=NOW)
    assert (decision.verdict, decision.status) == ("pass", "F2")


def test_listed_status_looks_up_every_identity_of_a_card() -> None:
    ended = sl.Status("quarantine", NOW - timedelta(days=1))
    listed = status_list((QID, ended.code, ended.until), (CITIZEN, "F2", None))
    assert listed_status(listed, national(), NOW) == sl.Status("F2")
    assert listed_status(listed, national(id_number="****93029317"), NOW) == ended  # shown as ended
    both = status_list((QID, "F2", None), (CITIZEN, "F0", None))
    assert listed_status(both, national(), NOW) == sl.Status("F0")
    assert listed_status(both, national(), NOW, blocked=["F2"]) == sl.Status("F2")
    assert listed_status(both, citizen_cccd(), NOW) == sl.Status("F0")
    assert listed_status(both, cccd(), NOW) is None
    assert listed_status(None, national(), NOW) is None
    assert listed_status(both, Rejection(reason=Reason.UNRECOGNISED), NOW) is None


def test_listed_status_reads_a_store() -> None:
    key = Ed25519PrivateKey.generate()
    store = sl.StatusListStore(key.public_key())
    assert listed_status(store, national(), NOW) is None
    store.offer(
        sl.sign_payload(sl.build_payload([sl.Entry(CITIZEN, sl.Status("F0"))], version=1, issued=NOW), key)
    )
    assert listed_status(store, national(), NOW) == sl.Status("F0")


# ---------------------------------------------------------------- vaccine passports


def test_a_complete_vaccination_old_enough_passes() -> None:
    decision = policy().decide(dcc(cardmaker.dcc_vaccination_complete(on=date(2021, 9, 17))), now=NOW)
    assert decision.passed and decision.format == "dcc" and decision.identity.startswith("URN:UVCI:")


def test_the_days_after_the_last_dose_count_in_vietnam_time() -> None:
    card = dcc(cardmaker.dcc_vaccination_complete(on=date(2021, 9, 17)))
    evening_utc = datetime(2021, 9, 30, 16, 59, tzinfo=UTC)  # 23:59 on 30 September in Hanoi
    assert policy().decide(card, now=evening_utc).reason is Reason.DCC_VACCINATION_TOO_RECENT
    assert policy().decide(card, now=evening_utc + timedelta(minutes=1)).passed


def test_too_recent_says_how_many_days_remain() -> None:
    decision = SCENARIOS[Reason.DCC_VACCINATION_TOO_RECENT]()
    assert decision.details["days"] == 8
    assert "8" in decision.message_en


def test_incomplete_shows_the_dose_and_may_be_allowed() -> None:
    decision = SCENARIOS[Reason.DCC_VACCINATION_INCOMPLETE]()
    assert "(1/2)" in decision.message_vi
    card = dcc(cardmaker.dcc_vaccination_incomplete(on=date(2021, 8, 1)))
    assert policy(dcc={"complete_vaccination": False}).decide(card, now=NOW).passed


def test_a_recent_negative_test_passes_until_its_age_limit() -> None:
    card = dcc(cardmaker.dcc_test_negative(sampled_at=NOW - timedelta(hours=70)))
    assert policy().decide(card, now=NOW).passed
    assert policy(dcc={"test_max_age_hours": 48}).decide(card, now=NOW).reason is Reason.DCC_TEST_TOO_OLD


def test_a_test_sampled_in_the_future_is_not_yet_valid() -> None:
    ahead = dcc(cardmaker.dcc_test_negative(sampled_at=NOW + timedelta(hours=1)))
    assert policy().decide(ahead, now=NOW).reason is Reason.DCC_NOT_YET_VALID
    skewed = dcc(cardmaker.dcc_test_negative(sampled_at=NOW + timedelta(minutes=4)))
    assert policy().decide(skewed, now=NOW).passed  # within the kiosk clock's allowed lag


def test_recovery_rules() -> None:
    recovered = cardmaker.dcc_recovery(
        first_positive=date(2021, 8, 1), valid_from=date(2021, 8, 12), valid_until=date(2022, 1, 28)
    )
    card = dcc(recovered)
    assert policy().decide(card, now=NOW).passed
    assert policy(dcc={"recovery_max_days": 30}).decide(card, now=NOW).reason is Reason.DCC_RECOVERY_EXPIRED
    early = datetime(2021, 8, 5, tzinfo=UTC)
    assert policy().decide(card, now=early).reason is Reason.DCC_NOT_YET_VALID


def test_unverified_passports_may_be_allowed_by_config() -> None:
    card = dcc(cardmaker.dcc_vaccination_complete(), verified=False)
    assert policy(dcc={"require_verified": False}).decide(card, now=NOW).passed


@pytest.mark.parametrize(
    ("accepted", "kind_ok"), [(["vaccination", "recovery"], False), (["test"], True), (["recovery"], False)]
)
def test_accepted_certificate_types(accepted: list[str], kind_ok: bool) -> None:
    card = dcc(cardmaker.dcc_test_negative(sampled_at=NOW - timedelta(hours=1)))
    decision = policy(dcc={"accepted_types": accepted}).decide(card, now=NOW)
    assert decision.passed is kind_ok
    assert kind_ok or decision.reason is Reason.DCC_TYPE_NOT_ACCEPTED


# ---------------------------------------------------------------- repeats


def test_the_same_identity_within_the_window_is_a_repeat() -> None:
    venue = policy(repeat_window_s=10)
    first = venue.decide(national(), now=NOW)
    again = venue.decide(national(), now=NOW + timedelta(seconds=9))
    assert again.repeat and not first.repeat
    assert (again.verdict, again.reason, again.identity) == (first.verdict, first.reason, first.identity)
    assert again.at == NOW + timedelta(seconds=9)


def test_the_window_slides_while_the_code_stays_in_view() -> None:
    venue = policy(repeat_window_s=10)
    for second in range(0, 60, 5):
        decision = venue.decide(national(), now=NOW + timedelta(seconds=second))
        assert decision.repeat is (second > 0)
    assert not venue.decide(national(), now=NOW + timedelta(seconds=66)).repeat


def test_a_window_of_zero_never_repeats() -> None:
    venue = policy(repeat_window_s=0)
    assert not venue.decide(national(), now=NOW).repeat
    assert not venue.decide(national(), now=NOW).repeat


def test_rejections_repeat_by_payload() -> None:
    venue = policy()
    junk = parse_card(b"hello", trust=None, now=NOW)
    other = parse_card(b"goodbye", trust=None, now=NOW)
    assert isinstance(junk, Rejection) and isinstance(other, Rejection)
    assert not venue.decide(junk, now=NOW, payload=b"hello").repeat
    assert venue.decide(junk, now=NOW, payload=b"hello").repeat
    assert not venue.decide(other, now=NOW, payload=b"goodbye").repeat
    assert venue.decide(other, now=NOW).repeat is False
    assert venue.decide(other, now=NOW).repeat is True  # without the bytes, the same rejection


DESTINATION_KEY = bytes(range(32))


def tagged(**rules: Any) -> Policy:
    """A policy keyed as the daemon's is: presence and repeats by the destination key's tags."""
    return Policy(PolicyConfig(**rules), DestinationConfig(**AUTO),
                  presence_keys=lambda identity: (sealing.tag(DESTINATION_KEY, identity),))  # fmt: skip


def reachable_text(root: object) -> list[str | bytes]:
    """Every str and bytes reachable from `root` through attributes, slots and containers."""
    found: list[str | bytes] = []
    seen: set[int] = set()
    stack = [root]
    while stack:
        obj = stack.pop()
        if id(obj) in seen or isinstance(obj, type) or callable(obj):
            continue
        seen.add(id(obj))
        if isinstance(obj, str | bytes):
            found.append(obj)
        elif isinstance(obj, dict):
            stack += [*obj.keys(), *obj.values()]
        elif isinstance(obj, list | tuple | set | frozenset | deque):
            stack += list(obj)
        else:
            stack += list(getattr(obj, "__dict__", {}).values())
            stack += [getattr(obj, n) for n in getattr(type(obj), "__slots__", ()) if hasattr(obj, n)]
    return found


def test_the_repeat_table_keeps_no_identity_or_payload_once_the_scan_is_decided() -> None:
    venue = tagged(repeat_window_s=60)
    decision = venue.evaluate(national(), now=NOW)
    assert QID in reachable_text(decision)  # the search finds an identity where one is
    venue.commit(decision)
    junk = cardmaker.national_payload(birth_date="1987-13-45").encode()  # refused, but names someone
    venue.commit(venue.evaluate(_rejection(junk), now=NOW, payload=junk))
    later = NOW + timedelta(seconds=30)
    assert venue.evaluate(national(), now=later).repeat
    assert venue.evaluate(_rejection(junk), now=later, payload=junk).repeat
    del decision
    kept = reachable_text(venue)
    assert sealing.tag(DESTINATION_KEY, QID) in kept  # the search reaches the table's keys
    texts = [t for t in kept if isinstance(t, str)]
    for secret in (QID, "001093029317", "NGUYEN VAN A"):
        assert not any(secret in text for text in texts), secret
    assert not any(junk in b for b in kept if isinstance(b, bytes))


def test_with_tags_another_card_of_the_person_let_in_is_a_repeat_and_one_refused_is_not() -> None:
    venue = tagged()
    venue.decide(citizen_cccd(), now=NOW)
    second = venue.decide(national(), now=NOW + timedelta(seconds=3))
    assert (second.repeat, second.direction, second.identity, venue.occupancy) == (True, "in", QID, 1)
    assert not venue.decide(cccd(), now=NOW + timedelta(seconds=4)).repeat  # someone else
    strict = tagged(accepted_formats=["national"])
    assert strict.decide(citizen_cccd(), now=NOW).reason is Reason.FORMAT_NOT_ACCEPTED
    again = strict.decide(national(), now=NOW + timedelta(seconds=3))
    assert (again.repeat, again.passed, again.direction) == (False, True, "in")
    assert strict.decide(citizen_cccd(), now=NOW + timedelta(seconds=6)).repeat


def test_a_clock_that_jumps_back_decides_afresh() -> None:
    venue = policy()
    venue.decide(national(), now=NOW)
    assert not venue.decide(national(), now=NOW - timedelta(hours=1)).repeat


def test_an_unsynchronised_clock_still_decides_but_is_flagged() -> None:
    venue = policy()
    decision = venue.decide(national(), now=NOW, clock_synced=False)
    assert decision.passed and decision.clock_synced is False
    assert venue.decide(national(), now=NOW, clock_synced=True).clock_synced is True


# ---------------------------------------------------------------- direction, presence, capacity


def test_an_entry_lane_counts_people_in_and_lets_a_second_entry_through_as_already_inside() -> None:
    venue = policy(destination={"direction": "in"}, repeat_window_s=0)
    decisions = [venue.decide(national(), now=NOW) for _ in range(3)]
    assert [d.direction for d in decisions] == ["in"] * 3
    assert [(d.verdict, d.reason) for d in decisions] == [
        ("pass", Reason.OK),
        ("pass", Reason.ALREADY_INSIDE),
        ("pass", Reason.ALREADY_INSIDE),
    ]
    assert venue.occupancy == 1, "one person, however often they enter"


def test_a_second_entry_is_refused_where_the_destination_says_so() -> None:
    venue = policy(destination={"direction": "in", "second_entry": "refuse"}, repeat_window_s=0)
    first, second = (venue.decide(national(), now=NOW + timedelta(seconds=s)) for s in (0, 5))
    assert (first.verdict, second.verdict, second.reason) == ("pass", "fail", Reason.ALREADY_INSIDE)
    later = NOW + timedelta(seconds=venue.destination.presence_timeout_s + 1)
    assert venue.decide(national(), now=later).reason == Reason.OK, "timed out: a new entry"


def test_an_exit_lane_records_an_exit_nobody_saw_entering_as_such() -> None:
    venue = policy(destination={"direction": "out"}, repeat_window_s=0)
    decisions = [venue.decide(national(), now=NOW) for _ in range(2)]
    assert [(d.verdict, d.direction, d.reason) for d in decisions] == [
        ("pass", "out", Reason.EXIT_UNSEEN)
    ] * 2
    assert venue.occupancy == 0


def test_auto_toggles_per_identity_and_counts_occupancy() -> None:
    venue = policy(destination=AUTO)
    assert venue.decide(national(), now=NOW).direction == "in"
    assert venue.decide(cccd(), now=NOW).direction == "in"
    assert venue.occupancy == 2
    assert venue.decide(national(), now=NOW + timedelta(minutes=5)).direction == "out"
    assert venue.occupancy == 1
    assert venue.decide(national(), now=NOW + timedelta(minutes=10)).direction == "in"


def test_evaluating_changes_nothing_until_the_decision_is_committed() -> None:
    venue = policy(destination={**AUTO, "capacity": 1})
    first = venue.evaluate(national(), now=NOW)  # its record failed: never committed
    again = venue.evaluate(national(), now=NOW + timedelta(seconds=1))
    assert (first.direction, again.direction, again.repeat, venue.occupancy) == ("in", "in", False, 0)
    assert venue.evaluate(cccd(), now=NOW).passed, "an uncommitted entry takes no place in the venue"
    venue.commit(again)
    assert venue.occupancy == 1
    assert venue.evaluate(national(), now=NOW + timedelta(seconds=2)).repeat
    assert venue.evaluate(cccd(), now=NOW + timedelta(seconds=2)).reason is Reason.CAPACITY_FULL
    assert venue.evaluate(national(), now=NOW + timedelta(minutes=5)).direction == "out"


def test_a_rejection_evaluated_but_not_committed_is_no_repeat() -> None:
    venue = policy()
    garbage = _rejection(b"garbage")
    assert not venue.evaluate(garbage, now=NOW, payload=b"garbage").repeat
    venue.commit(venue.evaluate(garbage, now=NOW, payload=b"garbage"))
    assert venue.evaluate(garbage, now=NOW + timedelta(seconds=1), payload=b"garbage").repeat


def test_a_repeat_does_not_toggle() -> None:
    venue = policy(destination=AUTO)
    venue.decide(national(), now=NOW)
    repeat = venue.decide(national(), now=NOW + timedelta(seconds=3))
    assert (repeat.direction, repeat.repeat, venue.occupancy) == ("in", True, 1)


def test_presence_times_out() -> None:
    venue = policy(destination=AUTO)
    venue.decide(national(), now=NOW)
    assert venue.decide(cccd(), now=NOW + timedelta(seconds=3599)).direction == "in"
    assert venue.occupancy == 2
    assert venue.decide(national(), now=NOW + timedelta(seconds=3601)).direction == "in"
    assert venue.occupancy == 2  # national timed out and came in again; cccd still inside


def test_entering_with_the_cccd_and_leaving_with_the_national_qr_is_one_person() -> None:
    venue = policy(destination=AUTO)
    assert venue.decide(citizen_cccd(), now=NOW).direction == "in"
    leaving = venue.decide(national(), now=NOW + timedelta(minutes=5))
    assert (leaving.direction, leaving.identity, venue.occupancy) == ("out", QID, 0)
    assert venue.decide(national(), now=NOW + timedelta(minutes=10)).direction == "in"
    assert venue.decide(citizen_cccd(), now=NOW + timedelta(minutes=15)).direction == "out"
    assert venue.occupancy == 0


def test_the_other_card_of_a_person_just_let_in_is_a_repeat_not_an_exit() -> None:
    venue = policy(destination=AUTO)
    venue.decide(citizen_cccd(), now=NOW)
    second = venue.decide(national(), now=NOW + timedelta(seconds=3))
    assert (second.repeat, second.direction, venue.occupancy) == (True, "in", 1)


def test_the_other_card_of_a_person_just_refused_is_decided_afresh() -> None:
    venue = policy(destination=AUTO, accepted_formats=["national"])
    assert venue.decide(citizen_cccd(), now=NOW).reason is Reason.FORMAT_NOT_ACCEPTED
    second = venue.decide(national(), now=NOW + timedelta(seconds=3))
    assert (second.repeat, second.passed, second.direction, venue.occupancy) == (False, True, "in", 1)
    assert venue.decide(citizen_cccd(), now=NOW + timedelta(seconds=6)).repeat  # now a pass to repeat


def test_cards_that_share_no_identity_are_two_people() -> None:
    venue = policy(destination=AUTO)
    venue.decide(national(id_number="*********317"), now=NOW)  # QID only: cannot be linked to the CCCD
    assert venue.decide(citizen_cccd(), now=NOW + timedelta(minutes=1)).direction == "in"
    assert venue.occupancy == 2
    assert venue.decide(national(), now=NOW + timedelta(minutes=2)).direction == "out"  # both of them
    assert venue.occupancy == 0


def test_a_timed_out_person_is_forgotten_under_every_identity() -> None:
    venue = policy(destination=AUTO)
    venue.decide(national(), now=NOW)
    assert venue.decide(citizen_cccd(), now=NOW + timedelta(seconds=3601)).direction == "in"
    assert venue.occupancy == 1


def test_a_refused_entry_is_not_counted() -> None:
    venue = policy(destination=AUTO, accepted_formats=["cccd"])
    decision = venue.decide(national(), now=NOW)
    assert (decision.verdict, decision.direction, venue.occupancy) == ("fail", "in", 0)


def test_cards_without_identity_enter_but_are_not_counted() -> None:
    venue = policy(destination=AUTO)
    card = national(qid="", id_number="****93029317")
    assert venue.decide(card, now=NOW).direction == "in"
    assert venue.occupancy == 0


def test_capacity_refuses_entry_and_an_exit_frees_a_place() -> None:
    venue = policy(destination={**AUTO, "capacity": 1})
    venue.decide(national(), now=NOW)
    full = venue.decide(cccd(), now=NOW + timedelta(seconds=20))
    assert full.reason is Reason.CAPACITY_FULL
    assert "(1/1)" in full.message_vi
    assert venue.decide(national(), now=NOW + timedelta(seconds=40)).direction == "out"
    assert venue.decide(cccd(), now=NOW + timedelta(seconds=60)).passed


def test_leaving_is_never_refused_but_the_status_is_recorded() -> None:
    listed = status_list((QID, "F0", None))
    venue = policy(destination={"direction": "out"}, statuslist=listed, accepted_formats=["cccd"])
    decision = venue.decide(national(), now=NOW)
    assert (decision.verdict, decision.direction, decision.status) == ("pass", "out", "F0")


def test_decisions_are_frozen() -> None:
    decision = policy().decide(national(), now=NOW)
    with pytest.raises(AttributeError):
        decision.verdict = "fail"  # type: ignore[misc]


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=200) | st.text(max_size=200).map(str.encode))
def test_any_bytes_give_a_decision_with_a_known_reason(payload: bytes) -> None:
    venue = policy(destination={**AUTO, "capacity": 5}, statuslist=status_list((QID, "F0", None)))
    decision = venue.decide(parse_card(payload, trust=TRUST, now=NOW), now=NOW, payload=payload)
    assert decision.verdict in ("pass", "fail") and isinstance(decision.reason, Reason)
    assert decision.message_vi and decision.message_en
