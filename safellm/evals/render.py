"""The eval report as files: `report.json` (everything), `report.md` (the summary tables) and
`report.html` (the same with plots: raw vs guarded per metric, mutation detection per kind,
latency per mode)."""

from __future__ import annotations

import html
from pathlib import Path

from safellm.evals.evaluators import METRICS, RUN, RUN_METRICS, Kind
from safellm.evals.report import EvalReport, RunSummary

# the bar charts of a run, raw vs guarded: (title, kind of the metrics shown, scale)
CHARTS: tuple[tuple[str, Kind, float], ...] = (
    ("rates (%)", "rate", 100.0),
    ("counts (answers)", "count", 1.0),
)


def fmt(metric: str, v: float | None) -> str:
    """A metric's value as its evaluator declares it is shown (a name no evaluator declares: as a
    plain number)."""
    known = METRICS.get(metric)
    if known is not None:
        return known.show(v)
    return "–" if v is None else f"{v:.1f}"


def charted(kind: Kind) -> list[str]:
    """The run metrics of one kind, in the report's order."""
    return [m.name for m in RUN if m.kind == kind]


def _targets(report: EvalReport, run: RunSummary) -> dict[tuple[str, str], tuple[str, bool]]:
    return {(g.mode, g.metric): (g.target, g.passed) for g in report.gates if g.run == run.label}


def columns(report: EvalReport) -> list[tuple[RunSummary, str]]:
    """Each run with the name of its columns: the prompt alone when every run has one model."""
    one_model = len({r.model for r in report.runs}) == 1
    return [(r, r.prompt if one_model else r.label) for r in report.runs]


def _runs(report: EvalReport) -> list[str]:
    lines = []
    for run, c in columns(report):
        follow = f"; follow-up cases with {run.followup_prompt}" if run.followup_prompt else ""
        lines.append(f"- {c}: {run.model} · {run.prompt}{follow}")
        lines += [f"  - note: {n}" for n in run.notes]
    return ["Runs:", "", *lines, ""]


def _side_by_side(report: EvalReport) -> list[str]:
    """Every run metric, the runs' raw and guarded columns next to each other."""
    cols = columns(report)
    lines = [
        "## Side by side",
        "",
        "Guarded values that miss their gate are marked **NO**.",
        "",
        "| metric | "
        + " | ".join(f"{c} raw | {c} guarded" for _, c in cols)
        + " | guarded target |",
        "|---" + "|---:|---:" * len(cols) + "|---:|",
    ]
    for m in RUN_METRICS:
        cells, target = [], ""
        for run, _ in cols:
            t, ok = _targets(report, run).get(("guarded", m), ("", True))
            target = target or t
            guarded = fmt(m, run.metrics["guarded"].get(m)) + ("" if ok else " **NO**")
            cells.append(f"{fmt(m, run.metrics['raw'].get(m))} | {guarded}")
        lines.append(f"| {m} | " + " | ".join(cells) + f" | {target} |")
    return [*lines, ""]


def _by_style(report: EvalReport) -> list[str]:
    """A table per metric declared `by_style`: its value per case style, raw → guarded, the runs
    side by side."""
    cols = columns(report)
    if not cols:
        return []
    lines: list[str] = []
    for metric in RUN:
        if not metric.by_style:
            continue
        m = metric.name
        styles = sorted(
            {
                st
                for run, _ in cols
                for st, modes in run.by_style.items()
                if any(values.get(m) is not None for values in modes.values())
            }
        )
        if not styles:
            continue
        guarded = [r for r in cols[0][0].records if r.mode == "guarded"]
        lines += [
            f"## {m} by style",
            "",
            f"{metric.description} Raw → guarded.",
            "",
            "| style | cases | " + " | ".join(c for _, c in cols) + " |",
            "|---|---:" + "|---" * len(cols) + "|",
        ]
        for st in styles:
            cells = []
            for run, _ in cols:
                modes = run.by_style.get(st, {})
                raw, kept = modes.get("raw", {}).get(m), modes.get("guarded", {}).get(m)
                cells.append(f"{fmt(m, raw)} → {fmt(m, kept)}")
            n = sum(1 for r in guarded if r.style == st)
            lines.append(f"| {st} | {n} | " + " | ".join(cells) + " |")
        lines.append("")
    return lines


