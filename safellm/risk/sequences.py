"""Event sequences as model inputs, and events as a clinician reads them.

A unit's events (`safellm.data.events`) are grouped into *steps*: the events charted at the same time
(a lab panel, the groups coded at one earlier discharge). A step holds up to `max_events` events,
each a token id and a standardised value; the newest `max_steps` steps are kept, right-aligned, with
the hours from each step to the prediction time and from the step before.

Labs are binned low / normal / high against adult reference ranges; the readable form of an event
(`describe`) names the catalogue concept it belongs to, so the guard's lexicon recognises it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from safellm.data.catalogue import ELIXHAUSER, FEATURES, LABS, REFERENCE_RANGES, VITALS

# Adult reference ranges (low, high) of the lab panel, in the catalogue's units.
REFERENCE: dict[str, tuple[float, float]] = {
    "hemoglobin": (12.0, 17.5),
    "creatinine": (0.5, 1.2),
    "bun": (7.0, 25.0),
    "sodium": (135.0, 145.0),
    "potassium": (3.5, 5.0),
    "wbc": (4.0, 11.0),
    "platelets": (150.0, 400.0),
    "lactate": (0.5, 2.0),
    "bicarbonate": (22.0, 29.0),
    "glucose": (70.0, 180.0),
    "albumin": (3.5, 5.0),
}
PAD, UNKNOWN = 0, 1


def lab_bin(stem: str, value: float) -> str:
    lo, hi = REFERENCE[stem]
    return "low" if value < lo else "high" if value > hi else "normal"


def vital_bin(stem: str, value: float) -> str:
    """A vital sign's value against its widest usual interval (the catalogue's)."""
    lo, hi, _, _ = REFERENCE_RANGES[f"vital_{stem}"]
    return "low" if value < lo else "high" if value > hi else "normal"


def event_tokens(events: pd.DataFrame) -> pd.Series:
    """The model's token of each event: labs with their bin, admissions with their type."""
    tok = events["token"].astype(str)
    out = tok.copy()
    labs = tok.str.startswith("lab:")
    if labs.any():
        stems = tok[labs].str.slice(4)
        vals = events.loc[labs, "value"].to_numpy(dtype=float)
        out[labs] = [f"lab:{s}:{lab_bin(s, v)}" for s, v in zip(stems, vals, strict=True)]
    vitals = tok.str.startswith("vital:")
    if vitals.any():
        stems = tok[vitals].str.slice(6)
        vals = events.loc[vitals, "value"].to_numpy(dtype=float)
        out[vitals] = [f"vital:{s}:{vital_bin(s, v)}" for s, v in zip(stems, vals, strict=True)]
    for kind in ("adm", "dis"):  # the admission type, the discharge destination
        rows = tok == kind
        out[rows] = f"{kind}:" + events.loc[rows, "detail"].fillna("UNKNOWN").astype(str)
    return out


def numeric_key(token: str) -> str | None:
    """The scale a numeric event's value is standardised on (lab stem, `vital_<stem>`, `age`),
    else None."""
    if token.startswith("lab:"):
        return token[4:]
    if token.startswith("vital:"):
        return f"vital_{token[6:]}"
    return "age" if token == "age" else None


@dataclass
class Vocab:
    """Token ids (0 = padding, 1 = unseen token) and the scaling of numeric values (log1p, then
    standardised per lab and for age), learnt on training units only."""

    tokens: list[str]
    lab_mean: dict[str, float]
    lab_sd: dict[str, float]

    @classmethod
    def fit(cls, events: pd.DataFrame, min_count: int = 5) -> Vocab:
        counts = event_tokens(events).value_counts()
        tokens = sorted(counts[counts >= min_count].index)
        keys = np.array([numeric_key(t) for t in events["token"]], dtype=object)
        logv = np.log1p(np.clip(events["value"].to_numpy(dtype=float), 0, None))
        mean, sd = {}, {}
        for key in (*LABS, *(f"vital_{v}" for v in VITALS), "age"):
            v = logv[(keys == key) & ~np.isnan(logv)]
            mean[key] = float(v.mean()) if len(v) else 0.0
            sd[key] = float(v.std()) if len(v) > 1 and v.std() > 0 else 1.0
        return cls(["<pad>", "<unk>", *tokens], mean, sd)

    def ids(self, tokens: pd.Series) -> np.ndarray:
        index = {t: i for i, t in enumerate(self.tokens)}
        return np.array([index.get(t, UNKNOWN) for t in tokens], dtype=np.int64)

    def scaled(self, events: pd.DataFrame) -> np.ndarray:
        """Standardised log values of numeric events (0 for the others), clipped to ±5."""
        out = np.zeros(len(events), dtype=np.float32)
        keys = [numeric_key(t) for t in events["token"]]
        num = np.array([k is not None for k in keys], dtype=bool)
        if num.any():
            ks = [k for k in keys if k is not None]
            v = np.log1p(np.clip(events["value"].to_numpy(dtype=float)[num], 0, None))
            mu = np.array([self.lab_mean.get(k, 0.0) for k in ks])
            sd = np.array([self.lab_sd.get(k, 1.0) for k in ks])
            out[num] = np.clip(np.nan_to_num((v - mu) / sd), -5, 5)
        return out

    def to_dict(self) -> dict[str, object]:
        return {"tokens": self.tokens, "lab_mean": self.lab_mean, "lab_sd": self.lab_sd}

    @classmethod
    def from_dict(cls, d: dict[str, object]) -> Vocab:
        return cls(list(d["tokens"]), dict(d["lab_mean"]), dict(d["lab_sd"]))  # type: ignore[call-overload]


