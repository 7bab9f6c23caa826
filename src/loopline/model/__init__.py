"""The model: the SavedModel contract, the Keras classifier, the decision threshold and the MLflow pyfunc."""
