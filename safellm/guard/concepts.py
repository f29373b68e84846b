"""The clinical concept lexicon: which clinical things a sentence names beyond the catalogue's
features (diagnoses, syndromes, findings, procedures, drugs, their abbreviations), and which facts
may support each one. The guard's open-world rules use it (`fact.unsupported_concept`: a concept
named must belong to a cited fact or a cited note chunk; `fact.qualifier`: "hyponatraemia" says
the sodium is low).

Sources, merged into one `ConceptLexicon` (a phrase may name several concepts):

- `guardrails/concepts.yaml` (curated, versioned, validated on load: `load_concept_file`);
- the catalogue's Elixhauser groups and medication classes (`safellm.data.catalogue`), with their
  labels and drug names, each supported by the fact of its own feature (`elix_chf`, `med_opioid`);
- when the settings point at a MIMIC-III folder (`SAFELLM_MIMIC_DIR`, else the source recorded in
  the built data's manifest): the ICD-9 diagnosis and procedure titles, the lab item labels and the
  prescribed drug names of its vocabulary tables (`safellm.guard.concepts_mimic`), each derived
  phrase kept only when it may name a concept: a phrase made only of the file's `generic` words
  ("risk", "history", "acute", "count", ...) never does. That lexicon is built once and cached
  (`concept_lexicon`).

Phrases match whole words, case-insensitively, longest first, with British and American spellings
folded (anaemia = anemia) and regular plurals; abbreviations match exactly as written ("MI", not
"mi"). Nothing here is a catalogue feature's own phrase: the checker leaves whatever the feature
lexicon (`safellm.guard.lexicon`) already names to the feature rules.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator, model_validator

from safellm.config import Settings
from safellm.data.catalogue import ELIXHAUSER, FEATURES, MED_CLASSES, VITALS
from safellm.errors import ConfigError
from safellm.fsutil import atomic_write_text
from safellm.guard._yaml import load_yaml
from safellm.guard.concepts_mimic import VOCAB_TABLES as VOCAB_TABLES  # re-exported
from safellm.guard.concepts_mimic import mimic_concepts, mimic_source, vocab_files
from safellm.guard.lexicon import concept_of
from safellm.guard.phrase_keys import TOKEN as _TOKEN
from safellm.guard.phrase_keys import fold, phrase_key
from safellm.resources import concepts_file

log = logging.getLogger(__name__)

BUILDER = 1  # bump when the derivation of phrases changes: cached lexicons are then rebuilt
MAX_WORDS = 6  # longest phrase matched, in words
Implies = Literal["low", "high"]

_GAP = re.compile(r"[\s\-/'’.]+")  # what may stand between the words of one phrase
_ID = re.compile(r"^[a-z][a-z0-9_]*$")


def _plural(key: str) -> str | None:
    """The regular plural of a phrase key's last word (None where it has none to add)."""
    head, _, last = key.rpartition(" ")
    if len(last) < 4 or last.endswith(("s", "x", "ic", "al", "ed", "ing", "ous", "ive", "ly")):
        return None
    if last.endswith("y") and last[-2] not in "aeiou":
        last = last[:-1] + "ies"
    elif last.endswith(("ch", "sh", "z")):
        last += "es"
    else:
        last += "s"
    return f"{head} {last}".strip()


# ---------------------------------------------------------------------------------- the file
class _Extra(BaseModel, extra="forbid"):
    phrases: list[str] = Field(default_factory=list)
    abbr: list[str] = Field(default_factory=list)


class ConceptSpec(_Extra):
    id: str | None = None
    features: list[str] = Field(default_factory=list)
    implies: Implies | None = None

    @model_validator(mode="after")
    def _named(self) -> ConceptSpec:
        if not self.phrases and not self.abbr:
            raise ValueError("a concept needs at least one phrase or abbreviation")
        if self.id is None:
            self.id = "_".join(
                phrase_key(self.phrases[0] if self.phrases else self.abbr[0]).split()
            )
        return self


def _known_features() -> set[str]:
    known = {concept_of(f) for f in FEATURES}
    known |= {f"elix_{g}" for g in ELIXHAUSER} | {f"med_{c}" for c in MED_CLASSES}
    return known


def _ranged(feature: str) -> bool:
    return feature.startswith("lab_") or feature.startswith("vital_")