@dataclass
class Encoded:
    """Inputs of N units: token ids and values (N, L, K), hours to prediction and since the
    previous step (N, L), a mask of real steps (N, L), and for each (unit, step, slot) holding an
    event, that event's row in the events frame (`rows`, -1 elsewhere)."""

    tok: np.ndarray
    val: np.ndarray
    hours: np.ndarray
    gap: np.ndarray
    mask: np.ndarray
    rows: np.ndarray


def encode(
    events: pd.DataFrame,
    unit_ids: np.ndarray,
    vocab: Vocab,
    max_steps: int = 64,
    max_events: int = 16,
) -> Encoded:
    """Encode the events of `unit_ids` (in that order). `events` must be sorted by unit, then
    oldest first (as `safellm data build` writes them)."""
    n = len(unit_ids)
    tok = np.zeros((n, max_steps, max_events), dtype=np.int64)
    val = np.zeros((n, max_steps, max_events), dtype=np.float32)
    hours = np.zeros((n, max_steps), dtype=np.float32)
    gap = np.zeros((n, max_steps), dtype=np.float32)
    mask = np.zeros((n, max_steps), dtype=bool)
    rows = np.full((n, max_steps, max_events), -1, dtype=np.int64)
    ev = events[events["unit_id"].isin(unit_ids)]
    if ev.empty:
        return Encoded(tok, val, hours, gap, mask, rows)
    where = pd.Series(np.arange(n), index=pd.Index(unit_ids))
    u = where.loc[ev["unit_id"].to_numpy()].to_numpy()
    h = ev["hours_before"].to_numpy(dtype=float)
    # step number within the unit, oldest first: a new step whenever the time changes
    new = np.r_[True, (u[1:] != u[:-1]) | (h[1:] != h[:-1])]
    step = np.cumsum(new) - 1
    first_step = pd.Series(step).groupby(u).transform("min").to_numpy()
    last_step = pd.Series(step).groupby(u).transform("max").to_numpy()
    pos = max_steps - 1 - (last_step - step)  # right-aligned: the newest step at L - 1
    slot = pd.Series(np.ones(len(ev), dtype=int)).groupby(step).cumsum().to_numpy() - 1
    keep = (pos >= 0) & (slot < max_events)
    ids = vocab.ids(event_tokens(ev))
    scaled = vocab.scaled(ev)
    idx = np.flatnonzero(keep)
    tok[u[idx], pos[idx], slot[idx]] = ids[idx]
    val[u[idx], pos[idx], slot[idx]] = scaled[idx]
    rows[u[idx], pos[idx], slot[idx]] = ev.index.to_numpy()[idx]
    kept = pos >= 0
    hours[u[kept], pos[kept]] = h[kept]
    mask[u[kept], pos[kept]] = True
    # hours since the previous step (0 for a unit's first step)
    prev_h = np.r_[np.nan, h[:-1]]
    g = np.where((step != first_step) & new, prev_h - h, np.nan)
    sel = kept & new & ~np.isnan(g)
    gap[u[sel], pos[sel]] = g[sel]
    return Encoded(tok, val, hours, gap, mask, rows)


def window(hours_before: float, stay_hours: float) -> str:
    """When an event happened, in words (no figures a rationale could get wrong)."""
    if hours_before <= 24.0:
        return "last 24 h"
    if hours_before <= stay_hours + 12.0:
        return "earlier this stay"
    return "before this admission"


@dataclass(frozen=True)
class Readable:
    feature: str  # the catalogue concept (what the guard's lexicon names)
    label: str
    unit: str


def describe(token: str, when: str) -> Readable:
    """An event token (as in `event_tokens`) and its window as a readable fact."""
    kind, _, rest = token.partition(":")
    if kind == "lab":
        stem, _, level = rest.partition(":")
        label = LABS[stem][1] if stem in LABS else stem
        return Readable(f"lab_{stem}", f"{label} {level}, {when}", LABS.get(stem, ("", "", ""))[2])
    if kind == "vital":
        stem, _, level = rest.partition(":")
        if stem in VITALS:
            _, label, unit = VITALS[stem]
            return Readable(f"vital_{stem}_last", f"{label} {level}, {when}", unit)
    if kind == "med":
        name = f"med_{rest}"
        label = FEATURES[name].label if name in FEATURES else f"{rest.title()} prescribed"
        return Readable(name, f"{label}, {when}", "yes/no")
    if kind in ("dx", "dxnow"):
        label = ELIXHAUSER[rest][0] if rest in ELIXHAUSER else rest.replace("_", " ")
        coded = "coded at an earlier discharge" if kind == "dx" else "coded this admission"
        return Readable(f"elix_{rest}", f"{label}, {coded}", "yes/no")
    if kind == "dis":
        return Readable("discharge_location", "Discharge destination", "")
    if token == "age":
        return Readable("age", "Age at admission", "years")
    if token == "icu:in":
        return Readable("n_icu_transfers", f"Admitted to the ICU, {when}", "")
    if token == "icu:out":
        return Readable("n_icu_transfers", f"Left the ICU, {when}", "")
    if kind == "adm":
        return Readable("admission_type", f"Hospital admission, {when}", "")
    return Readable(token, f"{token}, {when}", "")
