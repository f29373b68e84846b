"""The open-world checks: clinical concepts beyond the features (`fact.unsupported_concept`) and
qualifier words against reference ranges (`fact.qualifier`), with the curated concept lexicon and
with the vocabularies of the MIMIC-III demo; and no new false flag on correct rationales."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from safellm.config import Settings
from safellm.data.catalogue import ELIXHAUSER, FEATURES, REFERENCE_RANGES, reference_range
from safellm.errors import ConfigError
from safellm.explain.facts import Facts, NoteEvidence, ranked
from safellm.guard import concepts as concepts_mod
from safellm.guard.checker import Checker
from safellm.guard.concepts import (
    ConceptLexicon,
    build_lexicon,
    concept_lexicon,
    load_concept_file,
    mimic_source,
    phrase_key,
)
from safellm.guard.fallback import fallback_answer
from safellm.guard.policy import load_policy
from safellm.llm.fake import grounded_answer
from safellm.llm.prompts import load_prompt
from safellm.rationale import prompt_variables
from safellm.resources import concepts_file, prompts_dir
from safellm.risk.sequences import REFERENCE, describe, lab_bin
from tests.samples import sample_facts

NEW_RULES = ("fact.unsupported_concept", "fact.qualifier")
NOTE = "Admitted with urosepsis and septic shock; history of MI. Vancomycin started."


def demo_facts() -> Facts:
    """Facts like those of a demo admission: age first, then labs, heart failure and a note."""
    return sample_facts().model_copy(
        update={
            "contributions": ranked(
                [
                    ("age", "Age", 76.0, "years", 0.42),
                    ("lab_creatinine_last", "Creatinine (last)", 2.4, "mg/dL", 0.31),
                    ("lab_wbc_min", "White blood cell count (lowest)", 7.2, "K/uL", -0.22),
                    ("elix_chf", "Congestive heart failure", 1.0, "yes/no", 0.15),
                    ("lab_albumin_min", "Albumin (lowest)", 3.9, "g/dL", -0.11),
                    ("lab_sodium_min", "Sodium (lowest)", 139.0, "mEq/L", -0.06),
                    (
                        "lab_creatinine_n_abnormal",
                        "Creatinine: abnormal results",
                        3.0,
                        "results",
                        0.04,
                    ),
                ]
            ),
            "notes": [
                NoteEvidence(id="N1", note_id=7, category="Physician", chart_time=None, text=NOTE)
            ],
        }
    )


@pytest.fixture(scope="module")
def curated() -> Checker:
    """The checker as `Checker(policy)` builds it: the curated concept lexicon, no note judge."""
    return Checker(load_policy())


@pytest.fixture(scope="module")
def demo_lexicon(tmp_path_factory: pytest.TempPathFactory) -> ConceptLexicon:
    demo = Path(__file__).resolve().parents[2].parent / "shared/data/mimic-iii-demo-1.4"
    if not demo.is_dir():
        pytest.skip("the MIMIC-III demo is not there")
    home = tmp_path_factory.mktemp("concepts-home")
    return concept_lexicon(Settings(home=home, mimic_dir=demo))


@pytest.fixture(scope="module", params=["curated", "mimic"])
def checker(request: pytest.FixtureRequest, curated: Checker) -> Checker:
    if request.param == "curated":
        return curated
    return Checker(load_policy(), concepts=request.getfixturevalue("demo_lexicon"))


def rules(checker: Checker, text: str, facts: Facts | None = None) -> list[str]:
    return sorted({v.rule for v in checker.check(text, facts or demo_facts())})


# --------------------------------------------------------------------- unsupported concepts
@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("Sepsis raises the predicted risk [F1].", "Sepsis"),
        ("A recent myocardial infarction raises the predicted risk [F1].", "myocardial infarction"),
        ("An MI raises the predicted risk [F1].", "MI"),
        ("Pneumonia raises the risk [F2].", "Pneumonia"),
        ("COPD and an age of 76 years raise the risk [F1].", "COPD"),
        ("Ongoing haemodialysis raises the risk [F2].", "haemodialysis"),
        ("The patient also has heart failure.", "heart failure"),
        ("Metoprolol lowers the risk [F3].", "Metoprolol"),
    ],
)
def test_a_concept_of_no_cited_fact_or_note_fails(checker: Checker, text: str, named: str) -> None:
    found = [v for v in checker.check(text, demo_facts()) if v.rule == "fact.unsupported_concept"]
    assert len(found) == 1, checker.check(text, demo_facts())
    v = found[0]
    assert v.span is not None and text[v.span[0] : v.span[1]] == named
    assert f"'{named}'" in v.detail


def test_the_detail_says_what_is_wrong(curated: Checker) -> None:
    (v,) = curated.check("Sepsis raises the predicted risk [F1].", demo_facts())
    assert v.detail == "'Sepsis' belongs to no cited fact or note"
    (v,) = curated.check("The patient also has heart failure.", demo_facts())
    assert v.detail.startswith("'heart failure' is named, but the sentence cites no fact or note")
    (v,) = curated.check("CHF raises the risk [F1].", demo_facts())
    assert "F4, Congestive heart failure, is about it but is not cited" in v.detail


@pytest.mark.parametrize(
    "text",
    [
        "An age of 76 years raises the risk [F1].",
        "Age (76 years) raises the risk [F1].",
        "A last creatinine of 2.4 mg/dL raises the risk [F2].",
        "Congestive heart failure (yes) raises the risk [F4].",
        "Heart failure raises the risk [F4].",
        "CHF raises the risk [F4].",
        "A history of congestive cardiac failure raises the risk [F4].",
        "The last creatinine of 2.4 mg/dL reflects kidney function and raises the risk [F2].",
        "The notes describe urosepsis and septic shock [N1].",
        "Sepsis is documented in the notes [N1].",
        "A prior myocardial infarction is recorded [N1].",
        "Vancomycin was started [N1].",
        "An age of 76 years raises the risk [F1]; the notes mention sepsis [N1].",
        "The model estimates a 42% risk of readmission within 30 days.",
        "The predicted risk is high.",
    ],
)
def test_concepts_of_cited_facts_and_notes_pass(checker: Checker, text: str) -> None:
    assert checker.check(text, demo_facts()) == []


def test_feature_words_keep_the_feature_rules(checker: Checker) -> None:
    """A word the feature lexicon knows is not reported again as an unsupported concept."""
    assert rules(checker, "A high lactate raises the risk [F1].") == ["fact.feature"]
    assert rules(checker, "A last creatinine of 2.4 mg/dL raises the risk [F1].") == [
        "citation.mismatch"
    ]
    assert rules(checker, "A last creatinine of 2.4 mg/dL raises the risk.") == ["citation.missing"]


# ------------------------------------------------------------------------------- qualifiers
@pytest.mark.parametrize(
    "text",
    [
        "A low white blood cell count of 7.2 K/uL lowers the risk [F3].",
        "The lowest white blood cell count (7.2 K/uL) was low, which lowers the risk [F3].",
        "A low albumin of 3.9 g/dL lowers the risk [F5].",
        "An abnormal lowest sodium of 139 mEq/L lowers the risk [F6].",
        "Hyponatraemia lowers the risk [F6].",
        "Leukopenia lowers the risk [F3].",
        "A normal last creatinine of 2.4 mg/dL raises the risk [F2].",
        "The last creatinine was within normal limits [F2].",
    ],
)
def test_a_qualifier_against_the_reference_range_fails(checker: Checker, text: str) -> None:
    found = [v for v in checker.check(text, demo_facts()) if v.rule == "fact.qualifier"]
    assert len(found) == 1, checker.check(text, demo_facts())
    assert "reference" in found[0].detail


def test_the_qualifier_detail_names_the_value_and_the_range(curated: Checker) -> None:
    text = "A low white blood cell count of 7.2 K/uL lowers the risk [F3]."
    (v,) = curated.check(text, demo_facts())
    assert v.rule == "fact.qualifier" and v.span is not None
    assert text[v.span[0] : v.span[1]] == "low white blood cell count"
    assert v.detail == (
        "calls White blood cell count (lowest) (7.2 K/uL) 'low', but its reference range is "
        "4-11 K/uL"
    )


@pytest.mark.parametrize(
    "text",
    [
        "A high creatinine of 2.4 mg/dL raises the risk [F2].",
        "An elevated last creatinine (2.4 mg/dL) raises the risk [F2].",
        "The last creatinine of 2.4 mg/dL is markedly raised [F2].",
        "A normal lowest white blood cell count of 7.2 K/uL lowers the risk [F3].",
        "A normal lowest sodium of 139 mEq/L lowers the risk [F6].",
        "The lowest albumin of 3.9 g/dL lowers the risk [F5].",
        # directions, not qualifiers; "low risk" is not about a fact's value
        "The last creatinine of 2.4 mg/dL raises the risk [F2].",
        "The lowest white blood cell count of 7.2 K/uL lowers the risk [F3].",
        "Despite the high risk, the lowest albumin of 3.9 g/dL lowers it [F5].",
        "The lowest sodium of 139 mEq/L lowers the risk [F6], a low risk factor here.",
        "The lowest white blood cell count of 7.2 K/uL is not low [F3].",
        # counts and yes/no flags are not qualified
        "A high number of abnormal creatinine results raises the risk [F7].",
        "Creatinine: abnormal results (3 results) raises the risk [F7].",
        "Congestive heart failure (yes) raises the risk [F4].",
    ],
)
def test_qualifiers_that_fit_and_other_words_pass(checker: Checker, text: str) -> None:
    assert checker.check(text, demo_facts()) == []


def test_the_reference_ranges_cover_the_labs_and_vitals_and_the_temporal_bins() -> None:
    assert reference_range("lab_wbc_min") == (4.0, 11.0, 4.0, 11.0)
    assert reference_range("lab_creatinine") == REFERENCE_RANGES["lab_creatinine"]
    assert reference_range("lab_creatinine_n_abnormal") is None
    assert reference_range("age") is None and reference_range("elix_chf") is None
    for name, f in FEATURES.items():
        ranged = name.startswith(("lab_", "vital_")) and not name.endswith("_n_abnormal")
        assert (f.low is not None) == ranged, name
        if ranged:
            assert f.low <= (f.core_low or 0) < (f.core_high or 0) <= (f.high or 0), name
    # the temporal model's low/normal/high bins lie between the widest and narrowest intervals,
    # so its labels ("Sodium low, last 24 h") never contradict the qualifier rule
    for stem, (lo, hi) in REFERENCE.items():
        low, high, core_low, core_high = REFERENCE_RANGES[f"lab_{stem}"]
        assert low <= lo <= core_low and core_high <= hi <= high, stem


# ------------------------------------------------------------------------ the lexicon itself
def test_the_packaged_concept_file_loads_with_the_catalogue_groups() -> None:
    spec = load_concept_file()
    lex = build_lexicon()
    assert spec.version >= 1 and len(spec.concepts) >= 250 and len(lex.concepts) >= 280
    for group, (label, _, _) in ELIXHAUSER.items():  # "HIV/AIDS": two abbreviations
        named = lex.phrases.get(phrase_key(label), set()) | lex.abbr.get(
            label.split("/")[-1], set()
        )
        assert f"elix_{group}" in named, label
    assert {"elix_chf"} <= lex.phrases["heart failure"] and "elix_chf" in lex.abbr["CHF"]
    assert lex.concepts["elix_chf"].features == {"elix_chf"}
    assert lex.concepts["hyponatraemia"].implies == "low"


def test_matching_folds_spellings_and_keeps_abbreviations_exact(curated: Checker) -> None:
    lex = curated.concepts
    found = lex.mentions("Anemia, haemorrhage and oedema; MI, mi, AIDS and aids; infections.")
    assert [m.text for m in found] == [
        "Anemia",
        "haemorrhage",
        "oedema",
        "MI",
        "AIDS",
        "infections",
    ]
    assert lex.ids_in("anaemia") == lex.ids_in("anemia") != set()
    assert "c_difficile" in lex.ids_in("C. diff colitis") and not lex.ids_in("risk, age, count")


@pytest.mark.parametrize(
    ("edit", "problem"),
    [
        ("  - {id: sepsis, phrases: [bacteraemia]}\n", "duplicate concept id(s): sepsis"),
        ("  - {id: x1, phrases: [foo], features: [lab_foo]}\n", "unknown feature(s) lab_foo"),
        ("  - {id: x2, phrases: [history]}\n", "phrase 'history' is a generic word"),
        ("  - {id: x3, phrases: [foo], features: [elix_chf], implies: low}\n", "needs a lab_"),
        ("  - {id: x4, phrases: [fo]}\n", "phrase 'fo' is too short"),
    ],
)
def test_an_invalid_concept_file_is_a_config_error_naming_the_problem(
    tmp_path: Path, edit: str, problem: str
) -> None:
    text = concepts_file().read_text(encoding="utf-8")
    bad = tmp_path / "concepts.yaml"
    bad.write_text(text.replace("concepts:\n", "concepts:\n" + edit, 1), encoding="utf-8")
    with pytest.raises(ConfigError, match="invalid concept lexicon") as err:
        load_concept_file(bad)
    assert problem in str(err.value) and str(bad) in str(err.value)
    bad.write_text("version: [", encoding="utf-8")
    with pytest.raises(ConfigError, match="cannot read the concept lexicon"):
        load_concept_file(bad)


def test_the_mimic_lexicon_adds_the_data_vocabulary_without_generic_words(
    demo_lexicon: ConceptLexicon,
) -> None:
    lex = demo_lexicon
    assert lex.info["mimic"] and set(lex.info["tables"]) == set(concepts_mod.VOCAB_TABLES)
    assert len(lex) > 10_000 and len(lex) > 3 * len(build_lexicon())
    by = lex.info["by_source"]
    assert min(by["icd9-dx"], by["icd9-proc"], by["lab"], by["drug"]) > 100
    for phrase in ("subendocardial infarction", "acute kidney failure", "kidney failure"):
        assert phrase_key(phrase) in lex.phrases, phrase
    assert "elix_chf" in lex.features_of(lex.phrases["congestive heart failure"])
    for word in (
        *("risk", "patient", "history", "age", "other", "unspecified", "acute", "admission"),
        *("count", "lack", "onset", "loss", "delay", "referral", "elevation", "young", "call"),
        *("stat", "2", "10", "unspecified acute"),
    ):
        assert phrase_key(word) not in lex.phrases, word


def test_the_mimic_lexicon_is_built_once_and_cached(
    tmp_path: Path, demo_lexicon: ConceptLexicon, monkeypatch: pytest.MonkeyPatch
) -> None:
    demo = Path(demo_lexicon.info["mimic"])
    calls: list[Path | None] = []

    def build(curated: Path | None = None, mimic_dir: Path | None = None) -> ConceptLexicon:
        calls.append(mimic_dir)
        return demo_lexicon

    monkeypatch.setattr(concepts_mod, "build_lexicon", build)
    monkeypatch.setattr(concepts_mod, "_MEMO", {})
    settings = Settings(home=tmp_path / "home", mimic_dir=demo)
    first = concept_lexicon(settings)
    assert first is demo_lexicon and calls == [demo]
    (cached,) = (tmp_path / "home" / "cache" / "concepts").glob("concepts-*.json")
    assert concept_lexicon(settings) is first and len(calls) == 1
    concepts_mod._MEMO.clear()
    again = concept_lexicon(settings)  # read back from the cache file, not rebuilt
    assert len(calls) == 1 and again is not first
    assert again.phrases == first.phrases and again.abbr == first.abbr
    assert again.concepts == first.concepts and again.info == first.info
    # the MIMIC folder: SAFELLM_MIMIC_DIR, else the source of the built data, else none
    data = tmp_path / "built" / "data"
    data.mkdir(parents=True)
    (data / "manifest.json").write_text(json.dumps({"source": str(demo)}), encoding="utf-8")
    assert mimic_source(Settings(home=tmp_path / "built")) == demo
    assert mimic_source(Settings(home=tmp_path / "other")) is None
    cached.write_text("{not json", encoding="utf-8")  # a broken cache is rebuilt
    concepts_mod._MEMO.clear()
    assert concept_lexicon(settings) is demo_lexicon and len(calls) == 2


# ------------------------------------------------------------- no new false flags, anywhere
def _catalogue_facts() -> list[Facts]:
    """Facts over every catalogue feature and every temporal event kind, six at a time, with
    values inside and outside the reference ranges and MIMIC's categories."""
    categorical = {
        "sex": "F",
        "ethnicity_group": "BLACK/AFRICAN AMERICAN",
        "insurance": "Medicare",
        "admission_type": "EMERGENCY",
        "admission_location": "CLINIC REFERRAL/PREMATURE",
        "discharge_location": "DISC-TRAN CANCER/CHLDRN H",
        "last_service": "CSURG",
        "icu_first_careunit": "CSRU",
    }
    parts: list[tuple[str, str, float | str, str]] = []
    for name, f in FEATURES.items():
        if f.kind == "categorical":
            parts.append((name, f.label, categorical[name], f.unit))
        elif f.kind == "binary":
            parts.append((name, f.label, 1.0, f.unit))
        elif f.low is not None and f.high is not None:
            for v in (f.low * 0.5, (f.low + f.high) / 2, f.high * 1.5):
                parts.append((name, f.label, round(v, 1), f.unit))
        else:
            parts.append((name, f.label, 3.0, f.unit))
    for stem, (lo, hi) in REFERENCE.items():
        for v in (lo * 0.6, (lo + hi) / 2, hi * 1.4):
            ev = describe(f"lab:{stem}:{lab_bin(stem, v)}", "last 24 h")
            parts.append((ev.feature, ev.label, round(v, 1), ev.unit))
    for token in ("med:opioid", "dx:chf", "dxnow:hypertension", "dx:metastatic_cancer", "age"):
        ev = describe(token, "earlier this stay")
        parts.append((ev.feature, ev.label, 1.0 if ev.unit == "yes/no" else 70.0, ev.unit))
    # one value of a feature per Facts, as an explainer gives them
    rounds: list[list[tuple[str, str, float | str, str]]] = []
    for p in parts:
        r = next((r for r in rounds if all(q[0] != p[0] for q in r)), None)
        if r is None:
            rounds.append(r := [])
        r.append(p)
    base = sample_facts()
    out = []
    chunks = [r[i : i + 6] for r in rounds for i in range(0, len(r), 6)]
    for chunk in chunks:
        sign = [1, -1, 1, -1, 1, -1]
        contributions = ranked(
            [(n, lab, v, u, sign[k] * (0.5 - 0.05 * k)) for k, (n, lab, v, u) in enumerate(chunk)]
        )
        out.append(base.model_copy(update={"contributions": contributions, "notes": []}))
    return out


