"""docs/cards.md carries the reason table generated from kiosk.reasons, so the two cannot drift."""

from pathlib import Path

from kiosk.reasons import Reason, markdown_table

DOC = Path(__file__).resolve().parent.parent / "docs" / "cards.md"
BEGIN, END = "<!-- reasons:begin -->\n", "<!-- reasons:end -->"


def test_the_reason_table_in_the_doc_is_the_generated_one() -> None:
    text = DOC.read_text(encoding="utf-8")
    table = text.split(BEGIN, 1)[1].split(END, 1)[0]
    assert table == markdown_table(), (
        "regenerate the table in docs/cards.md from kiosk.reasons.markdown_table()"
    )


def test_the_table_lists_every_reason_once() -> None:
    rows = [line for line in markdown_table().splitlines() if line.startswith("| `")]
    assert [row.split("`")[1] for row in rows] == [reason.value for reason in Reason]
