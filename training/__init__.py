"""Training: data split, the multi-task network, Optuna tuning, the final refit and evaluation."""
