"""The clinician chat (Gradio), mounted at `/chat` on the API's server.

Pick a task and a patient; see the risk and its band, a bar chart of the top contributions, and
ask "why is this patient high risk?". The answer streams in sentence by sentence as it passes the
guard; its citations are links to the cited fact or note chunk in the evidence panel; a badge
says whether the guard passed it, re-asked, refused or fell back (and what it found). Follow-up
questions about the same patient use the chat prompt. When API keys are configured, the chat asks
for one (any user name, the key as password).
"""

import html
import re
from collections.abc import Iterator
from typing import Any

import gradio as gr
import pandas as pd

from safellm.explain.facts import Facts, shown_value
from safellm.rationale import CITATION, Explanation
from safellm.service import ExplanationService

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
    rows = [
        f'<div id="ev-{c.id}"><b>[{c.id}]</b> {html.escape(c.label)} = '
        f"{html.escape(shown_value(c.value, c.unit))}; {c.direction} ({c.shap:+.3f})</div>"
        for c in facts.contributions
    ]
    rows += [
        f'<div id="ev-{n.id}"><b>[{n.id}]</b> <i>{html.escape(n.category)}, '
        f"{html.escape(n.chart_time or 'undated')}</i>: {html.escape(n.text)}</div>"
        for n in facts.notes
    ]
    return '<div class="evidence">' + "".join(rows) + "</div>"


def badge(exp: Explanation) -> str:
    g = exp.guard
    head = {
        "fallback": "⚠️ **fallback** — the model's answer failed the checks; the grounded summary is shown",
        "refused": "🛑 **refused** — outside the scope of this patient's risk",
        "re-asked": f"🔁 **passed after {g.attempts - 1} re-ask(s)**",
        "passed": "✅ **passed** every check",
    }[g.outcome]
    rules = ", ".join(g.rules) or "none"
    return f"{head} · found: {rules} · policy {exp.versions.policy} · {exp.versions.llm}"


def build_chat(service: ExplanationService, tasks: list[str]) -> gr.Blocks:
    def choices(task: str) -> list[tuple[str, str]]:
        frame = service.risks(task).head(50)
        out = []
        for r in frame.itertuples():
            unit = (
                f"ICU stay {int(r.icustay_id)}"
                if task == "icu_mortality"
                else f"admission {int(r.hadm_id)}"
            )
            value = str(int(r.icustay_id) if task == "icu_mortality" else int(r.hadm_id))
            risk = f"{r.risk:.1f} days" if task == "los" else f"{r.risk:.0%}"
            out.append((f"{unit} — {risk} ({r.band})", value))
        return out

    def unit_ids(task: str, value: str) -> tuple[int | None, int | None]:
        return (None, int(value)) if task == "icu_mortality" else (int(value), None)

    def pick(task: str, value: str | None) -> tuple[Any, ...]:
        if not value:
            return "", None, "", [], ""
        hadm, icu = unit_ids(task, value)
        facts = service.facts(task, hadm, icu)
        p = facts.prediction
        risk = f"{p.risk:.1f} days" if task == "los" else f"{p.risk:.1%}"
        head = f"### Predicted {risk} — band **{p.band}**\nmodel {facts.model}, bundle {facts.model_version}"
        bars = pd.DataFrame(
            {
                "fact": [f"{c.id} {c.label}" for c in facts.contributions],
                "contribution": [c.shap for c in facts.contributions],
                "direction": [c.direction for c in facts.contributions],
            }
        )
        return head, bars, evidence_html(facts), [], ""

    def ask(
        task: str, value: str | None, question: str, history: list[dict[str, str]]
    ) -> Iterator[tuple[Any, ...]]:
        if not value or not question.strip():
            yield history, "", gr.update()
            return
        hadm, icu = unit_ids(task, value)
        earlier = [
            (history[i]["content"], history[i + 1]["content"])
            for i in range(0, len(history) - 1, 2)
            if history[i]["role"] == "user"
        ]
        facts = service.facts(task, hadm, icu, question)
        history = [
            *history,
            {"role": "user", "content": question},
            {"role": "assistant", "content": ""},
        ]
        streamed: list[str] = []
        import queue
        import threading

        events: queue.Queue[Any] = queue.Queue()

        def work() -> None:
            try:
                exp = service.explain_facts(
                    facts,
                    question=question,
                    prompt="chat" if earlier else "explain-risk",
                    history=earlier or None,
                    on_token=lambda t: events.put(("token", t)),
                    on_llm_error=service.guard.fallback,  # type: ignore[attr-defined]
                )
                events.put(("done", exp))
            except Exception as exc:  # shown as a message, never a traceback
                events.put(("error", exc))

        threading.Thread(target=work, daemon=True).start()
        while True:
            kind, item = events.get()
            if kind == "token":
                streamed.append(item)
                history[-1]["content"] = html.escape("".join(streamed))
                yield history, "", gr.update()
            elif kind == "done":
                history[-1]["content"] = _linked(item.rationale.text)
                yield history, badge(item), evidence_html(item.facts)
                return
            else:
                history[-1]["content"] = html.escape(f"Could not answer: {item}")
                yield history, "", gr.update()
                return

    with gr.Blocks(title="SafeLLM chat") as chat:
        gr.Markdown("## SafeLLM — why is this patient at risk?")
        with gr.Row():
            task = gr.Dropdown(
                tasks, value=tasks[0] if tasks else None, label="Task", elem_id="task"
            )
            patient = gr.Dropdown(
                choices(tasks[0]) if tasks else [], label="Patient", elem_id="patient"
            )
        head = gr.Markdown(elem_id="risk")
        with gr.Row():
            with gr.Column(scale=3):
                bot = gr.Chatbot(
                    label="Explanation", elem_id="answer", height=360, sanitize_html=False
                )
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
        task.change(lambda t: gr.update(choices=choices(t), value=None), task, patient)
        patient.change(pick, [task, patient], [head, bars, evidence, bot, verdict])
        for trigger in (send.click, question.submit):
            trigger(ask, [task, patient, question, bot], [bot, verdict, evidence]).then(
                lambda: "", None, question
            )
    return chat
