"""The one reader of outside JSON: bounded, strict UTF-8, no repeated keys; hostile inputs."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kiosk import safejson
from kiosk.errors import UnsafeJSONError


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        (b"[" * 100_000, "nested 100000 deep"),
        (b"{" * 40 + b"}" * 40, "nested 40 deep"),
        ('{"status":"online"}'.encode("utf-16"), "not UTF-8"),
        (b'{"a":"\xed\xa0\x80"}', "not UTF-8"),  # an encoded surrogate
        (b'{"a":"\\ud800"}', "lone surrogate"),
        (b'{"seq":1,"seq":2}', "repeats the key 'seq'"),
        (b"NaN", "NaN"),
        (b"[Infinity]", "Infinity"),
        (b"1e999", "out of range"),
        (b"1" * 5000, "not valid JSON"),
        (b'{"a":1', "not valid JSON"),
        (b"x" * (safejson.MAX_BYTES + 1), "larger than"),
    ],
)
def test_hostile_json_is_refused_with_the_reason(data: bytes, fragment: str) -> None:
    with pytest.raises(UnsafeJSONError, match=fragment):
        safejson.loads(data)


def test_brackets_inside_strings_do_not_count_as_depth() -> None:
    text = json.dumps({"a": "[" * 1000 + '\\"{' * 100})
    assert safejson.loads(text.encode()) == json.loads(text)


def test_depth_and_size_bounds_are_the_callers() -> None:
    assert safejson.loads(b"[[1]]", max_depth=2) == [[1]]
    with pytest.raises(UnsafeJSONError):
        safejson.loads(b"[[1]]", max_depth=1)
    with pytest.raises(UnsafeJSONError):
        safejson.loads(b"[1, 2]", max_bytes=5)


def _nested(inner: st.SearchStrategy[object]) -> st.SearchStrategy[object]:
    """Lists and objects of `inner`: one level deeper of JSON."""
    # A named function, not a lambda: hypothesis reads the source of `extend`, and finding a lambda's
    # source can fail (then it warns).
    return st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    _nested,
    max_leaves=20,
)


@given(json_values)
def test_any_ordinary_json_reads_as_the_standard_library_reads_it(value: object) -> None:
    text = json.dumps(value, ensure_ascii=False).encode("utf-8", "surrogatepass")
    try:
        expected = json.loads(text)
        text.decode("utf-8")
    except (UnicodeDecodeError, ValueError):
        return  # lone surrogates from st.text(): refused, checked above
    assert safejson.loads(text) == expected


@given(st.binary(max_size=300))
def test_any_bytes_give_the_standard_value_or_the_one_error(data: bytes) -> None:
    try:
        value = safejson.loads(data)
    except UnsafeJSONError:
        return
    assert value == json.loads(data.decode("utf-8"))
