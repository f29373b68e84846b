"""Risk models: training, evaluation, fairness, imbalance analysis, registry."""
