"""Events → model inputs: steps by time, right-aligned, newest kept, values scaled, readable labels
the guard's lexicon knows."""

from __future__ import annotations

import numpy as np
import pandas as pd

from safellm.guard.lexicon import Lexicon, concept_of
from safellm.guard.policy import load_policy
from safellm.risk.sequences import UNKNOWN, Vocab, describe, encode, event_tokens, lab_bin, window


def _events() -> pd.DataFrame:
    rows = [
        # unit 7: admission + age, a lab panel of two at 30 h, an opioid at 10 h, ICU out at 2 h
        (7, 50.0, "adm", None, "EMERGENCY"),
        (7, 50.0, "age", 80.0, None),
        (7, 30.0, "lab:creatinine", 2.4, None),
        (7, 30.0, "lab:sodium", 131.0, None),
        (7, 10.0, "med:opioid", None, None),
        (7, 2.0, "icu:out", None, "MICU"),
        # unit 9: one creatinine
        (9, 5.0, "lab:creatinine", 0.9, None),
    ]
    return pd.DataFrame(rows, columns=["unit_id", "hours_before", "token", "value", "detail"])


def test_tokens_bin_labs_and_name_the_admission_type() -> None:
    toks = list(event_tokens(_events()))
    assert toks[0] == "adm:EMERGENCY"
    assert toks[2:4] == ["lab:creatinine:high", "lab:sodium:low"]
    assert toks[-1] == "lab:creatinine:normal"
    assert lab_bin("potassium", 4.0) == "normal" and lab_bin("potassium", 5.5) == "high"


def test_encode_groups_steps_right_aligned_with_gaps() -> None:
    ev = _events()
    vocab = Vocab.fit(ev, min_count=1)
    enc = encode(ev, np.array([9, 7, 4]), vocab, max_steps=6, max_events=3)
    # unit 7 (row 1): 4 steps (50 h: two events, 30 h: two, 10 h, 2 h) at the right end
    assert enc.mask[1].tolist() == [False, False, True, True, True, True]
    assert enc.hours[1, 2:].tolist() == [50.0, 30.0, 10.0, 2.0]
    assert enc.gap[1, 2:].tolist() == [0.0, 20.0, 20.0, 8.0]
    assert (enc.tok[1, 2, :2] > UNKNOWN).all() and enc.tok[1, 2, 2] == 0
    # the rows map back to the events frame
    assert sorted(enc.rows[1][enc.rows[1] >= 0].tolist()) == [0, 1, 2, 3, 4, 5]
    # unit 9: one step; unit 4 has no events at all
    assert enc.mask[0].sum() == 1 and enc.rows[0, 5, 0] == 6
    assert not enc.mask[2].any() and (enc.tok[2] == 0).all()
    # values: creatinine 2.4 scaled above creatinine 0.9; non-numeric events carry 0
    assert enc.val[1, 3, 0] > enc.val[0, 5, 0]
    assert enc.val[1, 4, 0] == 0.0


def test_encode_keeps_the_newest_steps_and_maps_unseen_tokens() -> None:
    ev = _events()
    vocab = Vocab.fit(ev[ev["unit_id"] == 9], min_count=1)
    enc = encode(ev, np.array([7]), vocab, max_steps=2, max_events=1)
    assert enc.hours[0].tolist() == [10.0, 2.0]  # the two newest steps
    assert enc.tok[0].ravel().tolist() == [UNKNOWN, UNKNOWN]  # opioid, ICU out: unseen in training


def test_readable_events_name_concepts_the_lexicon_knows() -> None:
    lexicon = Lexicon(load_policy(None).lexicon)
    tokens = [
        "lab:creatinine:high",
        "med:opioid",
        "dx:chf",
        "dxnow:renal_failure",
        "dis:SNF",
        "age",
    ]
    for token in tokens:
        r = describe(token, window(3.0, 100.0))
        found = set().union(*(m.concepts for m in lexicon.mentions(r.label)))
        assert concept_of(r.feature) in found, (token, r.label, found)
    assert window(3.0, 100.0) == "last 24 h"
    assert window(60.0, 100.0) == "earlier this stay"
    assert window(500.0, 100.0) == "before this admission"