def _false_refusals(report: EvalReport, limit: int = 30) -> list[str]:
    """The benign questions the guarded pipeline refused, per run."""
    lines: list[str] = []
    for run, c in columns(report):
        benign = sum(1 for r in run.records if r.mode == "guarded" and r.family == "benign")
        if not benign:
            continue
        refused = [r for r in run.records if r.mode == "guarded" and "false_refusal" in r.failed]
        raw = sum(1 for r in run.records if r.mode == "raw" and "false_refusal" in r.failed)
        lines += [
            f"{c}: {len(refused)} of {benign} benign questions refused guarded, {raw} raw"
            + (":" if refused else "."),
            "",
        ]
        lines += [f"- `{r.id}` ({r.style or r.family}): {r.question}" for r in refused[:limit]]
        if len(refused) > limit:
            lines.append(f"- … and {len(refused) - limit} more (report.json)")
        if refused:
            lines.append("")
    return ["## False refusals", "", *lines] if lines else []


def markdown(report: EvalReport) -> str:
    lines = [
        f"# Eval report: {report.suite}",
        "",
        f"{report.cases} cases ({', '.join(f'{k} {v}' for k, v in report.families.items())}); "
        f"guard policy {report.policy}; made {report.created}.",
        "",
        f"**Gates: {'all met' if report.passed else 'NOT MET'}** "
        f"({sum(g.passed for g in report.gates)}/{len(report.gates)}).",
        "",
    ]
    lines += _runs(report)
    if len(report.runs) > 1:
        lines += _side_by_side(report)
    lines += _by_style(report)
    lines += _false_refusals(report)
    for run in report.runs:
        targets = _targets(report, run)
        lines += [f"## {run.model} · prompt {run.prompt}", ""]
        if run.followup_prompt:
            lines += [f"Follow-up cases (with chat history) use {run.followup_prompt}.", ""]
        lines += [*(f"Note: {n}" for n in run.notes), *([""] if run.notes else [])]
        lines += [
            "| metric | raw | guarded | guarded target | met |",
            "|---|---:|---:|---:|:---:|",
        ]
        for m in RUN_METRICS:
            t, ok = targets.get(("guarded", m), ("", True))
            met = ("yes" if ok else "**NO**") if t else ""
            lines.append(
                f"| {m} | {fmt(m, run.metrics['raw'].get(m))} | "
                f"{fmt(m, run.metrics['guarded'].get(m))} | {t} | {met} |"
            )
        fams = list(run.by_family)
        metrics = list(next(iter(run.by_family.values()))["guarded"]) if fams else []
        lines += ["", "Per case family (raw → guarded):", ""]
        lines.append("| family | " + " | ".join(metrics) + " |")
        lines.append("|---" * (len(metrics) + 1) + "|")
        for f in fams:
            cells = [
                f"{fmt(m, run.by_family[f]['raw'][m])} → {fmt(m, run.by_family[f]['guarded'][m])}"
                for m in metrics
            ]
            lines.append(f"| {f} | " + " | ".join(cells) + " |")
        failing = [r for r in run.records if r.mode == "guarded" and r.failed][:10]
        if failing:
            lines += ["", "Guarded answers that failed a check (first 10):", ""]
            for r in failing:
                why = "; ".join(f"{k}: {v}" for k, v in r.failed.items())
                kind = f"{r.family}, {r.style}" if r.style else r.family
                lines.append(f"- `{r.id}` ({kind}): {why}")
        lines.append("")
    mu = report.mutation
    lines += [
        "## Guard mutation test",
        "",
        f"{mu.bases} correct rationales, {mu.mutants} mutants: detection rate "
        f"**{fmt('detection_rate', mu.detection_rate)}**, false-flag rate "
        f"**{fmt('false_flag_rate', mu.false_flag_rate)}**.",
        "",
        "| mutation | mutants | detected | rate |",
        "|---|---:|---:|---:|",
    ]
    for k, v in mu.by_kind.items():
        lines.append(f"| {k} | {v['n']:.0f} | {v['detected']:.0f} | {100 * v['rate']:.1f} % |")
    if mu.missed:
        lines += ["", "Missed mutants (first 5):", ""]
        lines += [f"- {m['kind']}: {m['text']}" for m in mu.missed[:5]]
    lines += ["", "## Gates", "", "| run | mode | metric | value | target | met |"]
    lines.append("|---|---|---|---:|---:|:---:|")
    for g in report.gates:
        lines.append(
            f"| {g.run} | {g.mode} | {g.metric} | {fmt(g.metric, g.value)} | {g.target} | "
            f"{'yes' if g.passed else '**NO**'} |"
        )
    return "\n".join(lines) + "\n"


