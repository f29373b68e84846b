"""Guards: every rationale checked against the Facts and the clinical safety rules."""