class ConceptFile(BaseModel, extra="forbid"):
    """`guardrails/concepts.yaml`, validated."""

    name: str
    version: int = Field(ge=1)
    changelog: str = Field(min_length=1)
    generic: list[str]
    concepts: list[ConceptSpec]
    elixhauser: dict[str, _Extra] = Field(default_factory=dict)
    medications: dict[str, _Extra] = Field(default_factory=dict)

    @field_validator("generic")
    @classmethod
    def _words(cls, v: list[str]) -> list[str]:
        bad = [w for w in v if len(_TOKEN.findall(w)) != 1]
        if bad:
            raise ValueError(f"generic entries must be single words: {', '.join(bad[:5])}")
        return v

    @model_validator(mode="after")
    def _check(self) -> ConceptFile:
        ids = [c.id for c in self.concepts]
        dup = sorted({i for i in ids if ids.count(i) > 1 and i is not None})
        if dup:
            raise ValueError(f"duplicate concept id(s): {', '.join(dup)}")
        generic = {fold(w) for w in self.generic}
        known = _known_features()
        for c in self.concepts:
            where = f"concept {c.id}"
            if not c.id or not _ID.match(c.id):
                raise ValueError(f"{where}: id must be lower case letters, digits and _")
            self._check_words(where, c, generic)
            unknown = sorted(set(c.features) - known)
            if unknown:
                raise ValueError(
                    f"{where}: unknown feature(s) {', '.join(unknown)} (catalogue concepts such "
                    "as lab_sodium, vital_sbp, elix_chf, med_opioid)"
                )
            if c.implies and not any(_ranged(f) for f in c.features):
                raise ValueError(f"{where}: implies {c.implies!r} needs a lab_ or vital_ feature")
        for section, names in (("elixhauser", ELIXHAUSER), ("medications", MED_CLASSES)):
            extras: dict[str, _Extra] = getattr(self, section)
            unknown = sorted(set(extras) - set(names))
            if unknown:
                raise ValueError(
                    f"{section}: unknown group(s) {', '.join(unknown)} (known: {', '.join(names)})"
                )
            for key, extra in extras.items():
                self._check_words(f"{section}.{key}", extra, generic)
        return self

    @staticmethod
    def _check_words(where: str, c: _Extra, generic: set[str]) -> None:
        for p in c.phrases:
            key = phrase_key(p)
            if len(key) < 3:
                raise ValueError(f"{where}: phrase {p!r} is too short (abbreviations go in abbr)")
            if len(key.split()) > MAX_WORDS:
                raise ValueError(f"{where}: phrase {p!r} has more than {MAX_WORDS} words")
            if key in generic:
                raise ValueError(f"{where}: phrase {p!r} is a generic word, never a concept")
        for a in c.abbr:
            if not _TOKEN.findall(a) or len(_TOKEN.findall(a)) > 3:
                raise ValueError(f"{where}: abbreviation {a!r} must be one to three word(s)")


def load_concept_file(path: Path | None = None) -> ConceptFile:
    """The curated concepts at `path` (default `guardrails/concepts.yaml`), validated."""
    return load_yaml(Path(path or concepts_file()), "concept lexicon", ConceptFile, fast=True)


# ---------------------------------------------------------------------------------- the lexicon
@dataclass(frozen=True)
class Concept:
    id: str
    name: str
    source: str  # curated, elixhauser, medication, icd9-dx, icd9-proc, lab, drug
    features: frozenset[str] = frozenset()  # catalogue concepts whose facts support it
    implies: str | None = None  # low | high: what it says of its lab or vital feature's value


@dataclass(frozen=True)
class ConceptMention:
    ids: frozenset[str]
    start: int
    end: int
    text: str


