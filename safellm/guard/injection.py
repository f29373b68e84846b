"""Instructions hidden in questions and notes, found beyond plain regexes.

Attackers dress an instruction up: Cyrillic lookalike letters, zero-width characters, full-width
forms, leetspeak, base64 or rot13, other languages, fake chat-template tags, an instruction split
over two lines. `variants(text)` undoes the dressing (NFKC, invisible characters removed,
lookalikes mapped to Latin, leetspeak read as letters, base64 runs decoded, rot13 read back), and
each variant is checked twice (the text as written, NFKC-normalised, comes first; lookalikes are
mapped only in the later variants, so Cyrillic and Greek text is also read as written):

    patterns    the policy's `injection.instruction` regexes (guardrails/clinical.yaml)
    exemplars   similarity to a library of injection exemplars (guardrails/injections.yaml):
                character n-gram TF-IDF cosine of each sentence against each exemplar, above the
                library's threshold (set on benign text: MIMIC-III demo notes and clinicians'
                questions, so that ordinary chart text stays below it)

`InjectionDetector.find(text)` returns the first hit with the variant it was found in.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import re
import unicodedata
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from safellm.guard._yaml import load_yaml
from safellm.resources import policy_file

INVISIBLE = re.compile(
    "[\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180e\u200b-\u200f\u202a-\u202e\u2060-\u206f\ufeff]"
)
# Cyrillic and Greek letters that look like Latin ones
LOOKALIKES = str.maketrans(
    "асеорхуіјѕԁһӏАВЕКМНОРСТХУЅІЈαοτικνρΑΒΕΗΙΚΜΝΟΡΤΧΥΖ",
    "aceopxyijsdhlABEKMHOPCTXYSIJaotiknpABEHIKMNOPTXYZ",
)
LEET = str.maketrans("013457@$", "oieastas")
BASE64_RUN = re.compile(r"[A-Za-z0-9+/]{16,}={0,2}")
SPACED = re.compile(r"\b(?:[A-Za-z][ .]){3,}[A-Za-z]\b")  # "i g n o r e" / "I.G.N.O.R.E"
SENTENCE = re.compile(r"(?<=[.!?:;\n])\s+")
MIN_WORDS = 6  # shorter sentences ("INSTRUCTIONS", "No, nothing else.") are too alike by chance


def _decoded_runs(text: str) -> list[str]:
    out = []
    for m in BASE64_RUN.finditer(text):
        run = m.group(0)
        try:
            raw = base64.b64decode(run + "=" * (-len(run) % 4), validate=True)
            decoded = raw.decode("utf-8")
        except (binascii.Error, UnicodeDecodeError, ValueError):
            continue
        printable = sum(ch.isprintable() or ch.isspace() for ch in decoded)
        if decoded and printable / len(decoded) > 0.95 and " " in decoded:
            out.append(decoded)
    return out


def variants(text: str) -> list[str]:
    """`text` and what it says once undressed (each variant once, the plain one first)."""
    nfkc = INVISIBLE.sub("", unicodedata.normalize("NFKC", text))
    plain = SPACED.sub(lambda m: re.sub(r"[ .]", "", m.group(0)), nfkc.translate(LOOKALIKES))
    flat = " ".join(plain.split())  # an instruction broken over lines
    out = [
        nfkc,
        plain,
        flat,
        flat.translate(LEET),
        codecs.encode(flat, "rot13"),
        *_decoded_runs(plain),
    ]
    seen: list[str] = []
    for v in out:
        if v not in seen:
            seen.append(v)
    return seen


class ExemplarLibrary(BaseModel, extra="forbid"):
    name: str
    version: int = Field(ge=1)
    changelog: str = Field(min_length=1)
    threshold: float = Field(gt=0, le=1, description="Cosine at or above which text is flagged.")
    exemplars: list[str] = Field(min_length=5)


def injections_file() -> Path:
    return policy_file().with_name("injections.yaml")


def load_exemplars(path: Path | None = None) -> ExemplarLibrary:
    return load_yaml(Path(path or injections_file()), "injection exemplars", ExemplarLibrary)


@dataclass(frozen=True)
class Hit:
    how: str  # "pattern" or "exemplar 0.62"
    matched: str  # the text that matched (in the variant it was found in)
    variant: int  # 0: as written; more: undressed


class InjectionDetector:
    def __init__(self, patterns: list[re.Pattern[str]], library: ExemplarLibrary | None) -> None:
        self.patterns = patterns
        self.library = library

    @cached_property
    def _index(self) -> tuple[Any, Any]:
        from sklearn.feature_extraction.text import TfidfVectorizer

        assert self.library is not None
        vec = TfidfVectorizer(
            analyzer="char_wb", ngram_range=(3, 5), lowercase=True, sublinear_tf=True
        )
        matrix = vec.fit_transform(self.library.exemplars)
        return vec, matrix

    def similarity(self, text: str) -> tuple[float, str]:
        """The highest cosine of any sentence of `text` to any exemplar, and that sentence."""
        if self.library is None:
            return 0.0, ""
        parts = [p.strip() for p in SENTENCE.split(text) if len(p.split()) >= MIN_WORDS]
        if not parts:
            return 0.0, ""
        vec, matrix = self._index
        sims = (vec.transform(parts) @ matrix.T).toarray()
        i = int(sims.max(axis=1).argmax())
        return float(sims[i].max()), parts[i]

    def similarities(self, sentences: list[str]) -> list[float]:
        """Each sentence's highest cosine to any exemplar (one batch)."""
        if self.library is None or not sentences:
            return [0.0] * len(sentences)
        vec, matrix = self._index
        return (vec.transform(sentences) @ matrix.T).max(axis=1).toarray().ravel().tolist()

    def find(self, text: str) -> Hit | None:
        for k, v in enumerate(variants(text)):
            for pat in self.patterns:
                m = pat.search(v)
                if m:
                    return Hit("pattern", m.group(0), k)
            if self.library is not None:
                sim, sentence = self.similarity(v)
                if sim >= self.library.threshold:
                    return Hit(f"exemplar {sim:.2f}", sentence, k)
        return None
