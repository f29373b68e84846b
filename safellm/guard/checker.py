"""The deterministic claim checker: a rationale, sentence by sentence, against the Facts.

For each sentence it finds the features named (`Lexicon`), the numbers stated (with `%`), the
direction asserted ("raises", "lowers", ...) and ordering claims ("the strongest factor"), and the
citations. Violations (rule ids as in the policy):

    fact.number       a number that matches no fact, prediction figure or task constant
    fact.feature      a feature named that is not among the facts shown
    fact.direction    "raises" for a fact that lowers the risk, or the opposite
    fact.rank         "the strongest factor is X" when X is not F1 ("the second ..." not F2)
    fact.risk         a risk figure (%, probability, predicted days) other than the prediction
    citation.unknown  [F#]/[N#] that does not exist
    citation.mismatch a sentence citing a fact whose feature it does not name, while naming another
    citation.missing  a sentence naming a fact's feature without citing any fact
    note.unsupported  a sentence citing a note chunk that does not support it (`NoteSupport`)
    fact.unsupported_concept
                      a clinical concept beyond the features (a diagnosis, finding, procedure,
                      drug: `ConceptLexicon`) that belongs to no fact and no note chunk the
                      sentence cites, or is named in a sentence citing nothing: "Sepsis raises
                      the risk [F1]" when F1 is the age
    fact.qualifier    a lab or vital value called high, low, normal or abnormal against its
                      reference range ("a low white cell count of 7.2 K/uL" when it is 4-11), or
                      a concept that says so ("hyponatraemia" citing a sodium of 139)

Beyond the concept lexicon, a sentence that cites facts and no note is also checked by meaning:
what it says beyond the features, numbers and directions (its residual words, "a recent fall at
home") is embedded and compared with each fact it cites; below the policy's similarity threshold
for `fact.unsupported_concept` it is about none of them. `evals/fact_similarity.py` measures how
well the packaged embedder separates fair readings of a fact from invented concepts.

Numbers and features in a sentence that cites a note are also accepted when they appear in that
note chunk. A concept belongs to a cited fact when the fact's feature supports it (its Elixhauser
group: "heart failure" and "CHF" for "Congestive heart failure = yes"; its lab: "kidney function"
for a creatinine) or when the fact's label or value names it; to a cited note chunk when the chunk
names it, in any of its phrases or abbreviations ("MI" for "myocardial infarction"). Words the
feature lexicon knows (a creatinine) stay with the feature rules. "Raises/lowers the risk" is a
direction, not a qualifier, and counts and yes/no flags are never qualified. Each violation
carries its span in the text and a detail a clinician can read.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from safellm.data.catalogue import reference_range
from safellm.explain.facts import Contribution, Facts, NoteEvidence, shown_value
from safellm.guard.concepts import ConceptLexicon, ConceptMention, curated_concepts, phrase_key
from safellm.guard.lexicon import Lexicon, Mention, concept_of
from safellm.guard.policy import Policy
from safellm.rationale import CITATION, Violation
from safellm.tasks import task_spec

# cosine similarity and judge probability of a sentence given a note chunk
NoteSupport = Callable[[str, str], tuple[float, float | None]]

# words a sentence about a fact's effect uses without naming anything clinical
_GENERIC = """a about above across after again against all also an and any are as at be been being below
    both but by can could did do does down due during each either even factor factors for from
    further had has have having here how however if in into is it its itself just least less
    lower lowers lowered lowering main major may might more most much must no nor not of off on
    once one only or other others our out over own part per predicted prediction predicts model
    model's patient patient's patients raise raises raised raising increase increases increased
    increasing decrease decreases decreased decreasing reduce reduces reduced reducing risk risks
    estimate score same second she he her his should so some still strongly strong stronger
    strongest such than that the their them then there these they third this those through to
    top too under up upward downward very was we were what when where which while who why will
    with within would yet you your contributes contribute contributed contributing contribution
    drives drive driving driver drivers pushes push pushing pushed adds add adding largest larger
    biggest big greatest great highest higher high lowest low value values level levels likely
    likelihood chance readmission mortality effect effects impact role weight overall together
    along well another next first last because since before given estimates estimated band
    length stay stays days day hours death dying readmitted return returning within"""
GENERIC_WORDS = frozenset(_GENERIC.split())
RESIDUAL_WORD = re.compile(r"[A-Za-z][A-Za-z'-]{2,}")

TASK_CONSTANTS = {6.0, 12.0, 24.0, 30.0, 72.0, 90.0}
NUMBER = re.compile(r"(?<![\w.\[/-])([-+−]?\d+(?:\.\d+)?)(\s*(?:%|percent\b))?(?![\w])")
RAISE = re.compile(
    r"\b(?:raise[sd]?|raising|increas(?:e[sd]?|ing)|elevat(?:es|ed|ing)\s+(?:the\s+)?risk|"
    r"drives?\s+up|driving\s+up|driven\s+up|push(?:es|ed|ing)?\s+(?:it\s+|the\s+risk\s+)?up|adds?\s+to|"
    r"adding\s+to|worsen(?:s|ed|ing)?|risk\s+factor|upward)\b",
    re.I,
)
LOWER = re.compile(
    r"\b(?:lower(?:s|ed|ing)?\s+(?:the\s+|its\s+|this\s+)?(?:risk|predict|estimat|length|stay|it)|"
    r"decreas(?:e[sd]?|ing)|reduc(?:e[sd]?|ing)|protective|protects?|"
    r"driven\s+down|push(?:es|ed|ing)?\s+(?:it\s+|the\s+risk\s+)?down|pull(?:s|ed|ing)?\s+(?:it\s+|the\s+risk\s+)?down|"
    r"hold(?:s|ing)?\s+(?:it\s+|the\s+risk\s+)?down|held\s+down|mitigat\w*|offset\w*|downward)",
    re.I,
)
# "not measured" is a value ("Albumin (lowest): not measured lowers the risk"), not a negation
NEGATION = re.compile(
    r"\b(?:not(?!\s+measured\b)|n't|no longer|neither|nor|never)\b(?:\s+\w+){0,2}\s*$", re.I
)
RANK = re.compile(
    r"\b(?:(second|third)\s+)?(?:strongest|largest|biggest|greatest|main|most\s+important|"
    r"primary|leading|dominant|chief|top)\s+(?:single\s+)?(?:risk\s+)?"
    r"(factor|driver|contributor|contribution|reason|predictor)\b(?!s)",
    re.I,
)
RISK_WORDS = re.compile(r"\b(?:risk|probability|chance|likelihood|odds|predicted|estimate)\b", re.I)
STAY_WORDS = re.compile(r"\b(?:stay|length|days?)\b", re.I)
CLAUSE = re.compile(
    r";|\b(?:while|whereas|but|although|though|however)\b|,\s*(?=\w+\s+(?:raise|lower|increas|decreas|reduc))",
    re.I,
)
LEADING_CITES = re.compile(r"^(?:\s*\[\s*[FN]\d+(?:\s*[,;]\s*[FN]\d+)*\s*\])+\s*")
WHICH = re.compile(r"\s*(?:which|that|this|it|and)\b", re.I)
BOUND = re.compile(
    r"\s*(?:(?:(?:of|=|:|at|was|is|were|are)\s*\(?|\()\s*"
    r"([-+−]?\d+(?:\.\d+)?|yes|no|not measured)|([-+−]?\d+(?:\.\d+)?))(?!\w)(?!\.\d)",
    re.I,
)
QUOTE = re.compile(r'["“]([^"”]{8,})["”]')
# words about a lab or vital value against its reference range (not "raises/lowers the risk")
_QUALIFIER = {
    "high": "high",
    "elevated": "high",
    "raised": "high",
    "increased": "high",
    "low": "low",
    "decreased": "low",
    "reduced": "low",
    "depressed": "low",
    "diminished": "low",
    "normal": "normal",
    "unremarkable": "normal",
    "abnormal": "abnormal",
    "deranged": "abnormal",
}
_QWORD = (
    r"(?P<neg>\bnot\s+|\bnon-?)?(?:(?:abnormally|very|markedly|mildly|slightly|moderately|"
    r"severely|significantly|critically|persistently|extremely|quite|rather|notably|"
    r"substantially|somewhat|modestly|borderline)\s+)?(?P<q>" + "|".join(_QUALIFIER) + r")"
)
# "a high creatinine", "an elevated last creatinine", "low serum albumin"
PRE_QUALIFIER = re.compile(
    r"\b" + _QWORD + r"\s+(?:(?:serum|blood|plasma|last|latest|lowest|highest|peak|recent|"
    r"most\s+recent|admission|final|initial|measured|mean|average)\s+)*$",
    re.I,
)
# "creatinine (2.4 mg/dL) is elevated", "albumin was 3.9 g/dL, which is low", "sodium levels
# were normal", "creatinine within normal limits"
POST_QUALIFIER = re.compile(
    r"^(?:\s*\([^)]*\))*(?:\s+(?:level|levels|value|values|count|concentration|reading|result))?"
    r"(?:\s*(?:of|at|was|is|=|:)?\s*[-+−]?\d+(?:\.\d+)?(?:\s*[^\s,.;()\[\]]+)?)?"
    r"(?:\s*\([^)]*\))?\s*,?\s*(?:which\s+|that\s+)?"
    r"(?:(?:is|was|are|were|remains|remained|being|looks|looked|appears|appeared|seems|seemed|"
    r"came\s+back)\s+" + _QWORD + r"\b|(?:(?:is|was|are|were)\s+)?within\s+(?:the\s+)?"
    r"(?P<wnl>normal)\s+(?:range|limits))",
    re.I,
)
SPLIT = re.compile(r"(?<=[.!?])\s+(?=[A-Z\[(\"'])")


@dataclass
class _Known:
    """What the cited facts and notes name, worked out once per check: the concepts of each
    fact's label and value and of each note chunk, and their phrase keys."""

    fact_ids: dict[str, set[str]]
    fact_keys: dict[str, str]
    note_ids: dict[str, set[str]]
    note_keys: dict[str, str]


