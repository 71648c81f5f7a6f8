"""How models are made: point-in-time training sets, splits, baselines, MLflow."""
