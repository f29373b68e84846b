"""Which features a sentence names: catalogue labels plus the policy's synonyms, matched longest
first, whole words, case-insensitively. A feature's *concept* groups its statistics (creatinine last,
lowest, highest and abnormal count are all `lab_creatinine`)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from safellm.data.catalogue import FEATURES

TARGET = re.compile(r"\b(?:predicted|expected|estimated|forecast)\s+$", re.I)
_STAT = re.compile(r"^(lab_\w+?|vital_\w+?)_(last|min|max|n_abnormal)$")


def concept_of(feature: str) -> str:
    m = _STAT.match(feature)
    return m.group(1) if m else feature


@dataclass(frozen=True)
class Mention:
    concepts: frozenset[str]
    start: int
    end: int
    text: str


class Lexicon:
    def __init__(self, synonyms: dict[str, list[str]]) -> None:
        phrases: dict[str, set[str]] = {}

        def add(phrase: str, concept: str) -> None:
            p = " ".join(phrase.lower().split())
            if len(p) >= 2:
                phrases.setdefault(p, set()).add(concept)

        for name, feat in FEATURES.items():
            c = concept_of(name)
            add(feat.label, c)
            add(re.sub(r"\s*\([^)]*\)", "", feat.label), c)  # "Creatinine (last)" -> "creatinine"
            add(feat.label.split(":")[0], c)  # "Creatinine: abnormal results" -> "creatinine"
        for concept, words in synonyms.items():
            for w in words:
                add(w, concept)
        self.phrases = {p: frozenset(cs) for p, cs in phrases.items()}
        ordered = sorted(self.phrases, key=len, reverse=True)
        body = "|".join(re.escape(p).replace(r"\ ", r"\s+") for p in ordered)
        self._re = re.compile(rf"(?<![\w-])(?:{body})(?![\w-])", re.IGNORECASE)

    def mentions(self, text: str) -> list[Mention]:
        out = []
        for m in self._re.finditer(text):
            if TARGET.search(text[: m.start()]):  # "the predicted length of stay": the target
                continue
            key = " ".join(m.group(0).lower().split())
            out.append(Mention(self.phrases[key], m.start(), m.end(), m.group(0)))
        return out
