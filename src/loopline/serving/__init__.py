"""Serving: the model server, the InferenceService, KServe's modes and runtime, rollouts, batch prediction."""