class ConceptLexicon:
    """Concepts and the phrases that name them."""

    def __init__(
        self,
        concepts: dict[str, Concept],
        phrases: dict[str, set[str]],
        abbr: dict[str, set[str]],
        info: dict[str, Any] | None = None,
    ) -> None:
        self.concepts = concepts
        self.phrases = {k: frozenset(v) for k, v in phrases.items()}
        self.abbr = {k: frozenset(v) for k, v in abbr.items()}
        self.info = dict(info or {})
        self.max_words = max([len(k.split()) for k in self.phrases] or [1])
        self.abbr_words = max([len(k.split()) for k in self.abbr] or [1])
        self._starts = {k.split(" ", 1)[0] for k in self.phrases}  # first words, to skip fast
        self._abbr_starts = {k.split(" ", 1)[0] for k in self.abbr}

    def __len__(self) -> int:
        return len(self.phrases) + len(self.abbr)

    # ------------------------------------------------------------------------------ matching
    def _runs(self, text: str) -> Iterable[tuple[int, int, frozenset[str], int, int]]:
        """Every phrase found, as (first word, words, concepts, start, end), longest first at
        each word. The words of a phrase may stand apart by spaces, hyphens, slashes,
        apostrophes and full stops only ("HIV/AIDS", "C. diff"), never by a comma."""
        toks = list(_TOKEN.finditer(text))
        words = [t.group() for t in toks]
        folded = [fold(w) for w in words]
        n = len(toks)
        reach = [1] * n  # words from each one on that may belong to one phrase
        for m in range(n - 2, -1, -1):
            if _GAP.fullmatch(text[toks[m].end() : toks[m + 1].start()]):
                reach[m] = reach[m + 1] + 1
        empty: frozenset[str] = frozenset()
        for i in range(n):
            phrase = folded[i] in self._starts
            abbr = words[i] in self._abbr_starts
            if not phrase and not abbr:
                continue
            for k in range(min(max(self.max_words, self.abbr_words), reach[i]), 0, -1):
                ids = self.phrases.get(" ".join(folded[i : i + k]), empty) if phrase else empty
                if abbr and k <= self.abbr_words:
                    ids = ids | self.abbr.get(" ".join(words[i : i + k]), empty)
                if ids:
                    yield i, k, ids, toks[i].start(), toks[i + k - 1].end()

    def mentions(self, text: str) -> list[ConceptMention]:
        """The concepts `text` names: longest phrase first, no two overlapping."""
        out = []
        next_free = 0
        for i, k, ids, start, end in self._runs(text):
            if i < next_free:
                continue
            out.append(ConceptMention(ids, start, end, text[start:end]))
            next_free = i + k
        return out

    def ids_in(self, text: str) -> set[str]:
        """Every concept any phrase of `text` names (overlapping phrases included)."""
        found: set[str] = set()
        for run in self._runs(text):
            found |= run[2]
        return found

    def features_of(self, ids: Iterable[str]) -> set[str]:
        return {f for i in ids if i in self.concepts for f in self.concepts[i].features}

    # ------------------------------------------------------------------------------ storage
    def to_json(self) -> str:
        return json.dumps(
            {
                "builder": BUILDER,
                "info": self.info,
                "concepts": [
                    [c.id, c.name, c.source, sorted(c.features), c.implies]
                    for c in self.concepts.values()
                ],
                "phrases": {k: sorted(v) for k, v in self.phrases.items()},
                "abbr": {k: sorted(v) for k, v in self.abbr.items()},
            },
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, text: str) -> ConceptLexicon:
        raw = json.loads(text)
        if raw.get("builder") != BUILDER:
            raise ValueError("built by another version")
        concepts = {c[0]: Concept(c[0], c[1], c[2], frozenset(c[3]), c[4]) for c in raw["concepts"]}
        return cls(
            concepts,
            {k: set(v) for k, v in raw["phrases"].items()},
            {k: set(v) for k, v in raw["abbr"].items()},
            raw.get("info"),
        )


