"""The use cases: the one layer that the CLI, the REST API, the chat and batch jobs call.

- `data`: synthetic hospitals and the data build (cohorts, features, notes, event sequences)
- `training`, `temporal_training`: the tabular and temporal risk models of one task or all
- `explanation`: predict → Facts → evidence → rationale → guard → audit, streamed or whole
- `calibration`: note-grounding thresholds from labelled pairs
- `evaluation`: the offline eval suite, raw and guarded, with the guard mutation test
- `monitoring`: data, prediction and explanation-quality drift
"""
