"""The offline eval suite: cases as data, evaluators, the guard mutation test, reports."""
