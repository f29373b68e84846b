"""The grammar of a slot-based answer, for constrained decoding (llama.cpp GBNF).

A slot-based answer (prompts `explain-risk` and `chat`, v2 and v3) never writes a fact's label, value
or direction itself: it writes references, which `safellm.rationale.render_slots` fills in from
the Facts:

    {F1}        "Creatinine (last) of 2.4 mg/dL"       {F1.label}  "Creatinine (last)"
    {F1.value}  "2.4 mg/dL"                            {F1.dir}    "raises" / "lowers"
    {risk}      the predicted risk ("23 %", "6.1 days")

`answer_grammar` allows exactly such answers for one set of Facts: references only to the fact ids
given, note citations `[N#]` only to the note ids given, no digit outside a reference (free text is
words of letters and a little punctuation, at most 16 in a row and 32 letters each), every sentence
carrying a fact reference or a note citation, and — completeness and directions by construction —
the first sentences opening with "{F1} {F1.dir} ", "{F2} {F2.dir} ", "{F3} {F3.dir} " in that order (as
many facts as there are, up to `required`), the model's own words completing each.

`answer_schema` says the same as a JSON schema, for API models whose provider supports structured
output (LiteLLM's `supports_response_schema`): one string per required sentence (`s1`, `s2`, ...,
each opening with its reference), then up to `extra` more, each a pattern of words, references and
citations without a digit; `schema_answer_text` joins such an answer back into the slot text.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

# free text: words of letters and a little punctuation (at most 32 characters: a model caught
# in a loop cannot write one endless word), one space between them, at most 16 in a
# row — no digit of any script (numbers come from references; a small model otherwise writes "³"
# for the digits it may not use, or pads with spaces), no percent sign, no brace or bracket (refs
# and citations only where the grammar puts them), no sentence end, no line break
_RULES = r"""
words ::= word (" " word)? (" " word)? (" " word)? (" " word)? (" " word)? (" " word)? (" " word)? (" " word)? (" " word)? (" " word)? (" " word)? (" " word)? (" " word)? (" " word)? (" " word)?
word ::= [a-zA-Z,;:'()/-]{1,32}
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


_WORD = "[A-Za-z,;:'()/-]"


def _esc(text: str) -> str:
    """Escape for an ECMA-262 pattern (JSON schema): only the characters that need it (a `re.escape`
    of a space is an error under the unicode flag)."""
    return re.sub(r"([.{}\[\]()|*+?^$\\])", r"\\\1", text)


def _ref_pattern(fact_ids: Sequence[str], note_ids: Sequence[str]) -> str:
    facts = "|".join(_esc(i) for i in fact_ids)
    alts = [rf"\{{(?:{facts})(?:\.dir|\.label|\.value)?\}}", r"\{risk\}"]
    if note_ids:
        alts.append(r"\[(?:" + "|".join(_esc(i) for i in note_ids) + r")\]")
    return "(?:" + "|".join(alts) + ")"


def answer_schema(
    fact_ids: Sequence[str],
    note_ids: Sequence[str] = (),
    *,
    required: int = 3,
    extra: int = 2,
    chat: bool = False,
) -> dict[str, Any]:
    """A strict JSON schema for a slot-based answer about these facts and notes (see
    `answer_grammar` for the same answer as GBNF)."""
    if not fact_ids:
        raise ValueError("a slot-based answer needs at least one fact")
    ref = _ref_pattern(fact_ids, note_ids)
    cite = r"(?: \[(?:" + "|".join(_esc(i) for i in note_ids) + r")\])?" if note_ids else ""
    text = f"(?:{_WORD}| )"
    free = {"type": "string", "pattern": f"^{text}*{ref}(?:{text}|{ref})*\\.$"}
    props: dict[str, Any] = {}
    if chat:
        props["sentences"] = {"type": "array", "items": free, "minItems": 1, "maxItems": extra + 1}
    else:
        for i, fid in enumerate(fact_ids[:required], start=1):
            head = _esc("{" + fid + "} {" + fid + ".dir} ")
            props[f"s{i}"] = {
                "type": "string",
                "pattern": f"^{head}{_WORD}+(?: {_WORD}+){{0,15}}{cite}\\.$",
            }
        props["more"] = {"type": "array", "items": free, "maxItems": extra}
    return {
        "type": "object",
        "properties": props,
        "required": list(props),
        "additionalProperties": False,
    }


def schema_answer_text(raw: str) -> str:
    """The slot text of a JSON answer of `answer_schema`: its sentences in order, joined. A
    `ValueError` when it is not such an answer."""
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ValueError(f"the answer is not JSON: {exc.msg} at {exc.pos}") from exc
    if not isinstance(data, dict):
        raise ValueError("the answer is not a JSON object")
    fixed = sorted((k for k in data if re.fullmatch(r"s\d+", k)), key=lambda k: int(k[1:]))
    parts: list[Any] = [data[k] for k in fixed]
    for key in ("more", "sentences"):
        parts += data.get(key) or []
    if not parts or not all(isinstance(p, str) for p in parts):
        raise ValueError("the answer has no sentences, or one that is not a string")
    return " ".join(" ".join(p.split()) for p in parts if p.strip())
