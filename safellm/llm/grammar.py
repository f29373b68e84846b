"""The grammar of a slot-based answer, for constrained decoding (llama.cpp GBNF).

A slot-based answer (prompts `explain-risk` v2 and `chat` v2) never writes a fact's label, value
or direction itself: it writes references, which `safellm.rationale.render_slots` fills in from
the Facts:

    {F1}        "Creatinine (last) of 2.4 mg/dL"       {F1.label}  "Creatinine (last)"
    {F1.value}  "2.4 mg/dL"                            {F1.dir}    "raises" / "lowers"
    {risk}      the predicted risk ("23 %", "6.1 days")

`answer_grammar` allows exactly such answers for one set of Facts: references only to the fact ids
given, note citations `[N#]` only to the note ids given, no digit outside a reference (free text is
words of letters and a little punctuation, at most 16 in a row), every sentence carrying a fact
reference or a note citation, and — completeness and directions by construction — the first
sentences opening with "{F1} {F1.dir} ", "{F2} {F2.dir} ", "{F3} {F3.dir} " in that order (as
many facts as there are, up to `required`), the model's own words completing each.
"""

from __future__ import annotations

from collections.abc import Sequence

# free text: words of letters and a little punctuation, one space between them, at most 16 in a
# row — no digit of any script (numbers come from references; a small model otherwise writes "³"
# for the digits it may not use, or pads with spaces), no percent sign, no brace or bracket (refs
# and citations only where the grammar puts them), no sentence end, no line break
_RULES = r"""
words ::= word (" " word)? (" " word)? (" " word)? (" " word)? (" " word)? (" " word)? (" " word)? (" " word)? (" " word)? (" " word)? (" " word)? (" " word)? (" " word)? (" " word)? (" " word)?
word ::= [a-zA-Z,;:'()/-]+
ref ::= "{" fid suf "}" | "{risk}"
suf ::= "" | ".dir" | ".label" | ".value"
end ::= ncite? "."
"""


def _alt(ids: Sequence[str]) -> str:
    return " | ".join(f'"{i}"' for i in ids)


def answer_grammar(
    fact_ids: Sequence[str],
    note_ids: Sequence[str] = (),
    *,
    required: int = 3,
    extra: int = 2,
    chat: bool = False,
) -> str:
    """GBNF for an answer about these facts and notes: `min(required, len(fact_ids))` sentences
    referring in turn to F1, F2, ... (the first `required` ids), then up to `extra` free sentences
    that refer to a fact or cite a note. `chat`: a follow-up answer, 1 to `extra + 1` free
    sentences (no fixed order; a question may be about one fact only)."""
    if not fact_ids:
        raise ValueError("a slot-based answer needs at least one fact")
    lines = ["root ::= " + _root(fact_ids, required, extra, chat)]
    for i, fid in enumerate(fact_ids[: 0 if chat else required], start=1):
        lines.append(f's{i} ::= "{{{fid}}} {{{fid}.dir}} " words end')
    free = '(words " ")? ref (" " words)? (" " ref (" " words)?)? end'
    lines.append(f"sx ::= {free}" + (' | words ncite "."' if note_ids else ""))
    lines.append(f"fid ::= {_alt(fact_ids)}")
    if note_ids:
        lines.append(f'ncite ::= " [" ({_alt(note_ids)}) "]"')
    rules = _RULES if note_ids else _RULES.replace('end ::= ncite? "."', 'end ::= "."')
    return "\n".join(lines) + "\n" + rules.strip() + "\n"


def _root(fact_ids: Sequence[str], required: int, extra: int, chat: bool) -> str:
    more = ' (" " sx)?' * extra
    if chat:
        return "sx" + more
    n = min(required, len(fact_ids))
    return ' " " '.join(f"s{i}" for i in range(1, n + 1)) + more
