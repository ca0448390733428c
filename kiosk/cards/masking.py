"""Masking of names and id numbers for the screen and for command output.

Names: the family name (first word) and the given name (last word) stay, every
middle word is cut to its first letter followed by `**`, so "NGUYEN VAN A"
shows as "NGUYEN V** A". With only two words the family name is cut instead
("L** HOA"), and a single word keeps only its first letter ("A**"): a
bystander never reads a whole name. The `**` does not depend on the length of
what it hides.

Id numbers: only the last three characters stay, the rest become `*`; a
vaccine passport's certificate identifier (UVCI) keeps its last four.

A code's raw text: every letter and digit becomes `*`; the separators stay, so
the layout of its fields can still be checked.
"""

from __future__ import annotations

HIDDEN = "**"


def _cut(word: str) -> str:
    return word[:1] + HIDDEN


def mask_name(name: str) -> str:
    """The name with enough of it hidden that a bystander cannot read it whole."""
    words = name.split()
    if not words:
        return ""
    if len(words) == 1:
        return _cut(words[0])
    if len(words) == 2:
        return f"{_cut(words[0])} {words[1]}"
    return " ".join([words[0], *(_cut(w) for w in words[1:-1]), words[-1]])


def mask_id(value: str, keep: int = 3) -> str:
    """The id number with all but its last `keep` characters replaced by `*`."""
    if len(value) <= keep:
        return "*" * len(value)
    return "*" * (len(value) - keep) + value[-keep:]


def mask_identity(value: str, card_format: str) -> str:
    """A card identity masked for output: a UVCI (`dcc`) keeps its last four characters, others three."""
    return mask_id(value, keep=4 if card_format == "dcc" else 3)


def mask_text(text: str) -> str:
    """Raw QR text with every letter and digit hidden; separators and length stay."""
    return "".join("*" if char.isalnum() else char for char in text)
