"""A deterministic chat model that ships with the package: tests and `--model fake` use it.

By default it writes a short rationale from the facts it finds in the prompt (lines such as
`[F1] Creatinine (last) = 11.1 mg/dL; raises the risk`), citing each, so the whole pipeline runs
offline and gives the same answer every time. A script (a list of answers, used in turn) or a
function of the request replaces that behaviour; an exception in the script is raised instead of
answering, which is how tests inject LLM faults.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence

from safellm.llm.base import ChatRequest, ChatResponse, TokenSink
from safellm.text import sentences

Responder = Callable[[ChatRequest], str]

FACT_LINE = re.compile(
    r"^\[(F\d+)\]\s*(?P<label>[^=\n]+?)\s*=\s*(?P<value>[^;\n]+);\s*(?P<dir>raises|lowers)", re.M
)
NOTE_LINE = re.compile(r"^\[(N\d+)\] \([^)]*\) (.+)$", re.M)
FENCE = re.compile(r"<<(?:note|end) [0-9a-f]+>>")
DATE = re.compile(r"\d{1,4}[-/]\d{1,2}[-/]\d{1,4}")


def _notes(prompt: str) -> list[tuple[str, str]]:
    return [(nid, FENCE.sub(" ", text).strip()) for nid, text in NOTE_LINE.findall(prompt)]


def grounded_answer(request: ChatRequest) -> str:
    """A rationale built only from the prompt's fact lines: the top three, in rank order, cited.
    Asked for references (a slot-based prompt), it answers with references."""
    prompt = request.messages[-1].content if request.messages else ""
    parsed = [m.groupdict() | {"id": m.group(1)} for m in FACT_LINE.finditer(prompt)]
    if not parsed:
        return "The facts given do not explain this prediction."
    system = request.messages[0].content if request.messages else ""
    if "{F1.dir}" in system:
        return slot_answer(parsed, _notes(prompt))
    raising = [f for f in parsed[:3] if f["dir"] == "raises"]
    lowering = [f for f in parsed[:3] if f["dir"] == "lowers"]
    parts = []
    if raising:
        items = ", ".join(f"{f['label']} of {f['value'].strip()} [{f['id']}]" for f in raising)
        parts.append(f"The risk is driven up by {items}.")
    if lowering:
        items = ", ".join(f"{f['label']} of {f['value'].strip()} [{f['id']}]" for f in lowering)
        parts.append(f"It is held down by {items}.")
    quoted = _quotable(_notes(prompt))
    if quoted:
        nid, quote = quoted
        parts.append(f'The notes record: "{quote}" [{nid}].')
    return " ".join(parts)


def slot_answer(parsed: list[dict[str, str]], notes: list[tuple[str, str]]) -> str:
    """The grounded answer in references: one sentence per top fact, then a quoted note."""
    first, *rest = [f["id"] for f in parsed[:3]]
    parts = [f"{{{first}}} {{{first}.dir}} the risk the most."]
    parts += [f"{{{fid}}} {{{fid}.dir}} the risk." for fid in rest]
    quoted = _quotable(notes)
    if quoted:
        nid, quote = quoted
        parts.append(f'The notes record: "{quote}" [{nid}].')
    return " ".join(parts)


def _quotable(notes: list[tuple[str, str]]) -> tuple[str, str] | None:
    """The first note sentence fit to quote verbatim: no de-identification marker or date, a
    few words, up to twelve."""
    for nid, text in notes:
        for sentence in sentences(" ".join(text.split())):
            words = sentence.rstrip(".!?").split()
            quote = " ".join(words[:12]).rstrip(".,;:")
            if (
                len(words) >= 4
                and "[**" not in quote
                and not DATE.search(quote)
                and '"' not in quote
            ):
                return nid, quote
    return None


def hallucinating_answer(request: ChatRequest) -> str:
    """What small models get wrong, on purpose: directions flipped, values inflated, an invented
    lab, the second fact called the strongest, a dose. For demonstrating and testing the guards."""
    prompt = request.messages[-1].content if request.messages else ""
    parsed = [m.groupdict() | {"id": m.group(1)} for m in FACT_LINE.finditer(prompt)]
    if len(parsed) < 2:
        return "The lactate of 9.9 mmol/L is the strongest factor [F1]. Give 40 mg furosemide."
    a, b = parsed[0], parsed[1]
    flip = {"raises": "lowers", "lowers": "raises"}
    return (
        f"The strongest factor is {b['label']} [{b['id']}]. "
        f"{a['label']} of 999 {flip[a['dir']]} the risk [{a['id']}]. "
        f"A lactate of 9.9 mmol/L also raises the risk [F1]. Give 40 mg furosemide daily."
    )


class FakeChatModel:
    """Deterministic answers: `script` (answers or exceptions, in turn, the last one repeating),
    or `responder(request)`, or by default `grounded_answer`. `token_delay_s` slows the stream."""

    def __init__(
        self,
        script: Sequence[str | BaseException] | None = None,
        responder: Responder | None = None,
        name: str = "fake",
        token_delay_s: float = 0.0,
    ) -> None:
        self.name = name
        self._script = list(script or [])
        self._responder = responder or grounded_answer
        self._delay = token_delay_s
        self.requests: list[ChatRequest] = []

    def chat(self, request: ChatRequest, on_token: TokenSink | None = None) -> ChatResponse:
        started = time.perf_counter()
        self.requests.append(request)
        if self._script:
            item = self._script[0] if len(self._script) == 1 else self._script.pop(0)
            if isinstance(item, BaseException):
                raise item
            text = item
        else:
            text = self._responder(request)
        tokens = re.findall(r"\S+\s*|\s+", text)
        first = None
        for tok in tokens:
            if self._delay:
                time.sleep(self._delay)
            if first is None:
                first = time.perf_counter() - started
            if on_token is not None:
                on_token(tok)
        return ChatResponse(
            text=text,
            model=self.name,
            finish_reason="stop",
            completion_tokens=len(tokens),
            first_token_s=first,
            total_s=time.perf_counter() - started,
        )
