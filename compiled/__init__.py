"""The compiled pipelines and components (`make compile` writes them), shipped with the package:
a drift-triggered training run submits `training.yaml` from here."""
