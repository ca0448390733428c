"""Bilingual text: one frozen shape, both languages present, the language asked for."""

from __future__ import annotations

import dataclasses

import pytest

from kiosk import reasons
from kiosk.reasons import Reason, template
from kiosk.text import Text


def test_a_text_gives_the_language_asked_for() -> None:
    text = Text("Mời vào", "Welcome")
    assert text.of("vi") == "Mời vào" and text.of("en") == "Welcome"
    assert text.both("vi") == ("Mời vào", "Welcome") and text.both("en") == ("Welcome", "Mời vào")


@pytest.mark.parametrize(("vi", "en"), [("", "Welcome"), ("Mời vào", " "), ("\n", "")])
def test_a_text_needs_both_languages(vi: str, en: str) -> None:
    with pytest.raises(ValueError, match="both languages"):
        Text(vi, en)


def test_a_text_is_a_frozen_value() -> None:
    text = Text("Ra", "Out")
    assert text == Text("Ra", "Out") and hash(text) == hash(Text("Ra", "Out"))
    with pytest.raises(dataclasses.FrozenInstanceError):
        text.vi = "Vào"  # type: ignore[misc]


def test_reason_messages_are_texts_in_both_languages() -> None:
    for reason in Reason:
        assert template(reason, "vi") != template(reason, "en"), reason


def test_lang_has_one_home() -> None:
    # kiosk.text defines it; reasons only uses it, so nobody can import it from there by habit.
    assert not hasattr(reasons, "Lang")
