"""Use case: a risk, its Facts and the unit it is about, from a FHIR R4 Bundle (or a CDS Hooks
prefetch) instead of the built tables. The same models, cohort rules and feature SQL as the MIMIC
path (`safellm.fhir.features`), so the same patient gets the same risk and Facts by either route.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pandas as pd
from pydantic import BaseModel

from safellm.explain.facts import Facts
from safellm.fhir.features import unit_row
from safellm.fhir.ingest import Ingested, ingest
from safellm.services.explanation import ExplanationService


class FhirPrediction(BaseModel):
    """A prediction from a Bundle, with its Facts and what the Bundle held that was not read."""

    facts: Facts
    ignored: dict[str, int]


def row_from_fhir(
    svc: ExplanationService,
    task: str,
    payload: Any,
    encounter: str | None = None,
    now: datetime | None = None,
) -> tuple[Ingested, pd.Series]:
    """The ingested Bundle and the feature row of its unit for `task` (see `unit_row`)."""
    ing = ingest(payload, now=now)
    return ing, unit_row(ing, task, svc.task_data(task).features, encounter)


def predict_fhir(
    svc: ExplanationService,
    task: str,
    payload: Any,
    encounter: str | None = None,
    *,
    notes: bool = True,
    question: str | None = None,
    now: datetime | None = None,
) -> FhirPrediction:
    """Risk and Facts of a Bundle's unit; `notes=False` leaves the note evidence out (the CDS
    card, which must answer in half a second)."""
    ing, row = row_from_fhir(svc, task, payload, encounter, now)
    chosen = ing.notes[ing.notes["hadm_id"] == row["hadm_id"]] if notes else None
    facts = svc.facts_for_row(task, row, chosen, question)
    return FhirPrediction(facts=facts, ignored=ing.ignored)
