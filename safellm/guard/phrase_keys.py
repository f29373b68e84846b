"""Phrase keys: how the clinical concept lexicon compares words. A phrase's key is its words
(letters and digits), lower case, with British spellings made American (anaemia = anemia,
oedema = edema), one space apart. Shared by the lexicon (`safellm.guard.concepts`) and the phrases
derived from the MIMIC vocabularies (`safellm.guard.concepts_mimic`)."""

from __future__ import annotations

import functools
import re

TOKEN = re.compile(r"[A-Za-z0-9]+")
_FOLD = (
    (re.compile(r"(?<=\w)ae"), "e"),  # anaemia, haemorrhage, ischaemia, leukaemia, paediatric
    (re.compile(r"^oe(?=[ds])"), "e"),  # oedema, oesophagus, oestrogen
    (re.compile(r"(?<=rrh)oe"), "e"),  # diarrhoea, rhinorrhoea
    (re.compile(r"tumour"), "tumor"),
    (re.compile(r"goitre"), "goiter"),
    (re.compile(r"sulph"), "sulf"),
    (re.compile(r"isation"), "ization"),
    (re.compile(r"(?<=\w)is(e[sd]?)$"), r"iz\1"),  # nebulised, catheterise
)


@functools.lru_cache(maxsize=65536)
def fold(word: str) -> str:
    """A word as the lexicon compares it: lower case, British spellings made American."""
    w = word.lower()
    for pat, rep in _FOLD:
        w = pat.sub(rep, w)
    return w


def phrase_key(phrase: str) -> str:
    """The key a phrase is matched by: its folded words, one space apart."""
    return " ".join(fold(t) for t in TOKEN.findall(phrase))