@dataclass
class Sentence:
    start: int
    end: int
    text: str
    cited: list[str] = field(default_factory=list)


def sentences(text: str) -> list[Sentence]:
    """Sentences with their spans; a fragment of citations only ("[F1].") joins the previous one."""
    out: list[Sentence] = []
    pos = 0
    for piece in SPLIT.split(text):
        start = text.find(piece, pos)
        end = start + len(piece)
        pos = end
        if not piece.strip():
            continue
        if out and not CITATION.sub("", piece).strip(" .;,"):
            out[-1].end = end
            out[-1].text = text[out[-1].start : end]
            continue
        out.append(Sentence(start, end, piece))
    for prev, cur in itertools.pairwise(out):
        lead = LEADING_CITES.match(cur.text)
        if lead and lead.end() < len(
            cur.text
        ):  # "[F1] Next sentence": [F1] closes the previous one
            prev.end = cur.start + lead.end()
            prev.text = text[prev.start : prev.end].rstrip()
            prev.end = prev.start + len(prev.text)
            cur.start += lead.end()
            cur.text = cur.text[lead.end() :]
    for s in out:
        s.cited = [c for g in CITATION.findall(s.text) for c in re.split(r"\s*[,;]\s*", g)]
    return out


def _flat(text: str) -> str:
    return " ".join(text.lower().split()).strip(" .,;:")


