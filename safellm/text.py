"""Plain-text helpers shared by every layer (this module imports nothing of the package)."""

from __future__ import annotations

import re

_SENTENCE = re.compile(r"(?<=[.!?])\s+")
_SENTENCE_OR_LINE = re.compile(r"(?<=[.!?])\s+|\n+")


def sentences(text: str, lines: bool = False) -> list[str]:
    """`text` split after each `.`, `!` or `?` that white space follows (the white space
    dropped); `lines`: at every line break too. Pieces may be empty."""
    return (_SENTENCE_OR_LINE if lines else _SENTENCE).split(text)
