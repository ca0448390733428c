"""argparse value types: clear refusals for hostile command-line values."""

from __future__ import annotations

import argparse
import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kiosk.argtypes import aware_time, positive_int


@pytest.mark.parametrize("text", ["١٢", "１２", "12.0", "-3", "0", "", " 7", "9" * 5000, "0x10"])
def test_positive_int_refuses_what_is_not_a_plain_ascii_whole_number(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        positive_int(text)


def test_positive_int_reads_ascii_digits() -> None:
    assert positive_int("30") == 30


@given(st.text(max_size=40))
def test_positive_int_raises_only_argument_errors(text: str) -> None:
    with contextlib.suppress(argparse.ArgumentTypeError):
        assert positive_int(text) >= 1


def test_aware_time_needs_a_zone() -> None:
    assert aware_time("2021-10-01T10:00:00+07:00").utcoffset() is not None
    for text in ("2021-10-01T10:00:00", "yesterday", "2021-13-01T00:00:00+07:00"):
        with pytest.raises(argparse.ArgumentTypeError):
            aware_time(text)
