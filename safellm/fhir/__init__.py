"""FHIR R4: admissions exported as Bundles (`export`), Bundles read back into the rows the feature
SQL reads (`ingest`, `features`), and the codes that link the two (`codes`)."""
