"""The outcome model of one round of admissions: in-hospital death, length of stay (with the ICU
times), discharge location, coded comorbidities and the 30-day readmission risk.

The formulas are spelled out in the package docstring (safellm.data.synthetic).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from safellm.data.synthetic.batch import Stay
from safellm.data.synthetic.labs import latent
from safellm.data.synthetic.numeric import (
    DAY,
    Arr,
    choice,
    floor_minute,
    gumbel_argmax,
    lognormal,
    secs,
    sig,
)
from safellm.data.synthetic.vocab import CI, CONDS, DEAD, MAJOR

_CU_DEATH_EFFECT = np.array([0.3, -0.1, 0.0, -1.2, 0.1, 0.0])  # by care unit (CAREUNITS)
# discharge location (DIS_LOCS): base log-weight of survivors, effect on readmission
_DIS_BASE = np.array([0.0, 0.0, -0.6, -1.0, -2.5, -2.8, -4.2, -3.8, -3.5, -4.5, -4.5, -4.8])
_DIS_NB_P = (0.8, 0.1, 0, 0, 0, 0.07, 0, 0, 0, 0, 0, 0.03)
_DIS_READMIT = np.array([0.0, 0.2, 0.45, 0.45, 0.45, 0.2, -1.0, 0.9, 0.2, 0.2, 0.45, 0.2, 0.0])


class StayTimes(NamedTuple):
    """Timestamps (seconds) of an admission's ICU stays and discharge, and its LOS in days."""

    has2: Arr
    in1: Arr
    out1: Arr
    in2: Arr
    out2: Arr
    disch: Arr
    los: Arr


def death(rng: np.random.Generator, s: Stay, q: dict[str, Arr]) -> tuple[Arr, Arr]:
    """(died, died in the ICU), driven by day-1 (6 h) latent labs."""
    m, nb, icu, cu, age, frail = len(s.pat), s.nb, s.icu, s.cu, s.age, s.frail
    sepsis, shock, has = s.sepsis, s.shock, s.has
    t1 = np.full(m, 0.25)
    lac1, cr1, hco31 = latent("lac", q, t1), latent("cr", q, t1), latent("hco3", q, t1)
    lin = (-3.2 + 0.55 * np.clip(lac1 - 2.0, -1.0, 8.0) + 0.035 * (age - 65.0)
           + 0.6 * np.log(cr1) + 0.10 * np.maximum(0.0, 22.0 - hco31) + 0.8 * sepsis
           + 0.6 * shock + _CU_DEATH_EFFECT[cu] + 0.4 * has("METS") + 0.4 * has("LIVER")
           + 0.15 * frail)  # fmt: skip
    lin = np.where(icu, lin, lin - 1.5)
    p_die = np.where(nb, 0.003, sig(lin))
    died = rng.random(m) < p_die
    icu_death = died & icu & (rng.random(m) < 0.88)
    return died, icu_death


def stay_times(
    rng: np.random.Generator, prem: Arr, s: Stay, admit: Arr, icu_death: Arr
) -> StayTimes:
    """Pre-ICU delay, ICU stay(s) and post-ICU ward time, or one LOS without ICU."""
    m, nb, adult, icu, sev, frail, age_s = len(s.pat), s.nb, s.adult, s.icu, s.sev, s.frail, s.age_s
    surgical, elective, sepsis, respfail = s.surgical, s.elective, s.sepsis, s.respfail
    cardiac_surg = s.cardiac_surg
    pre = np.where(
        surgical & elective,
        rng.uniform(0.1, 0.4, m),
        np.where(
            rng.random(m) < 0.55,
            rng.uniform(0.01, 0.08, m),
            np.clip(lognormal(rng, np.log(0.6), 1.0, m), 0.05, 6.0),
        ),
    )
    pre = np.where(nb, rng.uniform(0.0, 0.05, m), pre)
    icu1 = lognormal(
        rng, np.log(1.9) + 0.28 * sev + 0.35 * sepsis + 0.35 * respfail - 0.3 * cardiac_surg,
        0.75, m,
    )  # fmt: skip
    icu1 = np.where(nb, np.where(prem, lognormal(rng, np.log(18.0), 0.6, m),
                                 lognormal(rng, np.log(2.0), 0.6, m)), icu1)  # fmt: skip
    icu1 = np.clip(icu1, 0.1, 90.0)
    has2 = icu & adult & (rng.random(m) < 0.09)
    mid = np.where(has2, lognormal(rng, np.log(1.5), 0.7, m), 0.0)
    icu2 = np.where(has2, np.clip(lognormal(rng, np.log(1.6) + 0.2 * sev, 0.7, m), 0.1, 60), 0.0)
    post = lognormal(
        rng,
        np.log(2.6) + 0.18 * sev + 0.18 * frail + 0.35 * surgical + 0.25 * sepsis + 0.1 * age_s,
        0.8, m,
    )  # fmt: skip
    post = np.where(rng.random(m) < 0.08, rng.uniform(0.05, 0.3, m), post)
    post = np.where(nb, np.where(rng.random(m) < 0.7, rng.uniform(0.05, 0.3, m),
                                 lognormal(rng, np.log(1.5), 0.6, m)), post)  # fmt: skip
    post = np.where(icu_death, 0.0, post)
    noicu_los = lognormal(rng, np.log(4.0) + 0.2 * sev + 0.3 * surgical + 0.3 * sepsis, 0.7, m)
    noicu_los = np.clip(noicu_los, 0.2, 120.0)
    los = np.where(icu, pre + icu1 + mid + icu2 + post, noicu_los)
    in1 = admit + secs(pre)
    out1 = in1 + secs(icu1)
    in2 = out1 + secs(mid)
    out2 = in2 + secs(icu2)
    disch = floor_minute(admit + secs(los))
    disch = np.maximum(disch, admit + 600)
    last_out = np.where(has2, out2, out1)
    # ICU deaths: the last ICU stay ends with the death, which is the discharge
    last_out = np.where(icu_death, disch, np.minimum(last_out, disch))
    out1 = np.where(has2, np.minimum(out1, disch), last_out)
    out2 = np.where(has2, last_out, out2)
    in1 = np.minimum(in1, out1 - 60)
    in2 = np.where(has2, np.clip(in2, out1 + 60, out2 - 60), in2)
    los = (disch - admit) / DAY
    return StayTimes(has2, in1, out1, in2, out2, disch, los)