def test_the_fallback_and_the_fake_answer_still_pass_over_every_kind_of_fact(
    checker: Checker,
) -> None:
    prompt = load_prompt(prompts_dir(), "explain-risk", 1)
    question = "Why is this patient at this risk?"
    n = 0
    for facts in _catalogue_facts():
        for task in ("readmission", "los"):
            f = facts.model_copy(update={"task": task})
            text = fallback_answer(f, top=6).text
            assert checker.check(text, f) == [], text
            # the fake model lists several facts in one sentence, where a temporal event of an
            # Elixhauser group the feature lexicon does not know ("Hypertension, coded this
            # admission") already meets citation.mismatch: only the new rules are asserted here
            text = grounded_answer(prompt.request(**prompt_variables(f, question)))
            found = [v for v in checker.check(text, f) if v.rule in NEW_RULES]
            assert found == [], text
            n += 2
    assert n > 100


@pytest.mark.slow
def test_the_service_guard_uses_the_data_vocabulary_and_passes_every_demo_unit(
    demo_home: Path,
) -> None:
    """The guard the service builds has the MIMIC vocabularies of the data's source; the
    fallback and the fake model's answer pass it for every unit of the three demo tasks."""
    from safellm.services.explanation import ExplanationService

    service = ExplanationService(Settings(home=demo_home, explain_notes=0))
    guard = service.guard
    assert guard.checker.concepts.info["mimic"] is not None
    assert "fact.unsupported_concept" in {
        v.rule for v in guard.review("Sepsis raises the risk [F1].", sample_facts()).blocking
    }
    prompt = load_prompt(prompts_dir(), "explain-risk", 1)
    n = 0
    for task in ("readmission", "icu_mortality", "los"):
        explainer = service.explainer(task)
        for _, row in service.task_data(task).frame.iterrows():
            full = explainer.facts(row)
            facts = full.model_copy(update={"contributions": full.contributions[:6], "notes": []})
            request = prompt.request(**prompt_variables(facts, "Why?"))
            for text in (fallback_answer(facts, top=6).text, grounded_answer(request)):
                review = guard.review(text, facts)
                assert review.blocking == [] and review.fixed == [], (task, text, review)
                n += 1
    assert n == 2 * (89 + 114 + 119)