def _bound_ok(token: str, c: Contribution, rel: float) -> bool:
    if token in ("yes", "no", "not measured"):
        return shown_value(c.value, c.unit) == token
    if isinstance(c.value, bool) or not isinstance(c.value, (int, float)):
        return False
    return _matches(float(token), token, float(c.value), rel)


def _decimals(token: str) -> int:
    return len(token.split(".")[1]) if "." in token else 0


def _matches(x: float, token: str, v: float, rel: float) -> bool:
    tol = max(0.5 * 10 ** -_decimals(token) + 1e-9, rel * abs(v))
    return abs(x - v) <= tol


class Checker:
    """Checks rationales against Facts under a policy."""

    def __init__(
        self,
        policy: Policy,
        note_support: NoteSupport | None = None,
        concepts: ConceptLexicon | None = None,
    ) -> None:
        self.policy = policy
        self.lexicon = Lexicon(policy.lexicon)
        # the clinical concepts beyond the features (default: guardrails/concepts.yaml and the
        # catalogue; `safellm.guard.concepts.concept_lexicon(settings)` adds the MIMIC vocabularies)
        self.concepts = concepts if concepts is not None else curated_concepts()
        self.rel = policy.rule("fact.number").relative_tolerance or 0.02
        self.note_support = note_support
        nr = policy.rule("note.unsupported")
        self.sim_min = nr.similarity_threshold if nr.similarity_threshold is not None else 0.35
        self.judge_min = nr.judge_threshold if nr.judge_threshold is not None else 0.6
        # the meaning check of `fact.unsupported_concept` needs the embedder of the note check
        self.similarity: Callable[[str, str], float] | None = getattr(
            note_support, "similarity", None
        )
        self.fact_sim_min = policy.rule("fact.unsupported_concept").similarity_threshold

    # ---------------------------------------------------------------------------------- helpers
    def _fact_numbers(self, facts: Facts) -> list[float]:
        nums: list[float] = []
        for c in facts.contributions:
            if isinstance(c.value, (int, float)) and not isinstance(c.value, bool):
                nums.append(float(c.value))
            nums += [c.shap, abs(c.shap)]
        p = facts.prediction
        nums += [p.base_value, p.model_output, abs(p.base_value), abs(p.model_output)]
        nums += [float(i) for i in range(1, len(facts.contributions) + 1)]
        return nums

    def _risk_numbers(self, facts: Facts, percent: bool) -> list[float]:
        r = facts.prediction.risk
        if task_spec(facts.task).in_days:
            return [r]
        return [100 * r] if percent else [r]

    def strip_disclaimer(self, text: str) -> str:
        d = " ".join(self.policy.disclaimer.split())
        flat = " ".join(text.split())
        if flat.endswith(d):
            idx = text.rfind(self.policy.disclaimer.split()[0])
            return text[:idx].rstrip() if idx >= 0 else text
        return text

    # ------------------------------------------------------------------------------------ check
    def check(self, text: str, facts: Facts) -> list[Violation]:
        text = self.strip_disclaimer(text)
        by_id: dict[str, Contribution | NoteEvidence] = {c.id: c for c in facts.contributions}
        by_id |= {n.id: n for n in facts.notes}
        concepts = {c.id: concept_of(c.feature) for c in facts.contributions}
        shown = set(concepts.values())
        known = self._known(facts)
        out: list[Violation] = []
        for s in sentences(text):
            out += self._sentence(s, facts, by_id, concepts, shown, known)
        return out

    def _known(self, facts: Facts) -> _Known:
        fact_text = {c.id: f"{c.label} {shown_value(c.value, c.unit)}" for c in facts.contributions}
        return _Known(
            fact_ids={i: self.concepts.ids_in(t) for i, t in fact_text.items()},
            fact_keys={i: f" {phrase_key(t)} " for i, t in fact_text.items()},
            note_ids={n.id: self.concepts.ids_in(n.text) for n in facts.notes},
            note_keys={n.id: f" {phrase_key(n.text)} " for n in facts.notes},
        )

    def _sentence(
        self,
        s: Sentence,
        facts: Facts,
        by_id: dict[str, Contribution | NoteEvidence],
        concepts: dict[str, str],
        shown: set[str],
        known: _Known | None = None,
    ) -> list[Violation]:
        out: list[Violation] = []
        span = (s.start, s.end)
        body = CITATION.sub(lambda m: " " * len(m.group(0)), s.text)
        notes = [by_id[c] for c in s.cited if isinstance(by_id.get(c), NoteEvidence)]
        note_text = " ".join(n.text for n in notes if isinstance(n, NoteEvidence)).lower()
        fact_ids = [c for c in s.cited if isinstance(by_id.get(c), Contribution)]

        for cid in s.cited:
            if cid not in by_id:
                out.append(
                    Violation(
                        rule="citation.unknown",
                        detail=f"[{cid}] cites nothing: no such fact or note",
                        span=span,
                    )
                )

        mentions = self.lexicon.mentions(body)
        named = set().union(*(m.concepts for m in mentions)) if mentions else set()
        for m in mentions:
            if not (m.concepts & shown) and m.text.lower() not in note_text:
                out.append(
                    Violation(
                        rule="fact.feature",
                        detail=f"'{m.text}' is not among the facts shown",
                        span=(s.start + m.start, s.start + m.end),
                    )
                )

        # citations: a cited fact whose feature the sentence does not name, while naming others
        mismatched = self._segments(s, mentions, facts, by_id, shown)
        out += mismatched
        for cid in fact_ids:
            if mismatched:
                break
            if named and concepts[cid] not in named and (named & shown):
                c = by_id[cid]
                assert isinstance(c, Contribution)
                out.append(
                    Violation(
                        rule="citation.mismatch",
                        detail=f"[{cid}] is {c.label}, which this sentence does not mention",
                        span=span,
                    )
                )
        if (named & shown) and not fact_ids and not notes:
            out.append(
                Violation(
                    rule="citation.missing",
                    detail="names a fact without citing it ([F#])",
                    span=span,
                )
            )

        out += self._numbers(s, body, facts, note_text)
        out += self._bindings(s, body, facts, mentions, note_text)
        out += self._directions(s, body, facts, by_id, concepts, fact_ids)
        out += self._ranks(s, body, facts, named, fact_ids)
        unsupported_by_note = self._notes(s, body, notes)
        out += unsupported_by_note
        found = [
            cm
            for cm in self.concepts.mentions(body)
            if not any(cm.start < m.end and m.start < cm.end for m in mentions)
        ]
        if not unsupported_by_note:  # a sentence its note does not support is reported once
            known = known or self._known(facts)
            open_ = self._open_concepts(s, found, facts, fact_ids, [n.id for n in notes], known)
            out += open_
            if not open_ and not notes and fact_ids:
                out += self._off_facts(s, body, facts, fact_ids, mentions, found, known)
        out += self._qualifiers(s, body, facts, mentions, found, fact_ids, bool(notes))
        return out

    def _numbers(self, s: Sentence, body: str, facts: Facts, note_text: str) -> list[Violation]:
        out = []
        fact_nums = self._fact_numbers(facts)
        riskish = RISK_WORDS.search(body) is not None
        for m in NUMBER.finditer(body):
            token = m.group(1).replace("−", "-").lstrip("+")
            x = float(token)
            percent = bool(m.group(2))
            span = (s.start + m.start(), s.start + m.end())
            if (x in TASK_CONSTANTS and not percent) or token.lstrip("-") in note_text:
                continue
            if percent:
                ok = any(_matches(x, token, v, self.rel) for v in self._risk_numbers(facts, True))
                ok = ok or any(
                    c.unit == "%"
                    and isinstance(c.value, float)
                    and _matches(x, token, c.value, self.rel)
                    for c in facts.contributions
                )
            else:
                candidates = fact_nums + self._risk_numbers(facts, False)
                ok = any(_matches(x, token, v, self.rel) for v in candidates)
            if ok:
                continue
            about_risk = percent or (riskish and 0 < x < 1)
            spec = task_spec(facts.task)
            about_stay = spec.in_days and STAY_WORDS.search(body) is not None
            if about_risk or about_stay:
                shown = spec.format_risk(facts.prediction.risk)
                detail = f"states {m.group(0).strip()} but the prediction is {shown}"
                out.append(Violation(rule="fact.risk", detail=detail, span=span))
            else:
                detail = f"{m.group(0).strip()} matches no fact or prediction figure"
                out.append(Violation(rule="fact.number", detail=detail, span=span))
        return out

    def _segments(
        self,
        s: Sentence,
        mentions: list[Mention],
        facts: Facts,
        by_id: dict[str, Contribution | NoteEvidence],
        shown: set[str],
    ) -> list[Violation]:
        """Each citation must cite what is named just before it (since the previous citation, in
        a sentence listing "X of 1 [F1], Y of 2 [F2]"): a fact of the same feature, and the very
        fact when its exact label is written ("Lactate (last)" citing the lowest lactate fails)."""
        groups = list(CITATION.finditer(s.text))
        labels = {" ".join(c.label.lower().split()): c for c in facts.contributions}
        out = []
        prev = 0
        for g in groups:
            seg = [m for m in mentions if prev <= m.start and m.end <= g.start()]
            prev = g.end()
            cited = [by_id[c] for c in re.split(r"\s*[,;]\s*", g.group(1)) if c in by_id]
            facts_cited = [c for c in cited if isinstance(c, Contribution)]
            if not seg or not facts_cited or len(facts_cited) < len(cited):
                continue
            if not any(m.concepts & shown for m in seg):
                continue

            def fits(c: Contribution, m: Mention) -> bool:
                exact = labels.get(" ".join(m.text.lower().split()))
                return exact is c if exact is not None else concept_of(c.feature) in m.concepts

            if not any(fits(c, m) for c in facts_cited for m in seg):
                c = facts_cited[0]
                out.append(
                    Violation(
                        rule="citation.mismatch",
                        detail=f"[{c.id}] is {c.label}, but the words before it name "
                        + ", ".join(m.text for m in seg),
                        span=(s.start, s.end),
                    )
                )
        return out

    def _bindings(
        self, s: Sentence, body: str, facts: Facts, mentions: list[Mention], note_text: str
    ) -> list[Violation]:
        """A value written right after a feature ("Creatinine (last) of 11.1 mg/dL", "Age (85
        years)") must be that feature's value, not another fact's: the fact of that exact label,
        else the one the next citation names, else any fact of the feature."""
        out = []
        known = self._fact_numbers(facts) + self._risk_numbers(facts, False)
        for m in mentions:
            b = BOUND.match(body, m.end)
            if b is None:
                continue
            raw = b.group(1) or b.group(2)
            token = raw.replace("−", "-").lower()
            key = " ".join(m.text.lower().split())
            cands = [c for c in facts.contributions if " ".join(c.label.lower().split()) == key]
            cands = cands or self._cited_after(s, m, b.end(), facts)
            cands = cands or [c for c in facts.contributions if concept_of(c.feature) in m.concepts]
            if not cands or (note_text and token in note_text):
                continue
            if any(_bound_ok(token, c, self.rel) for c in cands):
                continue
            if (
                token[-1].isdigit()
                and float(token) not in TASK_CONSTANTS
                and not any(_matches(float(token), token, v, self.rel) for v in known)
            ):
                continue  # a number of no fact at all: `_numbers` reports it

            out.append(
                Violation(
                    rule="fact.number",
                    detail=f"gives {m.text} as {raw}, but the facts give "
                    + " / ".join(shown_value(c.value, c.unit) for c in cands),
                    span=(s.start + m.start, s.start + b.end()),
                )
            )
        return out

    @staticmethod
    def _cited_after(s: Sentence, m: Mention, after: int, facts: Facts) -> list[Contribution]:
        """The facts of `m`'s concept cited by the first citation after position `after` ("Sodium
        of 139 [F1]": F1, when F1 is a sodium fact; several facts may share a concept, such as
        the same lab at two times)."""
        g = next((g for g in CITATION.finditer(s.text) if g.start() >= after), None)
        if g is None:
            return []
        ids = set(re.split(r"\s*[,;]\s*", g.group(1)))
        return [
            c for c in facts.contributions if c.id in ids and concept_of(c.feature) in m.concepts
        ]

    def _directions(
        self,
        s: Sentence,
        body: str,
        facts: Facts,
        by_id: dict[str, Contribution | NoteEvidence],
        concepts: dict[str, str],
        fact_ids: list[str],
    ) -> list[Violation]:
        out = []
        pos = 0
        carried: list[Mention] = []
        for clause in CLAUSE.split(body):
            start = body.find(clause, pos)
            pos = start + len(clause)
            # "X (11.1 mg/dL), which lowers the risk": the relative clause speaks of the last
            # clause's features
            here = self.lexicon.mentions(clause)
            mentions = here or (carried if WHICH.match(clause) else [])
            carried = here or carried
            asserted = set()
            for pat, d in ((RAISE, "raises"), (LOWER, "lowers")):
                for m in pat.finditer(clause):
                    negated = NEGATION.search(clause[: m.start()]) is not None
                    asserted.add(("lowers" if d == "raises" else "raises") if negated else d)
            if len(asserted) != 1:
                continue
            said = asserted.pop()
            for mention in mentions:
                candidates = [
                    by_id[cid] for cid in fact_ids if concepts.get(cid) in mention.concepts
                ] or [c for c in facts.contributions if concept_of(c.feature) in mention.concepts]
                facts_here = [c for c in candidates if isinstance(c, Contribution)]
                if facts_here and all(c.direction != said for c in facts_here):
                    c = facts_here[0]
                    out.append(
                        Violation(
                            rule="fact.direction",
                            detail=f"says {mention.text} {said} the risk, but {c.id} "
                            f"({c.label}) {c.direction} it ({c.shap:+.3f})",
                            span=(s.start + start, s.start + start + len(clause)),
                        )
                    )
        return out

    def _ranks(
        self, s: Sentence, body: str, facts: Facts, named: set[str], fact_ids: list[str]
    ) -> list[Violation]:
        out = []
        for m in RANK.finditer(body):
            k = {"second": 2, "third": 3}.get((m.group(1) or "").lower(), 1)
            if k > len(facts.contributions):
                continue
            target = facts.contributions[k - 1]
            if fact_ids:  # the sentence says which fact it means
                wrong = target.id not in fact_ids
            else:
                wrong = bool(named) and concept_of(target.feature) not in named
            if wrong:
                out.append(
                    Violation(
                        rule="fact.rank",
                        detail=f"claims '{m.group(0)}' but rank {k} is {target.id} ({target.label})",
                        span=(s.start + m.start(), s.start + m.end()),
                    )
                )
        return out

    def _notes(
        self, s: Sentence, body: str, notes: list[Contribution | NoteEvidence]
    ) -> list[Violation]:
        if self.note_support is None:
            return []
        out = []
        claim = " ".join(body.split())
        quotes = QUOTE.findall(body)
        frame = len(CITATION.sub(" ", QUOTE.sub(" ", body)).split())
        for n in notes:
            assert isinstance(n, NoteEvidence)
            if quotes and frame <= 8 and all(_flat(q) in _flat(n.text) for q in quotes):
                continue  # a verbatim quote of the cited note, in a short reporting frame
            sim, judge = self.note_support(claim, n.text)
            if sim >= self.sim_min or (judge is not None and judge >= self.judge_min):
                continue
            extra = f", judge {judge:.2f}" if judge is not None else ""
            out.append(
                Violation(
                    rule="note.unsupported",
                    detail=f"[{n.id}] does not support this sentence (similarity {sim:.2f}{extra})",
                    span=(s.start, s.end),
                )
            )
        return out

    # ------------------------------------------------------------------------- open world
    def _open_concepts(
        self,
        s: Sentence,
        found: list[ConceptMention],
        facts: Facts,
        fact_ids: list[str],
        note_ids: list[str],
        known: _Known,
    ) -> list[Violation]:
        """Every clinical concept named must belong to a cited fact or a cited note chunk."""
        out = []
        cited = [c for c in facts.contributions if c.id in fact_ids]
        for cm in found:
            if any(self._about(c, cm, known) for c in cited) or any(
                cm.ids & known.note_ids.get(n, set())
                or f" {phrase_key(cm.text)} " in known.note_keys.get(n, "")
                for n in note_ids
            ):
                continue
            if not fact_ids and not note_ids:
                detail = f"'{cm.text}' is named, but the sentence cites no fact or note"
            else:
                detail = f"'{cm.text}' belongs to no cited fact or note"
            other = next(
                (
                    c
                    for c in facts.contributions
                    if c.id not in fact_ids and self._about(c, cm, known)
                ),
                None,
            )
            if other is not None:
                detail += f" ({other.id}, {other.label}, is about it but is not cited)"
            out.append(
                Violation(
                    rule="fact.unsupported_concept",
                    detail=detail,
                    span=(s.start + cm.start, s.start + cm.end),
                )
            )
        return out

    def residual(self, body: str, facts: Facts, spans: list[tuple[int, int]]) -> str:
        """What a sentence says beyond the features it names, the numbers, the facts' own label
        words and the generic words of an effect ("raises the risk the most")."""
        kept, pos = [], 0
        for a, b in sorted(spans):
            kept.append(body[pos:a])
            pos = max(pos, b)
        kept.append(body[pos:])
        text = NUMBER.sub(" ", " ".join(kept))
        own = {
            w.lower()
            for c in facts.contributions
            for w in RESIDUAL_WORD.findall(f"{c.label} {shown_value(c.value, c.unit)}")
        }
        words = [
            w
            for w in RESIDUAL_WORD.findall(text)
            if w.lower() not in GENERIC_WORDS and w.lower() not in own
        ]
        return " ".join(words)

    def _off_facts(
        self,
        s: Sentence,
        body: str,
        facts: Facts,
        fact_ids: list[str],
        mentions: list[Mention],
        found: list[ConceptMention],
        known: _Known,
    ) -> list[Violation]:
        """A sentence whose residual words are, by meaning, about none of the facts it cites."""
        if self.similarity is None or self.fact_sim_min is None:
            return []
        # the concepts found (all belong to a cited fact here) stay: they carry the meaning
        rest = self.residual(body, facts, [(m.start, m.end) for m in mentions])
        if len(rest.split()) < 2:
            return []
        cited = [c for c in facts.contributions if c.id in fact_ids]
        # a fact means also the concepts the lexicon found it supports ("fluid overload" for a
        # heart failure flag): their names join its text
        best, near = max(
            (
                self.similarity(
                    rest,
                    " ".join(
                        [f"{c.label} {shown_value(c.value, c.unit)}"]
                        + [cm.text for cm in found if self._about(c, cm, known)]
                    ),
                ),
                c.id,
            )
            for c in cited
        )
        if best >= self.fact_sim_min:
            return []
        return [
            Violation(
                rule="fact.unsupported_concept",
                detail=(
                    f"'{rest}' is about none of the cited facts (closest {near}, "
                    f"similarity {best:.2f} < {self.fact_sim_min:.2f})"
                ),
                span=(s.start, s.end),
            )
        ]

    def _about(self, c: Contribution, cm: ConceptMention, known: _Known) -> bool:
        """Whether fact `c` supports the concept named by `cm`: its feature does, or its label or
        value names the concept."""
        feats = self.concepts.features_of(cm.ids)
        return (
            concept_of(c.feature) in feats
            or c.feature in feats
            or bool(cm.ids & known.fact_ids.get(c.id, set()))
            or f" {phrase_key(cm.text)} " in known.fact_keys.get(c.id, "")
        )

    def _qualifiers(
        self,
        s: Sentence,
        body: str,
        facts: Facts,
        mentions: list[Mention],
        found: list[ConceptMention],
        fact_ids: list[str],
        cites_notes: bool,
    ) -> list[Violation]:
        """High/low/normal/abnormal said of a lab or vital value must fit its reference range;
        so must a concept that says it ("hyponatraemia": a low sodium)."""
        out = []
        labels = {" ".join(c.label.lower().split()): c for c in facts.contributions}

        def candidates(features: set[str], m_end: int, text: str) -> list[Contribution]:
            """The facts a claim about `features` at `text` (ending at `m_end`) is about: the
            fact of that exact label, else those of the next citation, else those the sentence
            cites, else (when it cites no note) any fact of the features."""
            exact = labels.get(" ".join(text.lower().split()))
            if exact is not None:
                return [exact]
            g = next((g for g in CITATION.finditer(s.text) if g.start() >= m_end), None)
            after = set(re.split(r"\s*[,;]\s*", g.group(1))) if g is not None else set()
            for ids in (after, set(fact_ids)):
                hit = [
                    c
                    for c in facts.contributions
                    if c.id in ids and concept_of(c.feature) in features
                ]
                if hit:
                    return hit
            if cites_notes:  # about what the cited note says, not about a fact
                return []
            return [c for c in facts.contributions if concept_of(c.feature) in features]

        # (high/low/normal/abnormal, the facts it may be about, span, the word, a concept?)
        claims: list[tuple[str, list[Contribution], tuple[int, int], str, bool]] = []
        for m in mentions:
            pre = PRE_QUALIFIER.search(body[: m.start])
            post = POST_QUALIFIER.match(body[m.end :])
            for hit, span in (
                (pre, (m.start - len(pre.group(0)) if pre else 0, m.end)),
                (post, (m.start, m.end + (post.end() if post else 0))),
            ):
                if hit is None or hit.group("neg"):
                    continue
                word = (hit.group("q") or hit.group("wnl") or "").lower()
                kind = _QUALIFIER[word]
                cands = candidates(set(m.concepts), m.end, m.text)
                claims.append((kind, cands, span, word, False))
        for cm in found:
            for cid in sorted(cm.ids):
                concept = self.concepts.concepts.get(cid)
                if concept is None or concept.implies is None:
                    continue
                cands = candidates(set(concept.features), cm.end, cm.text)
                claims.append((concept.implies, cands, (cm.start, cm.end), cm.text, True))
        for kind, cands, (a, b), word, named in claims:
            ranged = [
                (c, float(c.value), rr)
                for c in cands
                if isinstance(c.value, (int, float))
                and not isinstance(c.value, bool)
                and (rr := reference_range(c.feature)) is not None
            ]
            if not ranged or not all(_contradicts(kind, v, rr) for _, v, rr in ranged):
                continue
            c, _, (low, high, core_low, core_high) = ranged[0]
            lo, hi = (low, high) if kind == "normal" else (core_low, core_high)
            value = shown_value(c.value, c.unit)
            ref = f"{lo:g}-{hi:g} {c.unit}".rstrip()
            if named:
                detail = f"'{word}' means a {kind} {c.label}, but it is {value} (reference {ref})"
            else:
                detail = f"calls {c.label} ({value}) '{word}', but its reference range is {ref}"
            out.append(
                Violation(rule="fact.qualifier", detail=detail, span=(s.start + a, s.start + b))
            )
        return out


def _contradicts(kind: str, v: float, rr: tuple[float, float, float, float]) -> bool:
    """Whether calling value `v` `kind` (high, low, normal, abnormal) is wrong for reference
    range `rr` (low, high, core low, core high): "low" needs it below the core interval's low,
    "high" above its high, "normal" inside the widest interval, "abnormal" outside the core."""
    low, high, core_low, core_high = rr
    if kind == "high":
        return v <= core_high
    if kind == "low":
        return v >= core_low
    if kind == "normal":
        return v < low or v > high
    return core_low <= v <= core_high
