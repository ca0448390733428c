"""The product's two languages, and a piece of text in both: the one shape of bilingual text."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Lang = Literal["vi", "en"]


@dataclass(frozen=True, slots=True)
class Text:
    """The same words in Vietnamese (the default) and English; neither may be empty."""

    vi: str
    en: str

    def __post_init__(self) -> None:
        if not (self.vi.strip() and self.en.strip()):
            raise ValueError(f"a text needs both languages: {self.vi!r} / {self.en!r}")

    def of(self, lang: Lang) -> str:
        """The words in `lang` (Vietnamese unless English is asked for)."""
        return self.en if lang == "en" else self.vi

    def both(self, first: Lang) -> tuple[str, str]:
        """The words in `first`, then in the other language."""
        return (self.en, self.vi) if first == "en" else (self.vi, self.en)