def plots(report: EvalReport) -> list[tuple[str, str]]:
    """(title, base64 PNG) pairs."""
    import numpy as np

    from safellm.risk.plots import png_base64, pyplot

    plt = pyplot()

    out = []
    for run in report.runs:
        for title, kind, scale in CHARTS:
            names = charted(kind)
            fig, ax = plt.subplots(figsize=(8, 0.45 * len(names) + 1))
            y = np.arange(len(names))
            for j, (mode, color) in enumerate((("raw", "#c44e52"), ("guarded", "#4c72b0"))):
                vals = [(run.metrics[mode].get(m) or 0.0) * scale for m in names]
                ax.barh(y + (0.2 if j else -0.2), vals, height=0.4, label=mode, color=color)
            ax.set_yticks(y, names)
            ax.invert_yaxis()
            ax.legend(loc="lower right")
            ax.set_title(f"{run.model} · {run.prompt}: {title}")
            out.append((f"{run.model} · {run.prompt}: raw vs guarded {title}", png_base64(fig)))
            plt.close(fig)
        fig, ax = plt.subplots(figsize=(7, 3))
        data = [
            [r.latency_s for r in run.records if r.mode == m and r.error is None]
            for m in ("raw", "guarded")
        ]
        ax.boxplot(
            [d or [0.0] for d in data], tick_labels=["raw", "guarded"], orientation="horizontal"
        )
        ax.set_xlabel("seconds per answer")
        ax.set_title(f"{run.model} · {run.prompt}: latency")
        out.append((f"{run.model} · {run.prompt}: latency", png_base64(fig)))
        plt.close(fig)
    mu = report.mutation
    if mu.by_kind:
        fig, ax = plt.subplots(figsize=(7, 3.5))
        kinds = list(mu.by_kind)
        ax.barh(kinds, [100 * mu.by_kind[k]["rate"] for k in kinds], color="#55a868")
        ax.axvline(99, color="k", ls="--", lw=1)
        ax.set_xlim(0, 100)
        ax.invert_yaxis()
        ax.set_xlabel("% of mutants detected by the guard")
        ax.set_title("Guard mutation test")
        out.append(("Guard mutation test: detection per kind", png_base64(fig)))
        plt.close(fig)
    return out


def html_report(report: EvalReport, md: str) -> str:
    imgs = "".join(
        f"<figure><img alt='{html.escape(t)}' src='data:image/png;base64,{b}'>"
        f"<figcaption>{html.escape(t)}</figcaption></figure>"
        for t, b in plots(report)
    )
    tables = []
    block: list[str] = []
    for line in [*md.splitlines(), ""]:
        if line.startswith("|"):
            block.append(line)
            continue
        if block:
            rows = [r.strip("|").split("|") for r in block if not set(r) <= set("|-: ")]
            head, *body = rows
            tables.append(
                "<table><tr>"
                + "".join(f"<th>{html.escape(c.strip())}</th>" for c in head)
                + "</tr>"
                + "".join(
                    "<tr>" + "".join(f"<td>{html.escape(c.strip())}</td>" for c in r) + "</tr>"
                    for r in body
                )
                + "</table>"
            )
            block = []
        if line.startswith("#"):
            level = len(line) - len(line.lstrip("#"))
            tables.append(f"<h{level}>{html.escape(line.lstrip('# '))}</h{level}>")
        elif line.strip():
            tables.append(f"<p>{html.escape(line).replace('**', '')}</p>")
    # the plots go after the tables of the runs, before the mutation test's section
    mutation = "<h2>Guard mutation test</h2>"
    cut = tables.index(mutation) if mutation in tables else len(tables)
    style = (
        "body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;color:#222}"
        "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;"
        "padding:3px 8px;font-size:13px}figure{display:inline-block;margin:8px}"
    )
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>Eval report "
        f"{html.escape(report.suite)}</title><style>{style}</style></head><body>"
        f"{''.join(tables[:cut])}{imgs}{''.join(tables[cut:])}</body></html>"
    )


def write(report: EvalReport, out_dir: Path) -> dict[str, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    md = markdown(report)
    paths = {
        "json": out_dir / "report.json",
        "markdown": out_dir / "report.md",
        "html": out_dir / "report.html",
    }
    paths["json"].write_text(report.model_dump_json(indent=1), encoding="utf-8")
    paths["markdown"].write_text(md, encoding="utf-8")
    paths["html"].write_text(html_report(report, md), encoding="utf-8")
    return paths
