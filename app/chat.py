"""The clinician chat (Gradio), mounted at `/chat` on the API's server.

Pick a task and a patient; see the risk and its band, a bar chart of the top contributions, and
ask "why is this patient high risk?". The answer streams in sentence by sentence as it passes the
guard; its citations are links to the cited fact or note chunk in the evidence panel; a badge
says whether the guard passed it, re-asked, refused or fell back (and what it found). Follow-up
questions about the same patient use the chat prompt. While other users' questions are answered
first, the answer says how many are ahead ("2 questions ahead of yours"); picking a patient
prefills the model with that patient's prompt when it is idle (`SAFELLM_PREFETCH`). When API keys
are configured, the chat asks for one (any user name, the key as password): the page shows no
patient before sign-in (the list comes with the session), failed sign-ins slow down the next
ones (per client and per user name), and questions count against the key's rate limit as on the
API. Every answer is recorded in the audit trail by the explanation use case, with the route
`/chat`, the id of the key the user signed in with and a request id. Answers are rendered as
escaped text with citation links, and sanitised again by the browser component.
"""

import html
import math
import re
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import gradio as gr
import pandas as pd

from safellm.errors import SafeLLMError
from safellm.explain.facts import Facts
from safellm.rationale import CITATION, Explanation
from safellm.services.explanation import Ask, Caller, ExplanationService
from safellm.tasks import task_spec

CSS = """
.evidence div:target { background: #fff3b0; outline: 2px solid #e0a800; }
.evidence div { padding: 2px 6px; margin: 2px 0; border-radius: 4px; }
a.cite { font-weight: 600; text-decoration: none; }
"""


def _linked(text: str) -> str:
    """The answer as HTML, each [F#]/[N#] a link to its evidence entry."""

    def link(m: re.Match[str]) -> str:
        ids = re.split(r"\s*[,;]\s*", m.group(1))
        return " ".join(f'<a class="cite" href="#ev-{i}" title="show {i}">[{i}]</a>' for i in ids)

    return CITATION.sub(link, html.escape(text)).replace("\n", "<br>")


def evidence_html(facts: Facts) -> str:
    """The facts (values as displayed, then all other features summed, which no answer may cite)
    and the note chunks, each fact and chunk an anchor for its citation links."""
    rows = [
        f'<div id="ev-{c.id}"><b>[{c.id}]</b> {html.escape(c.label)} = '
        f"{html.escape(c.shown)}; {c.direction} ({c.shap:+.3f})</div>"
        for c in facts.contributions
    ]
    if facts.n_other:
        rows.append(
            f"<div><i>all other features ({facts.n_other})</i>: "
            f"{facts.other_contributions:+.3f}</div>"
        )
    rows += [
        f'<div id="ev-{n.id}"><b>[{n.id}]</b> <i>{html.escape(n.category)}, '
        f"{html.escape(n.chart_time or 'undated')}</i>: {html.escape(n.text)}</div>"
        for n in facts.notes
    ]
    return '<div class="evidence">' + "".join(rows) + "</div>"


def queue_message(ahead: int) -> str:
    """What the answer shows while the question waits for the model, `ahead` others before it."""
    if ahead <= 0:
        return "⏳ Your question is next…"
    return f"⏳ {ahead} question{'s' if ahead != 1 else ''} ahead of yours…"


ICONS = {"fallback": "⚠️", "refused": "🛑", "re-asked": "🔁", "passed": "✅"}


def badge(exp: Explanation) -> str:
    g = exp.guard
    head = f"{ICONS[g.outcome]} **{g.verdict}**"
    rules = ", ".join(g.rules) or "none"
    return f"{head} · found: {rules} · policy {exp.versions.policy} · {exp.versions.llm}"


