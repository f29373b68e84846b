"""The clinical concepts of a MIMIC-III folder's vocabularies, for the concept lexicon
(`safellm.guard.concepts`, which merges them with the curated file and the catalogue, and caches
the result: `concept_lexicon`).

- `D_ICD_DIAGNOSES`: the ICD-9 diagnosis titles, the external-cause and supplementary E and V codes
  left out; an Elixhauser code is supported by its group's fact (`elix_chf`);
- `D_ICD_PROCEDURES`: the ICD-9 procedure titles;
- `D_LABITEMS`: the lab item labels (with their upper-case abbreviations), the catalogue's own lab
  panel left to the catalogue;
- `PRESCRIPTIONS.DRUG`: the prescribed drug names (dose forms left out), a drug of a catalogue
  medication class supported by that class's fact (`med_opioid`).

Titles are long phrases: the matchable phrases are the title up to its first comma, its head noun
phrase (before "of", "with", "due to", ...), both without leading qualifiers ("other", "acute",
"unspecified"), and the short title when it is written out in full. Whether a derived phrase may
name a concept at all (generic words, a single word without a clinical suffix) is the lexicon
builder's call. `mimic_concepts(files)` yields each concept with its phrases; `vocab_files` finds
the tables in a folder and `mimic_source` the folder the settings point at.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from safellm.config import Settings
from safellm.data.catalogue import ELIXHAUSER, LABS, MED_CLASSES
from safellm.guard.phrase_keys import phrase_key

_PAREN = re.compile(r"\s*[(\[][^)\]]*[)\]]")
_DX_HEAD = re.compile(
    r"\s+(?:with|without|due\s+to|in|of|secondary\s+to|complicating|following|affecting|"
    r"involving|associated\s+with|resulting\s+from|except|not\s+elsewhere|so\s+described|"
    r"as\s+the\s+cause|caused\s+by|from)\s+"
)
_PROC_HEAD = re.compile(r"\s+(?:with|without|using|for|by|under|via|through)\s+")
_PROC_WORD = re.compile(
    r"^\w+(?:ectomy|otomy|ostomy|plasty|scopy|graphy|centesis|desis|pexy|rrhaphy|tripsy|lysis)$"
)


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


_LEADING = _words(
    """
    other unspecified acute chronic subacute old primary secondary specified certain
    recurrent unilateral bilateral mild moderate severe late total partial closed open
    nonspecific unspec
    """
)
_SHORT_NOISE = {"nos", "nec", "unsp", "oth", "w", "wo", "unspecif", "unspecified", "other"}
_DRUG_FORMS = _words(
    """
    tab tabs tablet tablets cap caps capsule capsules inj injection injectable soln solution
    susp suspension syrup elixir liquid cream ointment oint gel lotion patch drops drop neb
    nebulizer inhaler inh spray powder vial bag syringe flush premix premixed iv po pr sc im
    sl er sr xl xr cr la dr ec odt hcl in ns d5w dextrose desensitization neonatal pediatric
    paediatric ophth ophthalmic otic nasal rectal vaginal topical oral chewable extended
    release delayed sodium potassium hydrochloride sulfate tartrate succinate
    """
)


_VAGUE = {"other", "unspecified", "unspec", "specified", "certain", "nonspecific"}


def _strip_leading(key: str) -> str:
    words = key.split()
    while len(words) > 1 and words[0] in _LEADING:
        words = words[1:]
    return " ".join(words)


def _variants(phrases: Iterable[str]) -> list[str]:
    """Each phrase as its key and without leading qualifiers ("acute kidney failure" and
    "kidney failure"); one starting with a vague word ("other", "unspecified") only without."""
    out = []
    for p in phrases:
        key = phrase_key(p)
        if key.split()[:1] and key.split()[0] not in _VAGUE:
            out.append(key)
        out.append(_strip_leading(key))
    return out


def _dx_phrases(short: str, long: str) -> list[str]:
    title = _PAREN.sub("", long or "").strip().lower()
    clause = re.split(r"\s*[,;:]\s*|\s+-\s+", title)[0]
    head = _DX_HEAD.split(clause)[0]
    out = [clause, head]
    words = [w for w in phrase_key(short or "").split() if w not in _SHORT_NOISE]
    title_words = set(phrase_key(title).split())
    if words and all(w in title_words for w in words):  # a short title written out in full
        out.append(" ".join(words))
    return _variants(p for p in out if p.strip())


def _proc_phrases(short: str, long: str) -> list[str]:
    title = _PAREN.sub("", long or "").strip().lower()
    clause = re.split(r"\s*[,;:]\s*|\s+-\s+", title)[0]
    clause = _PROC_HEAD.split(clause)[0]
    out = [clause]
    first = phrase_key(clause).split(" of ")[0]
    if _PROC_WORD.match(first):
        out.append(first)
    words = [w for w in phrase_key(short or "").split() if w not in _SHORT_NOISE]
    if words and all(w in set(phrase_key(title).split()) for w in words):
        out.append(" ".join(words))
    return _variants(p for p in out if p.strip())


def _lab_phrases(label: str) -> tuple[list[str], list[str]]:
    abbr = [m for m in re.findall(r"\(([^)]*)\)", label) if m.isupper() and len(m) <= 6]
    base = _PAREN.sub("", label).strip()
    return [base.split(",")[0]], abbr


def _drug_phrases(drug: str) -> list[str]:
    name = re.split(r"[(\d%,]", drug.lower(), maxsplit=1)[0]
    words = [w for w in phrase_key(name).split() if w not in _DRUG_FORMS]
    if not words or len(words) > 4 or not words[0].isalpha():
        return []
    out = [" ".join(words)]
    if len(words) > 1 and len(words[0]) >= 5:
        out.append(words[0])
    return out


@functools.cache
def _elix_prefixes() -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for g, (_, _, prefixes) in ELIXHAUSER.items():
        for p in prefixes:
            out.setdefault(p, set()).add(f"elix_{g}")
    return out


def _elix_groups(code: str) -> frozenset[str]:
    """The Elixhauser groups an ICD-9 diagnosis code belongs to (by code prefix)."""
    table = _elix_prefixes()
    return frozenset(g for n in range(1, len(code) + 1) for g in table.get(code[:n], ()))


VOCAB_TABLES = ("D_ICD_DIAGNOSES", "D_ICD_PROCEDURES", "D_LABITEMS", "PRESCRIPTIONS")


def vocab_files(folder: Path) -> dict[str, Path]:
    """The MIMIC-III vocabulary tables found in `folder` (.csv.gz preferred over .csv)."""
    out: dict[str, Path] = {}
    try:
        entries = sorted(p for p in Path(folder).iterdir() if p.is_file())
    except OSError:
        return out
    for name in VOCAB_TABLES:
        hits = [
            p
            for p in entries
            if p.name.lower() in (f"{name}.csv.gz".lower(), f"{name}.csv".lower())
        ]
        hits.sort(key=lambda p: not p.name.lower().endswith(".gz"))
        if hits:
            out[name] = hits[0]
    return out


def _rows(path: Path, columns: list[str], distinct: bool = False) -> list[tuple[Any, ...]]:
    """The `columns` of a MIMIC CSV (either header style, compressed or not), as text."""
    import duckdb  # loaded only when a MIMIC vocabulary is read

    cols = ", ".join(columns)
    sql = (
        f"SELECT {'DISTINCT ' if distinct else ''}{cols} "
        "FROM read_csv(?, header = true, all_varchar = true)"
    )
    with duckdb.connect() as con:
        con.execute("SET threads = 2")
        return con.execute(sql, [str(path)]).fetchall()


class MimicConcept(NamedTuple):
    """A concept of a MIMIC vocabulary, with the phrases and abbreviations that may name it."""

    id: str
    name: str
    source: str  # icd9-dx, icd9-proc, lab, drug
    phrases: list[str]
    abbr: Sequence[str] = ()
    features: frozenset[str] = frozenset()  # catalogue concepts whose facts support it
    any_word: bool = False  # a single derived word may name it without a clinical suffix


def mimic_concepts(files: dict[str, Path]) -> Iterator[MimicConcept]:
    """The concepts of the vocabulary tables in `files` (`vocab_files`), table by table."""
    if "D_ICD_DIAGNOSES" in files:
        for code, short, long in _rows(
            files["D_ICD_DIAGNOSES"], ["icd9_code", "short_title", "long_title"]
        ):
            if not code or code[0] in "EV":
                continue
            yield MimicConcept(
                f"icd9dx:{code}",
                long or short,
                "icd9-dx",
                _dx_phrases(short, long),
                features=_elix_groups(code),
            )
    if "D_ICD_PROCEDURES" in files:
        for code, short, long in _rows(
            files["D_ICD_PROCEDURES"], ["icd9_code", "short_title", "long_title"]
        ):
            if code:
                yield MimicConcept(
                    f"icd9proc:{code}", long or short, "icd9-proc", _proc_phrases(short, long)
                )
    if "D_LABITEMS" in files:
        panel = {str(itemid) for itemid, _, _ in LABS.values()}
        for itemid, label in _rows(files["D_LABITEMS"], ["itemid", "label"]):
            if not label or itemid in panel:
                continue
            phrases, abbr = _lab_phrases(label)
            yield MimicConcept(f"lab:{itemid}", label, "lab", phrases, abbr, any_word=True)
    if "PRESCRIPTIONS" in files:
        for (drug,) in _rows(files["PRESCRIPTIONS"], ["drug"], distinct=True):
            if not drug:
                continue
            phrases = _drug_phrases(drug)
            if not phrases:
                continue
            lc = drug.lower()
            classes = frozenset(
                f"med_{cls}"
                for cls, (_, names, _) in MED_CLASSES.items()
                if any(n in lc for n in names) and not (cls == "anticoagulant" and "flush" in lc)
            )
            yield MimicConcept(
                f"drug:{phrases[0]}", drug, "drug", phrases, features=classes, any_word=True
            )


def mimic_source(settings: Settings) -> Path | None:
    """The MIMIC-III folder whose vocabularies the lexicon adds: `SAFELLM_MIMIC_DIR`, else the
    source the built data was made from (its manifest), when that folder has any of them."""
    candidates: list[Path] = []
    if settings.mimic_dir is not None:
        candidates.append(Path(settings.mimic_dir))
    manifest = settings.data_dir / "manifest.json"
    try:
        source = json.loads(manifest.read_text(encoding="utf-8")).get("source")
        if source:
            candidates.append(Path(source))
    except (OSError, ValueError, AttributeError):
        pass
    for c in candidates:
        if c.is_dir() and vocab_files(c):
            return c
    return None
