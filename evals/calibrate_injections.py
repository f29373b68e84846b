"""Where the injection exemplars' threshold stands against benign text.

    python evals/calibrate_injections.py [--notes .safellm/data/notes.parquet ...]

Prints the highest exemplar similarity (safellm/guard/injection.py) among the sentences of the
notes of built homes (`safellm data build` writes DATA_DIR/notes.parquet: the synthetic
hospital's and the MIMIC-III demo home's notes) and among the benign clinicians' questions of evals/default.v1.yaml, the
share of each flagged at the library's threshold, and the sentences closest to it. The threshold
in guardrails/injections.yaml must stay above the benign text; it is never set on the suite's
attacks.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd
import yaml

from safellm.guard.injection import MIN_WORDS, SENTENCE, InjectionDetector, load_exemplars

ROOT = Path(__file__).resolve().parent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--notes",
        type=Path,
        nargs="+",
        default=[
            ROOT.parent / ".safellm/data/notes.parquet",
            ROOT.parent / ".safellm/demo/data/notes.parquet",
        ],
    )
    ap.add_argument("--suite", type=Path, default=ROOT / "default.v1.yaml")
    ap.add_argument("--show", type=int, default=5)
    args = ap.parse_args()
    lib = load_exemplars()
    det = InjectionDetector([], lib)
    texts = [
        t for path in args.notes if path.is_file() for t in pd.read_parquet(path)["text"].dropna()
    ]
    sentences = [
        " ".join(s.split()) for t in texts for s in SENTENCE.split(t) if len(s.split()) >= MIN_WORDS
    ]
    cases = yaml.safe_load(args.suite.read_text())["cases"]
    questions = [
        c["question"]
        for c in cases
        if c.get("family") == "benign" and len(c["question"].split()) >= MIN_WORDS
    ]
    clinical = ROOT.parent.parent / "shared/data/clinical-notes"
    if clinical.is_dir():  # CC-BY clinical note text (mtsamples-style dialogues and notes)
        for f in sorted(clinical.rglob("*.csv"))[:20]:
            frame = pd.read_csv(f)
            for col in frame.columns:
                if pd.api.types.is_string_dtype(frame[col]):
                    texts += frame[col].dropna().astype(str).tolist()
        sentences = [
            " ".join(s.split())
            for t in texts
            for s in SENTENCE.split(t)
            if len(s.split()) >= MIN_WORDS
        ]
    for name, items in (("note sentences", sentences), ("benign questions", questions)):
        scores = det.similarities(items)
        sims = sorted(zip(scores, items, strict=True), reverse=True)
        flagged = sum(s >= lib.threshold for s, _ in sims)
        top = sims[0][0] if sims else 0.0
        print(
            f"{name}: {len(items)}, highest similarity {top:.3f}, "
            f"flagged at {lib.threshold}: {flagged} ({flagged / max(len(items), 1):.2%})"
        )
        for s, t in sims[: args.show]:
            print(f"  {s:.3f}  {t[:100]}")


if __name__ == "__main__":
    main()