# ---------------------------------------------------------------------------------- building
class _Builder:
    def __init__(self, generic: Iterable[str]) -> None:
        self.generic = {fold(w) for w in generic}
        self.concepts: dict[str, Concept] = {}
        self.phrases: dict[str, set[str]] = {}
        self.abbr: dict[str, set[str]] = {}
        self.counts: dict[str, int] = {}

    def usable(self, key: str, any_word: bool = False) -> bool:
        """Whether a derived phrase key may name a concept: a few words, not all generic (nor
        numbers, nor one or two letters), not starting or ending with a little word; one word
        alone only when it looks like a clinical term (`any_word`: any word not generic)."""
        words = key.split()
        if not words or len(words) > MAX_WORDS or len(key) < 3:
            return False
        if words[0] in _LITTLE or words[-1] in _LITTLE:
            return False
        meaningful = [w for w in words if w not in self.generic and len(w) > 2 and w.isalpha()]
        if not meaningful:
            return False
        if len(words) == 1:
            return len(key) >= 5 and (any_word or _CLINICAL_WORD.search(key) is not None)
        return True

    def add(
        self,
        concept: Concept,
        phrases: Iterable[str],
        abbr: Iterable[str] = (),
        derived: bool = False,
        any_word: bool = False,
    ) -> int:
        """Add `concept` with its phrases (a regular plural too, unless `derived`) and
        abbreviations; a `derived` phrase only when `usable` (a single word needs a clinical
        suffix unless `any_word`)."""
        keys = {phrase_key(p) for p in phrases}
        keys = {k for k in keys if k and (not derived or self.usable(k, any_word))}
        abbr = list(abbr)
        if not keys and not abbr:
            return 0
        old = self.concepts.get(concept.id)
        if old is not None:  # a concept named twice (curated extras of a catalogue group)
            concept = Concept(
                old.id, old.name, old.source, old.features | concept.features, old.implies
            )
        self.concepts[concept.id] = concept
        for k in keys:
            self.phrases.setdefault(k, set()).add(concept.id)
            p = None if derived else _plural(k)
            if p is not None:
                self.phrases.setdefault(p, set()).add(concept.id)
        n = len(keys)
        for a in abbr:
            toks = _TOKEN.findall(a)
            if toks:
                self.abbr.setdefault(" ".join(toks), set()).add(concept.id)
                n += 1
        self.counts[concept.source] = self.counts.get(concept.source, 0) + n
        return n

    def lexicon(self, info: dict[str, Any]) -> ConceptLexicon:
        info = dict(info, phrases=len(self.phrases), abbreviations=len(self.abbr))
        info["concepts"] = len(self.concepts)
        info["by_source"] = dict(sorted(self.counts.items()))
        return ConceptLexicon(self.concepts, self.phrases, self.abbr, info)


# a single word derived from a title names a concept only with one of these endings (the rest are
# too often plain English: "lack", "onset", "loss", "delay", "elevation", "referral")
_CLINICAL_WORD = re.compile(
    r"(?:itis|osis|iasis|emia|uria|pathy|pathies|plasia|trophy|trophies|algia|rrhea|rrhagia|"
    r"rrhage|megaly|penia|philia|phobia|plegia|paresis|ectomy|ectomies|otomy|otomies|ostomy|"
    r"ostomies|plasty|plasties|scopy|scopies|graphy|graphies|gram|grams|centesis|desis|pexy|"
    r"rrhaphy|tripsy|lysis|ism|isms|cele|celes|ptosis|spasm|oma|omas|ia|ias|coccus|cocci|virus|"
    r"mycosis|itis|ema|esis)$"
)
_LITTLE = {"of", "and", "or", "the", "a", "an", "in", "on", "to", "with", "without", "by", "for"}


def _label_parts(label: str) -> tuple[list[str], list[str]]:
    """A catalogue label as phrases and abbreviations: split at '/', upper-case parts as
    abbreviations ("HIV/AIDS"), a leading "other" dropped, "X without Y" also as X."""
    phrases, abbr = [label], []
    for part in re.split(r"\s*/\s*", label):
        if part.isupper():
            abbr.append(part)
            continue
        part = re.sub(r"^other\s+", "", part, flags=re.I)
        phrases.append(part)
        phrases.append(re.split(r"\s+(?:without|with)\s+", part)[0])
    if all(p.isupper() for p in re.split(r"\s*/\s*", label)):
        phrases = []
    return phrases, abbr


def _curated(spec: ConceptFile) -> _Builder:
    b = _Builder(spec.generic)
    for g, (label, _, _) in ELIXHAUSER.items():
        phrases, abbr = _label_parts(label)
        extra = spec.elixhauser.get(g)
        if extra:
            phrases += extra.phrases
            abbr += extra.abbr
        b.add(Concept(f"elix_{g}", label, "elixhauser", frozenset({f"elix_{g}"})), phrases, abbr)
    for cls, (label, drugs, _) in MED_CLASSES.items():
        phrases = [label, cls, *re.split(r"\s+or\s+", label), *drugs]
        abbr = []
        extra = spec.medications.get(cls)
        if extra:
            phrases += extra.phrases
            abbr += extra.abbr
        b.add(Concept(f"med_{cls}", label, "medication", frozenset({f"med_{cls}"})), phrases, abbr)
    for c in spec.concepts:
        assert c.id is not None
        name = c.phrases[0] if c.phrases else c.abbr[0]
        concept = Concept(c.id, name, "curated", frozenset(c.features), c.implies)
        b.add(concept, c.phrases, c.abbr)
    return b


