"""Data layer: MIMIC-III loading, the synthetic hospital, cohorts and features."""