def discharge_location(rng: np.random.Generator, s: Stay, los: Arr, died: Arr) -> Arr:
    """DIS_LOCS index: a multinomial logit for adult survivors, DEAD for deaths."""
    m, nb, age_s, frail, has, isr = len(s.pat), s.nb, s.age_s, s.frail, s.has, s.isr
    logw = np.zeros((m, DEAD))
    logw[:] = _DIS_BASE
    ortho = isr("HIP_FX", "JOINT").astype(float)
    logw[:, 0] += -0.6 * age_s + 0.6 * s.elective
    logw[:, 1] += 0.3 * age_s
    logw[:, 2] += 0.8 * age_s + 0.4 * frail + 0.3 * np.log1p(los)
    logw[:, 3] += 0.4 * age_s + 1.2 * ortho + 0.6 * isr("STROKE")
    logw[:, 4] += 0.8 * s.respfail + 0.02 * los
    logw[:, 6] += 1.5 * has("METS")
    logw[:, 7] += 1.5 * has("ALCOHOL") - 0.5 * age_s
    logw[:, 8] += 0.8 * s.sepsis
    dl = gumbel_argmax(rng, logw)
    dl_nb = choice(rng, m, _DIS_NB_P)
    return np.where(died, DEAD, np.where(nb, dl_nb, dl))


def coded_conditions(rng: np.random.Generator, s: Stay) -> Arr:
    """Comorbidities as coded on this admission (coding sensitivity 92 %)."""
    coded = s.com & (rng.random(s.com.shape) < 0.92)
    coded[:, CI["CHF"]] |= s.isr("CHF_EXAC")
    coded[:, CI["COPD"]] |= s.isr("COPD_EXAC")
    return coded


def readmission_risk(
    s: Stay,
    q: dict[str, Arr],
    coded: Arr,
    disloc: Arr,
    hr_count: Arr,
    prior12: Arr,
    died: Arr,
    icu_gap: Arr,
) -> Arr:
    """P(30-day readmission), from this admission's facts at discharge (0 for deaths, newborns).

    `icu_gap`: days from the last ICU discharge to the hospital discharge (inf without an ICU
    stay). Leaving hospital within 24 h of leaving the ICU adds risk: a timing signal that no
    aggregate of the stay shows, only the sequence of events does."""
    los, age = q["los"], s.age
    tend = los
    t48 = np.maximum(los - 2.0, 0.0)
    hgb_end, bun_end = latent("hgb", q, tend), latent("bun", q, tend)
    cr_end = latent("cr", q, tend)
    cr_rise = cr_end - latent("cr", q, t48)
    elix = coded[:, [i for i, c in enumerate(CONDS) if c.elix]].sum(axis=1)
    major = coded[:, [CI[k] for k in MAJOR]].sum(axis=1)
    r = (-4.6 + 0.12 * elix + 0.45 * major + 0.35 * np.minimum(prior12, 4)
         + 0.30 * np.clip(11.0 - hgb_end, 0.0, 5.0)
         + 0.55 * np.clip(np.log(cr_end / 1.1), 0.0, 2.0)
         + 0.012 * np.clip(bun_end - 20.0, 0.0, 80.0) + 1.1 * np.clip(cr_rise, 0.0, 2.0)
         + _DIS_READMIT[disloc] + 0.22 * hr_count + 0.25 * np.log1p(los)
         + 0.012 * (age - 65.0) + 1.2 * (icu_gap < 1.0))  # fmt: skip
    return np.where(s.adult & ~died, sig(r), 0.0)
