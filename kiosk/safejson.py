"""The one JSON reader for bytes from outside: strict UTF-8, bounded size and depth, no repeated keys.

Every parser of JSON that arrives from a device, the broker, a file a technician hands
over or a signed token goes through here. The standard parser alone would let an
attacker with a single broker login raise RecursionError (a few kilobytes of `[`),
smuggle a second value under a repeated key (which one wins differs between
libraries, so a signer and a verifier could read different events), or send UTF-16
(which `json.loads(bytes)` silently accepts). Each is a `UnsafeJSONError` here.
"""

from __future__ import annotations

import json
import math
import re
from itertools import accumulate
from typing import Any, TypeVar

from pydantic import BaseModel

from kiosk.errors import UnsafeJSONError

MAX_BYTES = 1024 * 1024
MAX_DEPTH = 32

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
_BRACKET = re.compile(r"[\[\]{}]")
_OPENERS = frozenset("[{")

Model = TypeVar("Model", bound=BaseModel)


def loads(data: bytes | str, *, max_bytes: int = MAX_BYTES, max_depth: int = MAX_DEPTH) -> Any:
    """Parse one JSON text within the bounds; raise UnsafeJSONError with the reason."""
    text = _text(data, max_bytes)
    _check_depth(text, max_depth)
    try:
        value = json.loads(text, object_pairs_hook=_unique, parse_constant=_no_constant, parse_float=_finite)
    except UnsafeJSONError:
        raise
    except (json.JSONDecodeError, ValueError, RecursionError) as e:
        # ValueError also covers an integer of more than 4,300 digits (int's own limit).
        raise UnsafeJSONError(f"not valid JSON: {e}") from e
    _check_strings(value)
    return value


def validate(model: type[Model], data: bytes | str, **bounds: int) -> Model:
    """`loads` (the safety checks), then the model's own validation of the same text.

    The model reads the JSON itself (pydantic's strict JSON mode takes arrays for
    tuples); it raises pydantic's ValidationError as usual.
    """
    loads(data, **bounds)
    return model.model_validate_json(data)


def _text(data: bytes | str, max_bytes: int) -> str:
    size = len(data.encode("utf-8", "surrogatepass")) if isinstance(data, str) else len(data)
    if size > max_bytes:
        raise UnsafeJSONError(f"JSON of {size} bytes is larger than {max_bytes}")
    if isinstance(data, str):
        return data
    try:
        return bytes(data).decode("utf-8")  # strict: no UTF-16, no encoded surrogates, no stray bytes
    except UnicodeDecodeError as e:
        raise UnsafeJSONError(f"JSON is not UTF-8: {e}") from e


def _check_depth(text: str, max_depth: int) -> None:
    # Strings are removed first so that brackets inside them do not count. A text that is
    # not valid JSON may be over-counted; it is refused either way.
    brackets = _BRACKET.findall(_STRING.sub("", text))
    depth = max(accumulate(1 if c in _OPENERS else -1 for c in brackets), default=0)
    if depth > max_depth:
        raise UnsafeJSONError(f"JSON nested {depth} deep (at most {max_depth})")


def _unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise UnsafeJSONError(f"JSON object repeats the key {key!r}")
        result[key] = value
    return result


def _no_constant(name: str) -> Any:
    raise UnsafeJSONError(f"JSON must not contain {name}")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise UnsafeJSONError(f"JSON number {text[:20]} is out of range")
    return value


def _check_strings(value: Any) -> None:
    # A \ud800 escape parses to a lone surrogate, which no UTF-8 database or file takes.
    # The depth is already bounded, so this recursion is too.
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as e:
            raise UnsafeJSONError("JSON string holds a lone surrogate escape") from e
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_strings(key)
            _check_strings(item)
    elif isinstance(value, list):
        for item in value:
            _check_strings(item)
