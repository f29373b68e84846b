"""Note evidence: the chunks most relevant to the top facts and the question, as N1..Nk."""

from __future__ import annotations

import pytest

from safellm.data.notes import NoteChunk
from safellm.explain.facts import Contribution, ranked
from safellm.llm.retrieval import HashEmbedder, MiniLMEmbedder, query_for, retrieve

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
