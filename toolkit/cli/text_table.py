"""A plain-text table in the same heavy-head box style as Rich's tables, for `predict`'s fast start.

Importing Rich costs ~25 ms, a fifth of a whole bare `predict` script on a desktop core and far more on a
board; predict prints one small table, so it draws it here. Other commands use Rich (`console.rich_table`).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence


def _width(text: str) -> int:
    # East Asian wide characters take two cells, as in Rich; everything else one.
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def box_table(title: str, header: Sequence[str], rows: Sequence[Sequence[str]], caption: str | None = None) -> str:
    """The table as text: first column left-aligned, the others right-aligned, title above, caption below."""
    widths = [max(_width(c) for c in column) for column in zip(header, *rows, strict=True)]

    def line(cells: Sequence[str], bar: str) -> str:
        padded = [
            c + " " * (w - _width(c)) if i == 0 else " " * (w - _width(c)) + c
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ]
        return bar + bar.join(f" {p} " for p in padded) + bar

    def rule(left: str, fill: str, join: str, right: str) -> str:
        return left + join.join(fill * (w + 2) for w in widths) + right

    lines = [title, rule("┏", "━", "┳", "┓"), line(header, "┃"), rule("┡", "━", "╇", "┩")]
    lines += [line(r, "│") for r in rows]
    lines.append(rule("└", "─", "┴", "┘"))
    if caption:
        lines.append(caption)
    return "\n".join(lines) + "\n"
