"""Note evidence: the chunks most relevant to the top facts and the question, as N1..Nk: no
template headings, no near-duplicates, diverse by maximal marginal relevance."""

from __future__ import annotations

import numpy as np
import pytest

from safellm.data.notes import NoteChunk
from safellm.explain.facts import Contribution, ranked
from safellm.llm.retrieval import (
    NEAR_DUPLICATE,
    EmbeddingSupport,
    HashEmbedder,
    MiniLMEmbedder,
    dedupe,
    jaccard,
    mmr,
    query_for,
    retrieve,
    shingles,
)

CHUNKS = [
    NoteChunk(
        note_id=1, category="Nursing", chart_time="t", text="Family visited; pt in good spirits."
    ),
    NoteChunk(
        note_id=2,
        category="Physician",
        chart_time="t",
        text="Creatinine rising to 2.4, acute kidney injury on chronic kidney disease.",
    ),
    NoteChunk(
        note_id=3,
        category="Radiology",
        chart_time="t",
        text="Chest film: no acute cardiopulmonary process.",
    ),
    NoteChunk(
        note_id=4,
        category="Nursing",
        chart_time="t",
        text="Tolerating regular diet, ambulating in hallway.",
    ),
]


def _contrib(label: str) -> Contribution:
    return ranked([("x", label, 2.4, "mg/dL", 0.5)])[0]


def test_lexical_retrieval_ranks_the_matching_chunk_first() -> None:
    got = retrieve(CHUNKS, query_for([_contrib("Creatinine (last)")], None), HashEmbedder(), k=2)
    assert [e.id for e in got] == ["N1", "N2"]
    assert got[0].note_id == 2 and got[0].category == "Physician"


def test_no_chunks_or_no_k_give_no_evidence() -> None:
    assert retrieve([], "creatinine", HashEmbedder()) == []
    assert retrieve(CHUNKS, "creatinine", HashEmbedder(), k=0) == []


@pytest.mark.slow
def test_minilm_finds_the_chunk_by_meaning() -> None:
    """No shared word: 'renal function' must find the kidney chunk; 'lungs' the chest film."""
    emb = MiniLMEmbedder()
    kidney = retrieve(CHUNKS, "worsening renal function", emb, k=1)
    lungs = retrieve(CHUNKS, "what did imaging of the lungs show", emb, k=1)
    assert kidney[0].note_id == 2 and lungs[0].note_id == 3


def _chunk(note_id: int, text: str, when: str = "2150-03-09 08:00") -> NoteChunk:
    return NoteChunk(note_id=note_id, category="Nursing", chart_time=when, text=text)


KIDNEY = "Creatinine rising to 2.4, acute kidney injury on chronic kidney disease, renal consulted."


def test_near_duplicate_chunks_are_removed_one_kept() -> None:
    """Shift after shift the same template: one copy is offered (the most informative, then the
    earliest charted), never two."""
    copies = [
        _chunk(3, KIDNEY.replace("consulted.", "consulted overnight."), "2150-03-09 20:00"),
        _chunk(1, KIDNEY.replace("consulted.", "consulted today."), "2150-03-09 08:00"),
        _chunk(2, "Family visited; pt in good spirits, tolerating diet."),
        _chunk(4, KIDNEY, "2150-03-08 08:00"),  # earliest, but one shingle fewer
    ]
    assert jaccard(shingles(copies[0].text), shingles(copies[1].text)) >= NEAR_DUPLICATE
    assert dedupe(copies) == [1, 2]  # same length: the earlier charted of 0 and 1; 3 is shorter
    got = retrieve(copies, "creatinine kidney renal", HashEmbedder(), k=4)
    assert sorted(e.note_id for e in got) == [1, 2]
    assert dedupe(copies, threshold=1.01) == [0, 1, 2, 3]


HEADINGS = [
    "HISTORY OF PRESENT ILLNESS:",
    "Admission Date:  [**2161-1-19**]              Discharge Date:   [**2161-1-20**]",
    "Service: MEDICINE",
    "Allergies:",
    "Chief Complaint: History of Present Illness: Past Medical History: Social History:",
    "Date of Birth:  [**2072-7-2**]             Sex:   F",
    "[**2161-1-19**] 5:33PM",
    "MICU Nursing Progress Note 1900-0700",
    "CT HEAD W/O CONTRAST   Clip # [**Clip Number (Radiology) 13528**]",
    "FINAL REPORT",
    "COMPARISON: None.",
    "____________________",
    "Pt stable.",  # very short
]


def test_header_only_chunks_are_never_offered() -> None:
    chunks = [_chunk(i, t) for i, t in enumerate(HEADINGS)] + [
        _chunk(99, "History of present illness: admitted with acute kidney injury, creatinine 7.5.")
    ]
    query = "history of present illness admission discharge date service allergies sex report"
    got = retrieve(chunks, query, HashEmbedder(), k=len(chunks))
    assert [e.note_id for e in got] == [99]
    assert retrieve(chunks[:-1], query, HashEmbedder(), k=5) == []


def test_mmr_picks_a_diverse_second_chunk_over_a_near_copy() -> None:
    """The reordered copy of the top chunk is as relevant (same words) but says nothing new; its
    shingles differ, so de-duplication keeps it and MMR has to pass it over."""
    first = "Creatinine rising to 2.4, acute kidney injury on chronic kidney disease."
    copy = "Acute kidney injury on chronic kidney disease, creatinine rising to 2.4."
    other = "Kidney ultrasound ordered for the creatinine, no dialysis yet."
    chunks = [_chunk(1, first), _chunk(2, copy), _chunk(3, other)]
    assert jaccard(shingles(first), shingles(copy)) < NEAR_DUPLICATE
    query = "Creatinine (last); kidney"
    got = retrieve(chunks, query, HashEmbedder(), k=2)
    assert [e.note_id for e in got] == [1, 3]
    # by relevance alone (lambda 1) the copy would come second
    assert [e.note_id for e in retrieve(chunks, query, HashEmbedder(), k=2, lam=1.0)] == [1, 2]


def test_mmr_alone() -> None:
    rel = np.array([0.9, 0.88, 0.5])
    sim = np.array([[1.0, 0.99, 0.1], [0.99, 1.0, 0.1], [0.1, 0.1, 1.0]])
    assert mmr(rel, sim, 2) == [0, 2]
    assert mmr(rel, sim, 2, lam=1.0) == [0, 1]
    assert mmr(rel, sim, 5) == [0, 2, 1] and mmr(rel, sim, 0) == []
    # less than half as relevant as the best: offered only after every relevant chunk
    off_topic = np.array([0.9, 0.88, 0.3])
    assert mmr(off_topic, sim, 2) == [0, 1]
    assert mmr(off_topic, sim, 2, floor=0.0) == [0, 2]


def test_a_sentence_is_judged_once_per_chunk() -> None:
    calls: list[tuple[str, str]] = []

    def judge(claim: str, evidence: str) -> float:
        calls.append((claim, evidence))
        return 0.9

    support = EmbeddingSupport(HashEmbedder(), judge=judge, ask_judge_below=2.0)
    for _ in range(3):  # the streamed review, then the review of the whole answer
        assert support("Urine output was poor.", "Poor urine output overnight.")[1] == 0.9
    support("Another sentence.", "Poor urine output overnight.")
    assert len(calls) == 2
