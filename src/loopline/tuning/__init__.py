"""Tuning and training: Optuna studies, their storage and tracking, trial scores, the training budget and streaming, the final fit."""
