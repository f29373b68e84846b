"""Explanations: SHAP attributions turned into Facts, the only truth a rationale may use."""