def build_lexicon(curated: Path | None = None, mimic_dir: Path | None = None) -> ConceptLexicon:
    """The lexicon of the curated file and, when given, the vocabularies of a MIMIC folder."""
    t0 = time.perf_counter()
    path = Path(curated or concepts_file())
    spec = load_concept_file(path)
    b = _curated(spec)
    files = vocab_files(mimic_dir) if mimic_dir is not None else {}
    if files:
        try:
            for m in mimic_concepts(files):
                concept = Concept(m.id, m.name, m.source, m.features)
                b.add(concept, m.phrases, m.abbr, derived=True, any_word=m.any_word)
        except Exception as exc:  # duckdb, I/O or format errors: a start-up error naming the folder
            raise ConfigError(
                f"{mimic_dir}: cannot read the MIMIC vocabularies for the concept lexicon: {exc}"
            ) from exc
    info = {
        "curated": str(path),
        "curated_version": spec.version,
        "mimic": str(mimic_dir) if files else None,
        "tables": sorted(files),
        "build_s": round(time.perf_counter() - t0, 3),
    }
    return b.lexicon(info)


# ------------------------------------------------------------------------------ cached access
_MEMO: dict[str, ConceptLexicon] = {}
_LOCK = threading.Lock()


def _file_sig(p: Path) -> str:
    st = p.stat()
    return f"{p.resolve()}:{st.st_size}:{st.st_mtime_ns}"


def _catalogue_sig() -> str:
    return repr(
        (
            sorted((g, v[0], v[2]) for g, v in ELIXHAUSER.items()),
            sorted(MED_CLASSES.items()),
            sorted(VITALS),
        )
    )


def curated_concepts(path: Path | None = None) -> ConceptLexicon:
    """The lexicon of the curated file and the catalogue alone (built once per process)."""
    path = Path(path or concepts_file())
    key = hashlib.sha256(f"{BUILDER}|{_file_sig(path)}".encode()).hexdigest()
    with _LOCK:
        if key not in _MEMO:
            _MEMO[key] = build_lexicon(path)
        return _MEMO[key]


def cache_path(settings: Settings) -> Path:
    return settings.home / "cache" / "concepts"


def concept_lexicon(settings: Settings, curated: Path | None = None) -> ConceptLexicon:
    """The lexicon for `settings`: the curated file, the catalogue and the MIMIC vocabularies of
    `mimic_source(settings)`, built once and cached under `$SAFELLM_HOME/cache/concepts/` (keyed
    by the builder version, the curated file and the vocabulary files' sizes and times)."""
    path = Path(curated or concepts_file())
    source = mimic_source(settings)
    if source is None:
        return curated_concepts(path)
    files = vocab_files(source)
    sig = "|".join(
        [str(BUILDER), _file_sig(path), _catalogue_sig(), *(_file_sig(p) for p in files.values())]
    )
    key = hashlib.sha256(sig.encode()).hexdigest()[:16]
    with _LOCK:
        if key in _MEMO:
            return _MEMO[key]
        target = cache_path(settings) / f"concepts-{key}.json"
        lex: ConceptLexicon | None = None
        if target.exists():
            try:
                lex = ConceptLexicon.from_json(target.read_text(encoding="utf-8"))
            except (OSError, ValueError, KeyError, IndexError, TypeError) as exc:
                log.warning("concept lexicon cache %s unreadable (%s): rebuilding", target, exc)
        if lex is None:
            lex = build_lexicon(path, source)
            try:
                atomic_write_text(target, lex.to_json())
            except OSError as exc:  # a read-only home: the lexicon still works, uncached
                log.warning("cannot cache the concept lexicon at %s: %s", target, exc)
        _MEMO[key] = lex
        return lex
