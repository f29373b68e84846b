"""Note-grounding thresholds chosen from labelled pairs."""

from __future__ import annotations

from safellm.guard.calibrate import GroundingPair, GroundingSet, calibrate, load_set
from safellm.resources import grounding_set


def test_shipped_set_is_balanced_and_valid() -> None:
    data = load_set(grounding_set())
    sup = sum(len(p.supported) for p in data.pairs)
    uns = sum(len(p.unsupported) for p in data.pairs)
    assert sup == uns >= 40


def test_thresholds_follow_the_scores() -> None:
    data = GroundingSet(
        name="t",
        version=1,
        changelog="x",
        pairs=[
            GroundingPair(
                evidence="e", supported=["s1", "s2", "s3"], unsupported=["u1", "u2", "u3"]
            )
        ],
    )
    sims = {"s1": 0.9, "s2": 0.5, "s3": 0.4, "u1": 0.6, "u2": 0.3, "u3": 0.2}
    judge = {"s1": 0.9, "s2": 0.8, "s3": 0.7, "u1": 0.2, "u2": 0.6, "u3": 0.1}
    only_sim = calibrate(data, lambda c, e: sims[c])
    assert only_sim.similarity_threshold == 0.61  # just above the most similar unsupported one
    assert only_sim.judge_threshold is None and only_sim.false_accepts == 0
    both = calibrate(data, lambda c, e: sims[c], lambda c, e: judge[c])
    assert both.judge_threshold == 0.7  # separates s2, s3 (0.8, 0.7) from u1..u3 (<= 0.6)
    assert both.balanced_accuracy == 1.0 and both.false_accepts == both.false_rejects == 0
