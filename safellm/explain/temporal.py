"""The temporal model's predictions as Facts: integrated-gradients attributions of single events,
summed per readable event (what, and when: "Creatinine high, last 24 h"), ranked by size.

The Facts have the tabular shape: each contribution names a catalogue concept (`lab_creatinine`,
`med_opioid`, `elix_chf`, ...) so the guard's lexicon recognises it, its value is the newest value of
the event (or yes / the care unit / the admission type), and the contributions add up exactly to the
model output minus the base value. The base value here is the model's output for the same timeline
with every event's content removed (the integrated-gradients baseline), so it differs by patient.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from safellm.explain.facts import Facts, Part, Space, unit_facts
from safellm.risk.sequences import describe, encode, event_tokens, window
from safellm.risk.temporal import attribute, predict_logits
from safellm.tasks import task_spec

if TYPE_CHECKING:
    from safellm.risk.temporal_registry import TemporalBundle


class TemporalExplainer:
    """Turns rows of a task table (keys included) and their events into predictions and Facts."""

    space: Space = "log-odds"

    def __init__(self, bundle: TemporalBundle, events: pd.DataFrame) -> None:
        self.bundle = bundle
        self.net = bundle.net
        self.vocab = bundle.vocab
        self.cfg = bundle.cfg
        self.task = task_spec(bundle.meta.task).name
        self.model = bundle.meta.model
        self.version = bundle.meta.version
        self.bands = bundle.meta.bands
        self.offset = bundle.meta.offset
        self.events = events.sort_values(["unit_id", "hours_before"], ascending=[True, False])
        self.events = self.events.reset_index(drop=True)
        self._units = self.events["unit_id"].to_numpy()

    def _events_of(self, unit_id: int) -> pd.DataFrame:
        lo, hi = np.searchsorted(self._units, [unit_id, unit_id + 1])
        return self.events.iloc[lo:hi].reset_index(drop=True)

    def outputs(self, frame: pd.DataFrame) -> np.ndarray:
        """Model output (log-odds, prior-corrected) of every unit of `frame`."""
        units = frame["unit_id"].to_numpy()
        events = (  # a few units: their slices, not a scan of every event
            pd.concat([self._events_of(int(u)) for u in units], ignore_index=True)
            if len(units) <= 16
            else self.events
        )
        enc = encode(events, units, self.vocab, self.cfg.max_steps, self.cfg.max_events)
        return predict_logits(self.net, enc) + self.offset

    def risk(self, output: np.ndarray) -> np.ndarray:
        return np.asarray(1 / (1 + np.exp(-np.asarray(output, dtype=float))))

    def facts(self, row: pd.Series | pd.DataFrame) -> Facts:
        r = row.iloc[0] if isinstance(row, pd.DataFrame) else row
        unit = int(r["unit_id"])
        ev = self._events_of(unit)
        enc = encode(ev, np.array([unit]), self.vocab, self.cfg.max_steps, self.cfg.max_events)
        attr, base, value_out = attribute(self.net, enc, self.cfg.ig_steps)
        stay_hours = (
            pd.Timestamp(r["prediction_time"]) - pd.Timestamp(r["admittime"])
        ).total_seconds() / 3600.0
        tokens = event_tokens(ev).to_numpy() if len(ev) else np.array([], dtype=object)
        groups: dict[tuple[str, str], dict[str, Any]] = {}
        for step, slot in zip(*np.nonzero(enc.rows[0] >= 0), strict=True):
            i = int(enc.rows[0, step, slot])
            hours = float(ev.at[i, "hours_before"])
            key = (str(tokens[i]), window(hours, stay_hours))
            g = groups.setdefault(key, {"attr": 0.0, "hours": np.inf, "row": i})
            g["attr"] += float(attr[step, slot])
            if hours < g["hours"]:
                g["hours"], g["row"] = hours, i
        parts: list[Part] = []
        for (token, when), g in groups.items():
            readable = describe(token, when)
            value = _value(token, ev.loc[g["row"]])
            parts.append((readable.feature, readable.label, value, readable.unit, float(g["attr"])))
        return unit_facts(
            r,
            self,
            parts=parts,
            model_output=value_out + self.offset,
            base_value=base + self.offset,
        )


def _value(token: str, event: pd.Series) -> float | str | None:
    if token.startswith("lab:") or token == "age":
        v = event["value"]
        return None if pd.isna(v) else float(v)
    if token.startswith(("med:", "dx:", "dxnow:")):
        return 1.0
    detail = event.get("detail")
    return None if detail is None or pd.isna(detail) else str(detail)