def build_chat(
    service: ExplanationService,
    tasks: list[str],
    key_of: Callable[[str | None], str] = lambda _user: "-",
    allow: Callable[[str | None], tuple[bool, float]] = lambda _user: (True, 0.0),
) -> gr.Blocks:
    """The chat over `service`; `key_of(user name)` is the key id its answers are audited with,
    `allow(user name)` the rate limit of that key: (allowed, seconds until it is again).
    Nothing about patients is in the page itself: the patient list comes with the session,
    after sign-in."""

    def choices(task: str) -> list[tuple[str, str]]:
        spec = task_spec(task)
        frame = service.risks(task).head(50)
        out = []
        for r in frame.itertuples():
            value = str(int(getattr(r, spec.unit)))
            risk = spec.format_risk(r.risk, 1 if spec.in_days else 0)
            out.append((f"{spec.unit_name} {value} — {risk} ({r.band})", value))
        return out

    def facts_of(task: str, value: str, question: str | None = None) -> Facts:
        # the list is per session (after sign-in), so the page's component accepts any value:
        # it is checked here, as the API checks an id
        if not str(value).isdigit():
            raise gr.Error("Pick a patient from the list.")
        try:
            return service.facts_of(task, {task_spec(task).unit: value}, question)
        except SafeLLMError as exc:
            raise gr.Error(str(exc)) from exc

    def pick(task: str, value: str | None) -> tuple[Any, ...]:
        if not value:
            return "", None, "", [], ""
        facts = facts_of(task, value)
        p = facts.prediction
        risk = task_spec(task).format_risk(p.risk)
        head = f"### Predicted {risk} — band **{p.band}**\nmodel {facts.model}, bundle {facts.model_version}"
        bars = pd.DataFrame(
            {
                "fact": [f"{c.id} {c.label}" for c in facts.contributions],
                "contribution": [c.shap for c in facts.contributions],
                "direction": [c.direction for c in facts.contributions],
            }
        )
        service.prefetch(facts)  # in the background, while the clinician reads and types
        return head, bars, evidence_html(facts), [], ""

    def ask(
        task: str,
        value: str | None,
        question: str,
        history: list[dict[str, str]],
        request: gr.Request,
    ) -> Iterator[tuple[Any, ...]]:
        if not value or not question.strip():
            yield history, "", gr.update()
            return
        ok, wait = allow(request.username)
        if not ok:
            note = f"Too many questions a minute for your key: ask again in {math.ceil(wait)} s."
            asked = [*history, {"role": "user", "content": question}]
            yield [*asked, {"role": "assistant", "content": note}], "", gr.update()
            return
        earlier = [
            (history[i]["content"], history[i + 1]["content"])
            for i in range(0, len(history) - 1, 2)
            if history[i]["role"] == "user"
        ]
        facts = facts_of(task, value, question)
        history = [
            *history,
            {"role": "user", "content": question},
            {"role": "assistant", "content": ""},
        ]
        streamed: list[str] = []
        for e in service.stream(
            facts,
            caller=Caller(key_of(request.username), "/chat", "chat-" + uuid.uuid4().hex[:12]),
            ask=Ask(
                question, prompt="chat" if earlier else "explain-risk", history=earlier or None
            ),
        ):
            if e.kind == "queued":
                history[-1]["content"] = queue_message(e.ahead)
                yield history, "", gr.update()
            elif e.kind == "token":
                streamed.append(e.text)
                history[-1]["content"] = html.escape("".join(streamed))
                yield history, "", gr.update()
            elif e.explanation is not None:
                history[-1]["content"] = _linked(e.explanation.rationale.text)
                yield history, badge(e.explanation), evidence_html(e.explanation.facts)
            else:  # shown as a message, never a traceback
                history[-1]["content"] = html.escape(f"Could not answer: {e.error}")
                yield history, "", gr.update()

    with gr.Blocks(title="SafeLLM chat") as chat:
        gr.Markdown("## SafeLLM — why is this patient at risk?")
        with gr.Row():
            task = gr.Dropdown(
                tasks, value=tasks[0] if tasks else None, label="Task", elem_id="task"
            )
            patient = gr.Dropdown([], label="Patient", elem_id="patient", allow_custom_value=True)
        head = gr.Markdown(elem_id="risk")
        with gr.Row():
            with gr.Column(scale=3):
                bot = gr.Chatbot(label="Explanation", elem_id="answer", height=360)
                question = gr.Textbox(
                    label="Question",
                    placeholder="Why is this patient high risk?",
                    elem_id="question",
                )
                send = gr.Button("Ask", variant="primary", elem_id="ask")
                verdict = gr.Markdown(elem_id="guard")
            with gr.Column(scale=2):
                bars = gr.BarPlot(
                    x="contribution",
                    y="fact",
                    color="direction",
                    label="Top contributions (SHAP)",
                    elem_id="chart",
                )
                evidence = gr.HTML(label="Evidence", elem_id="evidence")
        gr.Markdown(
            "*Decision support only: this explains a model's risk estimate from the listed facts and "
            "notes; it is not a diagnosis or a treatment recommendation.*"
        )

        def linked(request: gr.Request | None) -> tuple[str | None, str | None]:
            """The task and unit id of a link to this page (a CDS card's: `?task=...&hadm_id=N`
            or `&icustay_id=N`), when that unit is in the served data."""
            q = dict(request.query_params) if request is not None else {}
            t, unit = q.get("task"), q.get("icustay_id") or q.get("hadm_id")
            if t not in tasks or not unit or not unit.isdigit():
                return None, None
            try:
                service.locate(t, **{task_spec(t).unit: int(unit)})
            except SafeLLMError:
                return t, None
            return t, unit

        def patients(task: str | None, request: gr.Request) -> Any:
            """The session's patient list (after sign-in), the linked patient picked, else the
            highest-risk one."""
            listed = choices(task) if task else []
            t, unit = linked(request)
            if t is not None and t == task and unit is not None:
                if unit not in {v for _, v in listed}:
                    listed = [(f"{task_spec(t).unit_name} {unit} (linked)", unit), *listed]
                return gr.update(choices=listed, value=unit)
            return gr.update(choices=listed, value=listed[0][1] if listed else None)

        def opened(request: gr.Request) -> Any:
            t, _ = linked(request)
            return gr.update(value=t) if t else gr.update()

        # a linked task is set first; its change (or the load, for the first task) lists patients
        chat.load(opened, None, task).then(patients, task, patient)
        task.change(patients, task, patient)
        patient.change(pick, [task, patient], [head, bars, evidence, bot, verdict])
        for trigger in (send.click, question.submit):
            trigger(ask, [task, patient, question, bot], [bot, verdict, evidence]).then(
                lambda: "", None, question
            )
    return chat
