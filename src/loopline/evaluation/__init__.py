"""Evaluation: holdout metrics, the baseline, the gate's configuration and verdict, the blessing."""
